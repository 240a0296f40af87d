"""Describe who sent a request: ``UserInfo`` and the groups Kubernetes gives everyone."""

from dataclasses import dataclass, field

#: Every authenticated user is in this group.
AUTHENTICATED = "system:authenticated"
#: Anonymous requests are from this user, in this group.
ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
#: Members of this group may do anything (cluster-admin is bound to it).
MASTERS = "system:masters"
#: Node agents: user system:node:<nodeName> in group system:nodes.
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) user: name, groups, uid and extra attributes."""

    name: str
    groups: tuple = ()
    uid: str = ""
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        # Groups arrive as lists from parsers; a tuple keeps the dataclass hashable.
        object.__setattr__(self, "groups", tuple(self.groups))

    @property
    def anonymous(self):
        return self.name == ANONYMOUS_USER

    def to_review(self):
        """Return the UserInfo of a TokenReview or SelfSubjectReview status."""
        body = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            body["uid"] = self.uid
        if self.extra:
            body["extra"] = {k: list(v) for k, v in self.extra.items()}
        return body


def authenticated(name, groups=(), uid="", extra=None):
    """Return a UserInfo for an authenticated user, adding system:authenticated."""
    groups = tuple(groups)
    if AUTHENTICATED not in groups:
        groups += (AUTHENTICATED,)
    return UserInfo(name, groups, uid, dict(extra or {}))


def anonymous():
    """Return the user of a request without credentials."""
    return UserInfo(ANONYMOUS_USER, (UNAUTHENTICATED,))


def service_account_user(namespace, name):
    """Return the user name of a ServiceAccount."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def parse_service_account(username):
    """Return (namespace, name) of a ServiceAccount user name, or None."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    namespace, sep, name = username[len(SERVICE_ACCOUNT_PREFIX):].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def service_account_groups(namespace):
    """Return the groups a ServiceAccount of ``namespace`` is in."""
    return (SERVICE_ACCOUNTS_GROUP, f"{SERVICE_ACCOUNTS_GROUP}:{namespace}")


def node_name(user):
    """Return the node name of a node agent's user, or None if it is not one."""
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
        return None
    return user.name[len(NODE_USER_PREFIX):] or None
