"""Put authentication and authorization in front of the handlers (falcon middleware).

Each request is authenticated (authn.py), its attributes read from the URL
(request_info.py) and authorized (authz.py); the user is left in
``req.context.user`` for the audit log and the reviews, and in ``context.current``
for the rules that judge an object against its author. A failed authentication
is a 401 and a refusal a 403, both Status objects.

Until enforcement is switched on (--authorization-mode other than AlwaysAllow),
credentials that do not authenticate are not refused: the request goes on as
anonymous, as it did before authentication existed.
"""

import logging

from control import errors
from control.api.auth import context
from control.api.auth import user as users
from control.api.auth.aggregation import aggregate
from control.api.auth.policy import RBAC_RESOURCES
from control.api.auth.request_info import request_info
from control.api.protobuf import negotiation

log = logging.getLogger("steer.apiserver.auth")

#: Paths served to anyone, even with --anonymous-auth=false (and their subpaths).
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
_RBAC_PLURALS = {(r.group, r.plural) for r in RBAC_RESOURCES}
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def is_public(path):
    return any(path == p or path.startswith(p + "/") for p in PUBLIC_PATHS)


class AuthMiddleware:
    """Authenticate, then authorize, every request."""

    def __init__(self, authenticator, authorizer, policy=None, service=None,
                 anonymous_auth=True, enforce=None):
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.policy = policy
        self.service = service
        self.anonymous_auth = anonymous_auth
        #: Refuse bad credentials with 401; by default only when authorization enforces.
        self.enforce = (not authorizer.allows_everything) if enforce is None else enforce

    def _user(self, req):
        found, failure = self.authenticator.authenticate(req.env, req.get_header)
        if found is not None:
            return found
        if self.enforce and failure:
            # As kube-apiserver: the client learns nothing of why; the log does.
            log.info("event=authentication_failed path=%s reason=%r", req.path[:200], failure)
            raise errors.Unauthorized("Unauthorized")
        if self.enforce and not self.anonymous_auth and not is_public(req.path):
            raise errors.Unauthorized("Unauthorized")
        return users.anonymous()

    def process_request(self, req, resp):
        user = self._user(req)
        req.context.user = user
        info = request_info(req.method, req.path, req.params)
        req.context.request_info = info
        self.authorizer.check(user, info)
        req.context.auth_token = context.current.set(
            context.RequestAuth(user, self.authorizer))

    def process_response(self, req, resp, resource, req_succeeded):
        token = req.context.get("auth_token")
        if token is not None:
            context.current.reset(token)
            req.context.auth_token = None
        info = req.context.get("request_info")
        if (info is None or not info.resource_request or req.method not in _WRITES
                or (info.api_group, info.resource) not in _RBAC_PLURALS):
            return
        if self.policy is not None:
            self.policy.invalidate()
        if req_succeeded and info.resource == "clusterroles" and self.service is not None:
            # Roles that aggregate this one are rewritten now (in memory they already are).
            token = context.current.set(None)
            try:
                aggregate(self.service)
            except errors.ApiError:
                pass    # the next ClusterRole write, or the next start, tries again
            finally:
                context.current.reset(token)
            self.policy.invalidate()


class ProtobufReviews:
    """Mark the answer for protobuf when the client prefers it (negotiation.py).

    Protobuf request bodies, reviews included, are decoded when a handler reads
    them (bodies.read_value), after authentication.
    """

    def process_request(self, req, resp):
        negotiation.mark_answer(req, resp)
