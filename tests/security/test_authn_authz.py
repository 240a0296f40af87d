"""Who reaches the API: each attack from issue 10's review, replayed against a real server.

The server runs as it will by default once enforcement is on: --authorization-mode
Node,RBAC, --anonymous-auth=true (Kubernetes' default: anonymous requests reach
authorization, which lets them read health and version only), a ServiceAccount
signing key and a static token file. Each attack is refused with the right code
and a Status body, and nothing it tried to write exists afterwards.
"""

import http.client
import json
import ssl

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cli.pki import CertificateAuthority
from control.api.auth import sa_token

TOKENS = {"dev": "dev-token-0123456789abcdef"}
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture(scope="module")
def server_args(tmp_path_factory):
    base = tmp_path_factory.mktemp("authz")
    (base / "tokens.csv").write_text(f"{TOKENS['dev']},dev,uid-dev,developers\n")
    key = ec.generate_private_key(ec.SECP256R1())
    (base / "sa.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
    return ["--authorization-mode", "Node,RBAC", "--anonymous-auth", "true",
            "--token-auth-file", str(base / "tokens.csv"),
            "--service-account-signing-key-file", str(base / "sa.key")]


class Client:
    """HTTPS requests to the server with a chosen client certificate and/or token."""

    def __init__(self, server, cert=None, token=None):
        self.server, self.token = server, token
        self.context = ssl.create_default_context(cafile=server.ca_file)
        if cert is not None:
            self.context.load_cert_chain(cert.cert, cert.key)

    def request(self, method, path, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, timeout=30,
                                           context=self.context)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()


def node_client(server, name):
    return Client(server, server.issue_client(f"node-{name}", f"system:node:{name}",
                                              ["system:nodes"]))


@pytest.fixture(scope="module")
def admin(server):
    client = Client(server, server.issue_client("admin-sec", "admin", ["system:masters"]))
    for name in ("n1", "n2"):
        assert client.request("POST", "/api/v1/nodes", {"metadata": {"name": name}})[0] == 201
    assert client.request("POST", "/api/v1/namespaces/default/secrets", {
        "metadata": {"name": "db-password"}, "data": {"p": "aHVudGVyMg=="}})[0] == 201
    return client


def refused(answer, code, *words):
    status, body = answer
    assert status == code, body
    assert body["kind"] == "Status" and body["code"] == code
    for word in words:
        assert word in body["message"], body["message"]


def shell_pod(name, node="n1"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{
                "name": "sh", "image": "busybox", "command": ["sh", "-c", "id > /host/owned"]}]}}


def test_an_anonymous_pod_with_a_node_name_is_forbidden(server, admin):
    anonymous = Client(server)
    refused(anonymous.request("POST", PODS, shell_pod("pwn")), 403,
            'User "system:anonymous" cannot create resource "pods"')
    assert admin.request("GET", f"{PODS}/pwn")[0] == 404


def test_anonymous_reads_only_health_and_version(server, admin):
    anonymous = Client(server)
    refused(anonymous.request("GET", "/api/v1/namespaces/default/secrets"), 403)
    refused(anonymous.request("GET", "/api/v1/nodes"), 403)
    assert anonymous.request("GET", "/version")[0] == 200
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=anonymous.context)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()


def _jwt(header, claims, signature=b""):
    return ".".join([sa_token.b64url(json.dumps(header).encode()),
                     sa_token.b64url(json.dumps(claims).encode()), sa_token.b64url(signature)])


def test_forged_service_account_tokens_are_401(server, admin):
    claims = {"iss": "https://kubernetes.default.svc.cluster.local",
              "sub": "system:serviceaccount:kube-system:clusterrole-aggregation-controller",
              "aud": ["https://kubernetes.default.svc.cluster.local"], "exp": 4102444800,
              "kubernetes.io": {"namespace": "kube-system",
                                "serviceaccount": {"name": "x", "uid": "y"}}}
    unsigned = _jwt({"alg": "none"}, claims)
    refused(Client(server, token=unsigned).request("GET", PODS), 401, "Unauthorized")
    key = ec.generate_private_key(ec.SECP256R1())
    foreign, _ = sa_token.TokenSigner(key, claims["iss"]).issue("kube-system", "x", "y")
    refused(Client(server, token=foreign).request("GET", PODS), 401)
    refused(Client(server, token="garbage").request("GET", "/healthz"), 401)


def test_a_certificate_from_another_ca_gets_nowhere(server, admin, tmp_path):
    rogue = CertificateAuthority.create(str(tmp_path / "rogue"))
    issued = rogue.issue(str(tmp_path), "fake-admin", "admin", ["system:masters"], client=True)
    try:
        status, _ = Client(server, issued).request("GET", "/api/v1/namespaces/default/secrets")
    except (ssl.SSLError, ConnectionError):
        return      # the handshake refused the certificate
    assert status in (401, 403)


def test_a_node_cannot_claim_or_rewrite_another_nodes_object(server, admin):
    n1 = node_client(server, "n1")
    refused(n1.request("PATCH", "/api/v1/nodes/n2", None), 403, "n1")
    refused(n1.request("POST", "/api/v1/nodes", {"metadata": {"name": "evil",
                                                               "labels": {"a": "b"}}}), 403)
    # The log path trusted any Node's address: an agent cannot repoint another node.
    refused(n1.request("PUT", "/api/v1/nodes/n2/status", {
        "metadata": {"name": "n2"}, "status": {"addresses": [
            {"type": "InternalIP", "address": "203.0.113.7"}]}}), 403)
    assert admin.request("GET", "/api/v1/nodes/evil")[0] == 404


def test_a_node_reads_no_secret_its_pods_do_not_use(server, admin):
    n1 = node_client(server, "n1")
    refused(n1.request("GET", "/api/v1/namespaces/default/secrets/db-password"), 403,
            "no relationship")
    refused(n1.request("GET", "/api/v1/namespaces/default/secrets"), 403)
    refused(n1.request("GET", "/api/v1/pods"), 403, "spec.nodeName=n1")


def test_a_user_cannot_grant_itself_more_than_it_holds(server, admin):
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    assert admin.request("POST", f"{rbac}/roles", {
        "metadata": {"name": "binder"},
        "rules": [{"verbs": ["create", "get"], "apiGroups": ["rbac.authorization.k8s.io"],
                   "resources": ["rolebindings", "roles"]}]})[0] == 201
    assert admin.request("POST", f"{rbac}/rolebindings", {
        "metadata": {"name": "dev-binder"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "binder"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "dev"}]})[0] == 201
    dev = Client(server, token=TOKENS["dev"])
    refused(dev.request("POST", f"{rbac}/rolebindings", {
        "metadata": {"name": "dev-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "dev"}]}), 403, "not currently held")
    refused(dev.request("POST", f"{rbac}/roles", {
        "metadata": {"name": "everything"},
        "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]}), 403,
        "not currently held")
    refused(dev.request("GET", "/api/v1/namespaces/default/secrets"), 403)
    assert admin.request("GET", f"{rbac}/rolebindings/dev-admin")[0] == 404
