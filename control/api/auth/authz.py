"""Decide whether a user may do what a request asks: the --authorization-mode chain.

Modes, as kube-apiserver names them: ``AlwaysAllow``, ``AlwaysDeny``, ``Node``
(node.py) and ``RBAC`` (rbac.py). Each authorizer answers (allowed, reason); the
first that allows wins, as kube-apiserver's union authorizer; a refusal is a 403
worded as Kubernetes words it.
"""

from control import errors
from control.api.auth.node import NodeAuthorizer
from control.api.auth.rbac import RBACAuthorizer

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")
#: The mode of an app built in process without options (unit tests, benchmarks);
#: steer-apiserver's own default is flags.DEFAULT_AUTHORIZATION_MODE.
DEFAULT_MODE = "AlwaysAllow"


class AlwaysAllow:
    name = "AlwaysAllow"

    def authorize(self, user, info):
        return True, ""


class AlwaysDeny:
    name = "AlwaysDeny"

    def authorize(self, user, info):
        return False, "everything is denied"


def parse_modes(text):
    """Return the list of modes in a comma-separated --authorization-mode value."""
    modes = [m.strip() for m in (text or DEFAULT_MODE).split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"--authorization-mode: unknown mode(s) {', '.join(unknown) or '(none)'}"
                         f"; choose from {', '.join(MODES)}")
    if len(set(modes)) != len(modes):
        raise ValueError("--authorization-mode: a mode is listed twice")
    return modes


class Authorizer:
    """The union of the configured authorizers."""

    def __init__(self, authorizers):
        self.authorizers = list(authorizers)
        self.rbac = next((a for a in self.authorizers if isinstance(a, RBACAuthorizer)), None)

    @classmethod
    def from_modes(cls, modes, service, policy):
        built = {"AlwaysAllow": AlwaysAllow, "AlwaysDeny": AlwaysDeny,
                 "Node": lambda: NodeAuthorizer(service),
                 "RBAC": lambda: RBACAuthorizer(policy)}
        return cls(built[mode]() for mode in modes)

    @property
    def allows_everything(self):
        return any(isinstance(a, AlwaysAllow) for a in self.authorizers)

    def authorize(self, user, info):
        """Return (allowed, reason): allowed by the first authorizer that allows."""
        reasons = []
        for authorizer in self.authorizers:
            allowed, reason = authorizer.authorize(user, info)
            if allowed:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, ", ".join(reasons)

    def check(self, user, info):
        """Raise a 403 Forbidden unless ``user`` may do what ``info`` describes."""
        allowed, reason = self.authorize(user, info)
        if not allowed:
            raise forbidden(user, info, reason)


def forbidden(user, info, reason=""):
    """Return the 403 Forbidden error kube-apiserver answers for a refused request."""
    suffix = f": {reason}" if reason else ""
    if not info.resource_request:
        return errors.Forbidden(f'forbidden: User "{user.name}" cannot {info.verb} path '
                                f'"{info.path}"{suffix}')
    what = info.resource_and_sub
    scope = (f'in the namespace "{info.namespace}"' if info.namespace
             else "at the cluster scope")
    message = (f'User "{user.name}" cannot {info.verb} resource "{what}" in API group '
               f'"{info.api_group}" {scope}{suffix}')
    qualified = f"{info.resource}.{info.api_group}" if info.api_group else info.resource
    subject = f'{qualified} "{info.name}"' if info.name else qualified
    return errors.Forbidden(f"{subject} is forbidden: {message}", name=info.name or None,
                            group=info.api_group, kind=info.resource)
