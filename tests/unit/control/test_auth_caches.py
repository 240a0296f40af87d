"""What the secured path remembers: a connection's certificate user, a user's bindings."""

import ssl

from control.api.auth import authn, rbac
from control.api.auth import user as users
from control.api.auth.policy import Snapshot
from control.api.auth.request_info import request_info


class FakeTlsSocket:
    """A verified TLS socket: counts how often its peer certificate is read."""

    def __init__(self, cn, orgs=(), not_after="Jan  1 00:00:00 2030 GMT"):
        self.reads = 0
        self.cert = {"subject": ((("commonName", cn),),
                                 *((("organizationName", o),) for o in orgs)),
                     "notAfter": not_after}

    def getpeercert(self):
        self.reads += 1
        return self.cert


def test_a_connection_certificate_is_parsed_once():
    sock = FakeTlsSocket("alice", ["team"])
    environ = {"gunicorn.socket": sock}
    first = authn.connection_user(environ)
    assert first.name == "alice" and "team" in first.groups
    assert authn.connection_user(environ) == first
    assert sock.reads == 1
    other = FakeTlsSocket("bob")
    assert authn.connection_user({"gunicorn.socket": other}).name == "bob"


def test_a_connection_stops_authenticating_at_not_after():
    sock = FakeTlsSocket("alice", not_after="Jan  1 00:00:00 2027 GMT")
    expiry = ssl.cert_time_to_seconds("Jan  1 00:00:00 2027 GMT")
    environ = {"gunicorn.socket": sock}
    assert authn.connection_user(environ, clock=lambda: expiry - 1).name == "alice"
    assert authn.connection_user(environ, clock=lambda: expiry) is None


def test_no_certificate_and_no_socket():
    class Plain:
        def getpeercert(self):
            return None
    assert authn.connection_user({"gunicorn.socket": Plain()}) is None
    assert authn.connection_user({}) is None


def binding(kind, name, role, subjects, namespace=None):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "subjects": subjects,
            "roleRef": {"kind": "ClusterRole", "name": role}}


class FixedPolicy:
    def __init__(self, snapshot):
        self.snapshot = snapshot

    def current(self):
        return self.snapshot


def test_rbac_remembers_a_users_bindings_per_snapshot():
    view = {"metadata": {"name": "view"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}]}
    group = [{"kind": "Group", "name": "team"}]
    snapshot = Snapshot(cluster_roles=[view], role_bindings=[
        binding("RoleBinding", "team-view", "view", group, "dev")])
    authorizer = rbac.RBACAuthorizer(FixedPolicy(snapshot))
    alice = users.authenticated("alice", ["team"])
    get = request_info("GET", "/api/v1/namespaces/dev/configmaps/a", {})
    assert authorizer.authorize(alice, get) == (True, 'RBAC: allowed by RoleBinding "team-view/dev"')
    assert authorizer.authorize(alice, request_info(
        "DELETE", "/api/v1/namespaces/dev/configmaps/a", {})) == (False, "")
    assert authorizer.authorize(users.authenticated("bob"), get) == (False, "")
    assert (alice.name, alice.groups, "dev") in snapshot.memo
    # A new snapshot (a binding written) starts with nothing remembered.
    fresh = Snapshot(cluster_roles=[view], cluster_role_bindings=[
        binding("ClusterRoleBinding", "all-view", "view", [{"kind": "User", "name": "bob"}])])
    authorizer.policy.snapshot = fresh
    assert authorizer.authorize(users.authenticated("bob"), get) == \
        (True, 'RBAC: allowed by ClusterRoleBinding "all-view"')
    assert authorizer.authorize(alice, get) == (False, "")
