"""pods/binding and pods/log (proxied over mutual TLS to a fake node agent on a loopback port)."""

import types

import falcon.testing
import pytest

from cli.pki import CertificateAuthority
from control.api.app import create_app
from control.api.subresources import NO_KUBELET_CLIENT, kubelet_client_context
from tests.support.fake_agent import STAMP, FakeAgent, serving_certificate
from tests.support.fake_store import FakeStore

PODS = "/api/v1/namespaces/default/pods"


def pod(name="web", containers=("c",), node=None):
    spec = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def binding(name, node, **target):
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"kind": "Node", "name": node, **target}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A cluster CA, the API server's kubelet client and a node's client certificate."""
    base = str(tmp_path_factory.mktemp("pki"))
    ca = CertificateAuthority.create(f"{base}/ca")
    return types.SimpleNamespace(
        ca=ca, dir=base,
        apiserver=ca.issue(base, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                           ["system:masters"], client=True),
        node=ca.issue(base, "node-n1", "system:node:n1", ["system:nodes"], client=True))


def kubelet_tls(pki, client="apiserver"):
    issued = getattr(pki, client)
    return kubelet_client_context(pki.ca.cert_path, issued.cert, issued.key)


@pytest.fixture
def agent(pki):
    fake = FakeAgent(*serving_certificate(pki.ca, pki.dir, ["n1", "down"]), pki.ca.cert_path)
    yield fake
    fake.stop()


@pytest.fixture
def app(pki):
    return create_app(FakeStore(), kubelet_tls=kubelet_tls(pki))


@pytest.fixture
def client(app):
    return falcon.testing.TestClient(app)


def add_node(client, name="n1", port=None, address="127.0.0.1"):
    client.simulate_post("/api/v1/nodes", json={"metadata": {"name": name}})
    if port is None:
        return
    node = client.simulate_get(f"/api/v1/nodes/{name}").json
    node["status"] = {"addresses": [{"type": "Hostname", "address": "no-such-host.invalid"},
                                    {"type": "InternalIP", "address": address}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    assert client.simulate_put(f"/api/v1/nodes/{name}/status", json=node).status_code == 200


def test_binding_assigns_the_node_once(client):
    client.simulate_post(PODS, json=pod())
    bound = client.simulate_post(f"{PODS}/web/binding", json=binding("web", "n1"))
    assert bound.status_code == 201
    assert bound.json == {"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Success", "code": 201}
    got = client.simulate_get(f"{PODS}/web").json
    assert got["spec"]["nodeName"] == "n1"
    scheduled = [c for c in got["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled[0]["status"] == "True" and scheduled[0]["lastTransitionTime"]
    again = client.simulate_post(f"{PODS}/web/binding", json=binding("web", "n2"))
    assert again.status_code == 409 and again.json["reason"] == "Conflict"
    assert again.json["message"] == ('Operation cannot be fulfilled on pods/binding "web": '
                                     'pod web is already assigned to node "n1"')


def test_binding_errors(client):
    client.simulate_post(PODS, json=pod())
    other = client.simulate_post(f"{PODS}/web/binding", json=binding("other", "n1"))
    assert other.status_code == 400
    wrong_kind = client.simulate_post(f"{PODS}/web/binding",
                                      json=binding("web", "n1", kind="Pod"))
    assert wrong_kind.status_code == 422
    missing = client.simulate_post(f"{PODS}/nope/binding", json=binding("nope", "n1"))
    assert missing.status_code == 404 and missing.json["message"] == 'pods "nope" not found'
    assert client.simulate_get(f"{PODS}/web/binding").status_code == 405


def test_older_bindings_collection(client):
    core = {r["name"]: r for r in client.simulate_get("/api/v1").json["resources"]}
    assert core["bindings"]["verbs"] == ["create"] and core["pods/binding"]["kind"] == "Binding"
    client.simulate_post(PODS, json=pod())
    bound = client.simulate_post("/api/v1/namespaces/default/bindings",
                                 json=binding("web", "n1"))
    assert bound.status_code == 201
    assert client.simulate_get(f"{PODS}/web").json["spec"]["nodeName"] == "n1"


def test_logs_are_proxied_to_the_agent(client, agent):
    add_node(client, port=agent.port)
    client.simulate_post(PODS, json=pod(node="n1"))
    agent.logs[("default", "web", "c")] = ["one", "two", "three"]
    logs = client.simulate_get(f"{PODS}/web/log")
    assert logs.status_code == 200 and logs.text == "one\ntwo\nthree\n"
    assert agent.requests[-1]["user"] == "kube-apiserver-kubelet-client"
    assert agent.requests[-1]["path"] == "/containerLogs/default/web/c"
    tail = client.simulate_get(f"{PODS}/web/log", params={"tailLines": "1",
                                                         "timestamps": "true"})
    assert tail.text == STAMP + "three\n"
    assert agent.requests[-1]["params"] == {"tailLines": "1", "timestamps": "true"}


def test_follow_streams_lines_as_they_come(app, client, agent):
    add_node(client, port=agent.port)
    client.simulate_post(PODS, json=pod(node="n1"))
    agent.logs[("default", "web", "c")] = ["first"]
    environ = falcon.testing.create_environ(f"{PODS}/web/log", query_string="follow=true")
    body = app(environ, lambda status, headers: None)
    chunks = iter(body)
    assert next(chunks) == b"first\n"
    agent.append("second")
    assert next(chunks) == b"second\n"
    agent.finish()
    assert list(chunks) == []
    body.close()


def test_container_choice(client, agent):
    add_node(client, port=agent.port)
    client.simulate_post(PODS, json=pod(containers=("a", "b"), node="n1"))
    agent.logs[("default", "web", "b")] = ["from b"]
    ambiguous = client.simulate_get(f"{PODS}/web/log")
    assert ambiguous.status_code == 400
    assert ambiguous.json["message"] == ("a container name must be specified for pod web, "
                                         "choose one of: [a b]")
    unknown = client.simulate_get(f"{PODS}/web/log", params={"container": "z"})
    assert unknown.json["message"] == "container z is not valid for pod web"
    assert client.simulate_get(f"{PODS}/web/log", params={"container": "b"}).text == "from b\n"
    gone = client.simulate_get(f"{PODS}/web/log", params={"container": "a"})
    assert gone.status_code == 404 and "not found" in gone.json["message"]


def test_log_errors_say_what_is_missing(client, agent):
    client.simulate_post(PODS, json=pod("pending"))
    pending = client.simulate_get(f"{PODS}/pending/log")
    assert pending.status_code == 400
    assert pending.json["message"] == "pod pending is not scheduled to a node yet"
    add_node(client, "bare")
    client.simulate_post(PODS, json=pod("on-bare", node="bare"))
    bare = client.simulate_get(f"{PODS}/on-bare/log")
    assert bare.status_code == 503 and "no agent endpoint" in bare.json["message"]
    agent.stop()
    add_node(client, "down", port=agent.port)
    client.simulate_post(PODS, json=pod("on-down", node="down"))
    down = client.simulate_get(f"{PODS}/on-down/log")
    assert down.status_code == 503
    assert f"127.0.0.1:{agent.port} cannot be reached" in down.json["message"]


def test_the_agents_refusal_is_passed_on(pki, agent):
    """A client certificate the agent does not allow (a node's): its 403 comes back."""
    client = falcon.testing.TestClient(create_app(FakeStore(), kubelet_tls=kubelet_tls(pki, "node")))
    add_node(client, port=agent.port)
    client.simulate_post(PODS, json=pod(node="n1"))
    agent.logs[("default", "web", "c")] = ["x"]
    refused = client.simulate_get(f"{PODS}/web/log")
    assert refused.status_code == 403 and "system:node:n1" in refused.json["message"]


def test_without_a_kubelet_client_certificate_logs_are_unavailable(agent):
    """No --kubelet-* flags: 503 naming them; the agent is never dialled in plain HTTP."""
    client = falcon.testing.TestClient(create_app(FakeStore()))
    add_node(client, port=agent.port)
    client.simulate_post(PODS, json=pod(node="n1"))
    agent.logs[("default", "web", "c")] = ["x"]
    unavailable = client.simulate_get(f"{PODS}/web/log")
    assert unavailable.status_code == 503
    assert unavailable.json["message"] == NO_KUBELET_CLIENT
    assert "--kubelet-client-certificate" in NO_KUBELET_CLIENT
    assert agent.requests == []
