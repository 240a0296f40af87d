"""Authentication and RBAC through the real app: table tests of (user, verb, path) -> code.

Users: ``admin`` (client certificate, system:masters), ``alice`` (a token, bound to
view in namespace ``team``), ``bob`` (a token, bound to nothing), node ``n1``
(client certificate, system:nodes) and anonymous clients.
"""

import base64
import json

import falcon.testing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from control.api.app import create_app
from control.api.auth import authn, user
from control.api.auth.setup import AuthOptions
from tests.support.fake_store import FakeStore

RBAC = "/apis/rbac.authorization.k8s.io/v1"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
MERGE = {"Content-Type": "application/merge-patch+json"}


def cert(cn, *orgs):
    return {"subject": ((("commonName", cn),), *((("organizationName", o),) for o in orgs))}


IDENTITIES = {
    "admin": {"extras": {authn.PEER_CERT_KEY: cert("admin", "system:masters")}},
    "n1": {"extras": {authn.PEER_CERT_KEY: cert("system:node:n1", "system:nodes")}},
    "n2": {"extras": {authn.PEER_CERT_KEY: cert("system:node:n2", "system:nodes")}},
    "alice": {"headers": {"Authorization": "Bearer alice-token"}},
    "bob": {"headers": {"Authorization": "Bearer bob-token"}},
    "anonymous": {},
}


class As:
    """Send requests as one identity."""

    def __init__(self, client, who):
        self.client, self.kwargs = client, IDENTITIES[who]

    def __getattr__(self, name):
        call = getattr(self.client, name)
        return lambda *args, **kw: call(*args, **{**self.kwargs, **kw,
                                                "headers": {**self.kwargs.get("headers", {}),
                                                            **kw.get("headers", {})}})


def make_client(tmp_path, **overrides):
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "sa.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    options = AuthOptions(authorization_mode="Node,RBAC", policy_ttl=0,
                          service_account_signing_key_file=str(key_file),
                          static_tokens={"alice-token": user.authenticated("alice"),
                                         "bob-token": user.authenticated("bob", ["dev"])},
                          **overrides)
    return falcon.testing.TestClient(create_app(FakeStore(), auth_options=options))


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def pod(name, node=None, secret=None):
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if secret:
        spec["volumes"] = [{"name": "s", "secret": {"secretName": secret}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def binding(name, role, subject_kind, subject, namespace=None, role_kind="ClusterRole"):
    body = {"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": subject_kind, "name": subject,
                          **({"apiGroup": "rbac.authorization.k8s.io"}
                             if subject_kind != "ServiceAccount" else {"namespace": namespace})}]}
    if namespace:
        body["metadata"]["namespace"] = namespace
    return body


@pytest.fixture
def client(tmp_path):
    client = make_client(tmp_path)
    admin = As(client, "admin")
    assert admin.simulate_post("/api/v1/namespaces", json=namespace("team")).status_code == 201
    assert admin.simulate_post(f"{RBAC}/namespaces/team/rolebindings",
                               json=binding("alice-view", "view", "User", "alice",
                                            "team")).status_code == 201
    for name, node, secret in (("on-n1", "n1", "s1"), ("on-n2", "n2", "s2")):
        assert admin.simulate_post("/api/v1/namespaces/team/pods",
                                   json=pod(name, node, secret)).status_code == 201
    for name in ("s1", "s2"):
        assert admin.simulate_post("/api/v1/namespaces/team/secrets", json={
            "metadata": {"name": name}, "data": {"k": "dg=="}}).status_code == 201
    for name in ("n1", "n2"):
        assert admin.simulate_post("/api/v1/nodes", json={
            "metadata": {"name": name, "labels": {"node-restriction.kubernetes.io/pool": "a"}}
        }).status_code == 201
    return client


@pytest.mark.parametrize("who, method, path, code", [
    ("admin", "GET", "/api/v1/namespaces/kube-system/secrets", 200),
    ("admin", "DELETE", "/api/v1/namespaces/team/pods/on-n2", 202),
    ("alice", "GET", "/api/v1/namespaces/team/pods", 200),
    ("alice", "GET", "/api/v1/namespaces/team/pods/on-n1", 200),
    ("alice", "GET", "/api/v1/namespaces/team/secrets/s1", 403),
    ("alice", "GET", "/api/v1/namespaces/team/secrets", 403),
    ("alice", "DELETE", "/api/v1/namespaces/team/pods/on-n1", 403),
    ("alice", "GET", "/api/v1/namespaces/default/pods", 403),
    ("alice", "GET", "/api/v1/pods", 403),
    ("alice", "GET", "/api/v1/nodes", 403),
    ("alice", "GET", "/apis/apps/v1/namespaces/team/deployments", 200),
    ("alice", "GET", "/api", 200),
    ("alice", "GET", "/apis/apps/v1", 200),
    ("bob", "GET", "/api/v1/namespaces/team/pods", 403),
    ("bob", "GET", "/api/v1/namespaces/team/pods/on-n1/log", 403),
    ("bob", "GET", "/openapi/v3", 200),
    ("bob", "GET", "/metrics", 403),
    ("anonymous", "GET", "/healthz", 200),
    ("anonymous", "GET", "/version", 200),
    ("anonymous", "GET", "/readyz", 200),
    ("anonymous", "GET", "/api", 403),
    ("anonymous", "GET", "/api/v1/namespaces/team/pods", 403),
    ("n1", "GET", "/api/v1/nodes/n1", 200),
    ("n1", "GET", "/api/v1/nodes", 200),
    ("n1", "GET", "/api/v1/namespaces/team/pods/on-n1", 200),
    ("n1", "GET", "/api/v1/namespaces/team/pods/on-n2", 403),
    ("n1", "GET", "/api/v1/pods", 403),
    ("n1", "GET", "/api/v1/namespaces/team/secrets/s1", 200),
    ("n1", "GET", "/api/v1/namespaces/team/secrets/s2", 403),
    ("n1", "GET", "/api/v1/namespaces/team/secrets", 403),
    ("n1", "DELETE", "/api/v1/nodes/n2", 403),
    ("n1", "DELETE", "/api/v1/namespaces/team/pods/on-n2", 403),
    ("n1", "GET", "/api/v1/namespaces/team/configmaps", 403),
])
def test_who_may_do_what(client, who, method, path, code):
    response = As(client, who).simulate_request(method, path)
    assert response.status_code == code, response.text
    if code == 403:
        assert response.json["reason"] == "Forbidden" and response.json["kind"] == "Status"


def test_forbidden_is_worded_as_kubernetes_words_it(client):
    body = As(client, "bob").simulate_get("/api/v1/namespaces/default/pods").json
    assert body["message"] == ('pods is forbidden: User "bob" cannot list resource "pods" in '
                               'API group "" in the namespace "default"')
    body = As(client, "bob").simulate_get("/apis/apps/v1/deployments").json
    assert body["message"] == ('deployments.apps is forbidden: User "bob" cannot list resource '
                               '"deployments" in API group "apps" at the cluster scope')
    body = As(client, "bob").simulate_get("/api/v1/namespaces/team/pods/on-n1/log").json
    assert body["message"].startswith('pods "on-n1" is forbidden: User "bob" cannot get '
                                      'resource "pods/log" in API group "" in the namespace')


def test_a_node_lists_only_its_own_pods(client):
    n1 = As(client, "n1")
    listed = n1.simulate_get("/api/v1/pods", params={"fieldSelector": "spec.nodeName=n1"})
    assert [p["metadata"]["name"] for p in listed.json["items"]] == ["on-n1"]
    assert n1.simulate_get("/api/v1/pods", params={
        "fieldSelector": "spec.nodeName=n2"}).status_code == 403
    assert n1.simulate_get("/api/v1/pods", params={
        "fieldSelector": "spec.nodeName=n1", "watch": "true", "timeoutSeconds": "1"}
    ).status_code == 200
    status = {"status": {"phase": "Running"}}
    assert merge_patch(n1, "/api/v1/namespaces/team/pods/on-n1/status", status
                       ).status_code == 200
    assert merge_patch(n1, "/api/v1/namespaces/team/pods/on-n2/status", status
                       ).status_code == 403


def merge_patch(identity, path, patch):
    return identity.simulate_patch(path, body=json.dumps(patch), headers=MERGE)


def test_node_restriction(client):
    n1 = As(client, "n1")
    assert merge_patch(n1, "/api/v1/nodes/n1", {"metadata": {"labels": {"a": "b"}}}
                       ).status_code == 200
    refused = merge_patch(n1, "/api/v1/nodes/n1", {"metadata": {"labels": {
        "node-restriction.kubernetes.io/pool": "b"}}})
    assert refused.status_code == 403 and "node-restriction" in refused.json["message"]
    assert merge_patch(n1, "/api/v1/nodes/n2", {"metadata": {"labels": {"a": "b"}}}
                       ).status_code == 403
    assert n1.simulate_post("/api/v1/nodes", json={"metadata": {"name": "n9"}}
                            ).status_code == 403
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert n1.simulate_post(leases, json=lease).status_code == 201
    assert n1.simulate_post(leases, json={**lease, "metadata": {"name": "n2"}}
                            ).status_code == 403
    assert n1.simulate_get(f"{leases}/n1").status_code == 200


def test_anonymous_auth_off_is_401_except_health(tmp_path):
    client = make_client(tmp_path, anonymous_auth=False)
    anonymous = As(client, "anonymous")
    response = anonymous.simulate_get("/api/v1/pods")
    assert response.status_code == 401 and response.json["reason"] == "Unauthorized"
    for path in ("/healthz", "/livez", "/readyz", "/version"):
        assert anonymous.simulate_get(path).status_code == 200


def test_a_bad_token_is_401_not_anonymous(client):
    response = client.simulate_get("/healthz", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.json["kind"] == "Status"


def access_review(client, who, verb, resource, namespace="", group="", name=""):
    attributes = {"verb": verb, "resource": resource, "namespace": namespace, "group": group,
                  "name": name}
    response = As(client, who).simulate_post(SSAR, json={
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes}})
    assert response.status_code == 201, response.text
    return response.json["status"]["allowed"]


def test_self_subject_access_reviews_answer_can_i(client):
    assert access_review(client, "alice", "list", "pods", "team")
    assert not access_review(client, "alice", "list", "pods", "default")
    assert not access_review(client, "alice", "create", "pods", "team")
    assert access_review(client, "admin", "delete", "nodes")
    assert not access_review(client, "anonymous", "get", "pods", "team") \
        if As(client, "anonymous").simulate_post(SSAR, json={}).status_code == 201 else True


def test_subject_access_reviews_need_the_right_and_answer_for_others(client):
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": "alice", "resourceAttributes": {
                  "verb": "get", "resource": "pods", "namespace": "team"}}}
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    assert As(client, "bob").simulate_post(path, json=review).status_code == 403
    answer = As(client, "admin").simulate_post(path, json=review)
    assert answer.status_code == 201 and answer.json["status"]["allowed"] is True
    assert "RoleBinding" in answer.json["status"]["reason"]


def test_self_subject_review_and_rules_review(client):
    whoami = As(client, "bob").simulate_post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    assert whoami.json["status"]["userInfo"] == {
        "username": "bob", "groups": ["dev", "system:authenticated"]}
    rules = As(client, "alice").simulate_post(
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        json={"spec": {"namespace": "team"}}).json["status"]
    assert any("pods" in r["resources"] and "list" in r["verbs"] for r in rules["resourceRules"])


def test_escalation_is_refused_without_escalate_or_bind(client):
    admin, bob = As(client, "admin"), As(client, "bob")
    manager = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "rbac-manager", "namespace": "team"},
               # Not "*": that would include the escalate and bind verbs.
               "rules": [{"verbs": ["get", "list", "create", "update", "delete"],
                          "apiGroups": ["rbac.authorization.k8s.io"],
                          "resources": ["roles", "rolebindings"]},
                         {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]}
    assert admin.simulate_post(f"{RBAC}/namespaces/team/roles", json=manager).status_code == 201
    assert admin.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=binding(
        "bob-manager", "rbac-manager", "User", "bob", "team", role_kind="Role")
    ).status_code == 201
    small = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "pod-reader", "namespace": "team"},
             "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}
    assert bob.simulate_post(f"{RBAC}/namespaces/team/roles", json=small).status_code == 201
    big = {**small, "metadata": {"name": "secret-reader", "namespace": "team"},
           "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]}
    refused = bob.simulate_post(f"{RBAC}/namespaces/team/roles", json=big)
    assert refused.status_code == 403
    assert "not currently held" in refused.json["message"]
    assert bob.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=binding(
        "dev-reader", "pod-reader", "Group", "dev", "team", role_kind="Role")).status_code == 201
    refused = bob.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=binding(
        "bob-admin", "cluster-admin", "User", "bob", "team"))
    assert refused.status_code == 403
    # With the bind verb on that ClusterRole, the binding is allowed.
    assert admin.simulate_post(f"{RBAC}/namespaces/team/roles", json={
        **small, "metadata": {"name": "binder", "namespace": "team"},
        "rules": [{"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"],
                   "resources": ["clusterroles"], "resourceNames": ["admin"]}]}
    ).status_code == 201
    assert admin.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=binding(
        "bob-binder", "binder", "User", "bob", "team", role_kind="Role")).status_code == 201
    assert bob.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=binding(
        "bob-is-admin", "admin", "User", "bob", "team")).status_code == 201


def test_rbac_objects_are_validated(client):
    admin = As(client, "admin")
    bad = binding("b", "view", "Robot", "x", "team")
    response = admin.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=bad)
    assert response.status_code == 422 and "subjects[0].kind" in response.text
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": "team"},
            "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}
    assert admin.simulate_post(f"{RBAC}/namespaces/team/roles", json=role).status_code == 422
    created = admin.simulate_get(f"{RBAC}/namespaces/team/rolebindings/alice-view").json
    created["roleRef"]["name"] = "edit"
    response = admin.simulate_put(f"{RBAC}/namespaces/team/rolebindings/alice-view",
                                  json=created)
    assert response.status_code == 422 and "cannot change roleRef" in response.text


def test_aggregated_roles_follow_their_sources(client):
    admin = As(client, "admin")
    extra = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "widgets-view", "labels": {
                 "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
             "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}
    assert admin.simulate_post(f"{RBAC}/clusterroles", json=extra).status_code == 201
    for name in ("view", "edit", "admin"):
        rules = admin.simulate_get(f"{RBAC}/clusterroles/{name}").json["rules"]
        assert extra["rules"][0] in rules, name
    assert access_review(client, "alice", "get", "widgets", "team", group="example.com")


def test_default_policy_is_bootstrapped(client):
    admin = As(client, "admin")
    roles = {r["metadata"]["name"] for r in admin.simulate_get(f"{RBAC}/clusterroles").json["items"]}
    assert {"cluster-admin", "admin", "edit", "view", "system:basic-user", "system:discovery",
            "system:public-info-viewer", "system:kube-scheduler",
            "system:kube-controller-manager", "system:node-proxier", "system:node",
            "system:node-bootstrapper"} <= roles
    bindings = admin.simulate_get(f"{RBAC}/clusterrolebindings/cluster-admin").json
    assert bindings["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                                     "name": "system:masters"}]
    leases = admin.simulate_get(f"{RBAC}/namespaces/kube-system/roles").json["items"]
    assert {r["metadata"]["name"] for r in leases} == {
        "system::leader-locking-kube-scheduler", "system::leader-locking-kube-controller-manager"}


def test_service_account_tokens_from_token_requests(client):
    admin = As(client, "admin")
    assert admin.simulate_post("/api/v1/namespaces/team/serviceaccounts", json={
        "metadata": {"name": "builder"}}).status_code == 201
    assert admin.simulate_post(f"{RBAC}/namespaces/team/rolebindings", json=binding(
        "builder-view", "view", "ServiceAccount", "builder", "team")).status_code == 201
    issued = admin.simulate_post("/api/v1/namespaces/team/serviceaccounts/builder/token", json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600}})
    assert issued.status_code == 201, issued.text
    token = issued.json["status"]["token"]
    assert issued.json["status"]["expirationTimestamp"].endswith("Z")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.simulate_get("/api/v1/namespaces/team/pods", headers=headers).status_code == 200
    assert client.simulate_get("/api/v1/namespaces/default/pods",
                               headers=headers).status_code == 403
    review = admin.simulate_post("/apis/authentication.k8s.io/v1/tokenreviews", json={
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": token}}).json["status"]
    assert review["authenticated"] and review["user"]["username"] == \
        "system:serviceaccount:team:builder"
    assert admin.simulate_delete("/api/v1/namespaces/team/serviceaccounts/builder"
                                 ).status_code == 200
    assert client.simulate_get("/api/v1/namespaces/team/pods", headers=headers).status_code == 401
    review = admin.simulate_post("/apis/authentication.k8s.io/v1/tokenreviews", json={
        "spec": {"token": token}}).json["status"]
    assert review["authenticated"] is False and review["error"]


def test_a_node_requests_tokens_only_for_its_pods_accounts(client):
    admin, n1 = As(client, "admin"), As(client, "n1")
    admin.simulate_post("/api/v1/namespaces/team/serviceaccounts",
                        json={"metadata": {"name": "default"}})
    admin.simulate_post("/api/v1/namespaces/team/serviceaccounts",
                        json={"metadata": {"name": "other"}})
    path = "/api/v1/namespaces/team/serviceaccounts/{}/token"
    on_n1 = admin.simulate_get("/api/v1/namespaces/team/pods/on-n1").json["metadata"]
    bound = {"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "on-n1",
                                         "uid": on_n1["uid"]}}}
    issued = n1.simulate_post(path.format("default"), json=bound)
    assert issued.status_code == 201, issued.text
    # The token is bound to the pod: TokenReview names it, and it dies with the pod.
    token = issued.json["status"]["token"]
    review = admin.simulate_post("/apis/authentication.k8s.io/v1/tokenreviews", json={
        "spec": {"token": token}}).json["status"]
    assert review["authenticated"], review
    assert review["user"]["username"] == "system:serviceaccount:team:default"
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["on-n1"]
    # NodeRestriction: never unbound, never for another node's pod or another account.
    unbound = n1.simulate_post(path.format("default"), json={"spec": {}})
    assert unbound.status_code == 403 and "not bound to a pod" in unbound.json["message"]
    other_node = n1.simulate_post(path.format("default"), json={"spec": {"boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "on-n2"}}})
    assert other_node.status_code == 403 and "another node" in other_node.json["message"]
    assert n1.simulate_post(path.format("other"), json=bound).status_code == 403
    # The admin is no node: an unbound token is fine (kubectl create token).
    assert admin.simulate_post(path.format("default"), json={"spec": {}}).status_code == 201
    assert admin.simulate_delete("/api/v1/namespaces/team/pods/on-n1",
                                 params={"gracePeriodSeconds": "0"}).status_code in (200, 202)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.simulate_get("/api/v1/namespaces/team/pods", headers=headers).status_code == 401


def test_a_node_reads_the_root_ca_of_its_pods_token_volume(client):
    admin, n1 = As(client, "admin"), As(client, "n1")
    assert admin.simulate_post("/api/v1/namespaces/team/configmaps", json={
        "metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "PEM"}}).status_code == 201
    path = "/api/v1/namespaces/team/configmaps/kube-root-ca.crt"
    assert n1.simulate_get(path).status_code == 403         # no pod of n1 projects it yet
    volume = {"name": "kube-api-access-abcde", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt",
                                                               "path": "ca.crt"}]}}]}}
    with_volume = pod("api-user", "n1")
    with_volume["spec"]["volumes"] = [volume]
    assert admin.simulate_post("/api/v1/namespaces/team/pods",
                               json=with_volume).status_code == 201
    assert n1.simulate_get(path).status_code == 200
    assert As(client, "n2").simulate_get(path).status_code == 403


def test_bootstrap_tokens_get_the_bootstrapper_role(client):
    admin = As(client, "admin")
    data = {"token-id": "abcdef", "token-secret": "0123456789abcdef",
            "usage-bootstrap-authentication": "true"}
    assert admin.simulate_post("/api/v1/namespaces/kube-system/secrets", json={
        "metadata": {"name": "bootstrap-token-abcdef"}, "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    ).status_code == 201
    headers = {"Authorization": "Bearer abcdef.0123456789abcdef"}
    review = client.simulate_post(SSAR, headers=headers, json={"spec": {"resourceAttributes": {
        "verb": "create", "resource": "certificatesigningrequests",
        "group": "certificates.k8s.io"}}})
    assert review.status_code == 201 and review.json["status"]["allowed"] is True
    assert client.simulate_get("/api/v1/secrets", headers=headers).status_code == 403


def test_always_allow_keeps_todays_behaviour(tmp_path):
    client = falcon.testing.TestClient(create_app(FakeStore()))
    assert client.simulate_get("/api/v1/pods",
                               headers={"Authorization": "Bearer anything"}).status_code == 200
    assert client.simulate_get("/api/v1/namespaces/kube-system/secrets").status_code == 200
