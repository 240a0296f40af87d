"""The agent's port over mutual TLS: the API server's log proxy reaches it, nobody else does.

The agent serves with a certificate for its node name (CN system:node:<node>, DNS SAN
<node>, IP SAN 127.0.0.1) and takes only client certificates of the cluster CA; the
API server presents its kubelet client certificate (CN kube-apiserver-kubelet-client,
O system:masters) and verifies the agent for the node name the pod is bound to. The
cluster CA of this module is its own (the API server's fixture makes a CA only when
it starts); no shared agent token is configured on either side.
"""

import http.client
import ssl
import types
import urllib.error

import pytest

from cli.pki import CertificateAuthority
from control.objects.kinds import NODES, PODS
from tests.integration.agent.conftest import AgentProcess
from tests.support.apiproc import eventually

NODE = "tls-node"


@pytest.fixture(scope="module")
def kubelet_pki(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("kubelet-pki"))
    ca = CertificateAuthority.create(f"{base}/ca")
    foreign = CertificateAuthority.create(f"{base}/foreign")
    return types.SimpleNamespace(
        ca_file=ca.cert_path,
        apiserver=ca.issue(base, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                           ["system:masters"], client=True),
        serving=ca.issue(base, "kubelet", f"system:node:{NODE}", dns_names=[NODE],
                         ip_addresses=["127.0.0.1"], server=True),
        other_node=ca.issue(base, "node-other", "system:node:other", ["system:nodes"],
                            client=True),
        foreign_admin=foreign.issue(base, "foreign-admin", "admin", ["system:masters"],
                                    client=True))


@pytest.fixture(scope="module")
def server_args(kubelet_pki):
    """The API server reaches agents over mutual TLS, with no shared token."""
    return ["--kubelet-certificate-authority", kubelet_pki.ca_file,
            "--kubelet-client-certificate", kubelet_pki.apiserver.cert,
            "--kubelet-client-key", kubelet_pki.apiserver.key]


@pytest.fixture(scope="module")
def agent(server, kubelet_pki, tmp_path_factory):
    proc = AgentProcess(server, tmp_path_factory.mktemp("agent"), node_name=NODE, token=False,
                        extra_args=["--tls-cert-file", kubelet_pki.serving.cert,
                                    "--tls-private-key-file", kubelet_pki.serving.key,
                                    "--client-ca-file", kubelet_pki.ca_file])
    rest = server.rest_client()
    try:
        proc.start()
        eventually(lambda: _agent_port(rest), timeout=60, message="node registered",
                   logs=proc.logs)
        yield proc
    finally:
        proc.stop()
        proc.kill_containers()
        rest.close()


def _agent_port(rest, node=NODE):
    try:
        status = rest.get(NODES, None, node).get("status") or {}
    except Exception:
        return None
    return ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")


def _get(port, path, kubelet_pki, client=None, verify=True):
    """GET ``path`` on the agent over TLS with ``client`` (an Issued) or no certificate."""
    context = ssl.create_default_context(cafile=kubelet_pki.ca_file)
    if not verify:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _pod(name, node, command):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "none", "command": command}]}}


def _log(server, name):
    url = f"{server.url}/api/v1/namespaces/default/pods/{name}/log"
    try:
        with server.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_log_proxy_reaches_the_agent_over_mutual_tls(server, agent, rest):
    rest.create(PODS, "default", _pod("tls-hello", NODE,
                                      ["sh", "-c", "echo hello over tls; sleep 3600"]))
    status, body = eventually(
        lambda: (got := _log(server, "tls-hello"))[0] == 200 and b"hello over tls" in got[1]
        and got, timeout=60, message="the pod's log through the API server", logs=agent.logs)
    assert body.strip() == b"hello over tls"


def test_agent_refuses_clients_without_the_right_certificate(agent, rest, kubelet_pki):
    port = _agent_port(rest)
    # The API server's kubelet client may use the API (404: no such pod).
    assert _get(port, "/containerLogs/default/x/y", kubelet_pki, kubelet_pki.apiserver)[0] == 404
    assert _get(port, "/healthz", kubelet_pki, kubelet_pki.apiserver) == (200, b"ok\n")
    # Another node's certificate from the same CA: authenticated, not allowed.
    status, body = _get(port, "/containerLogs/default/x/y", kubelet_pki, kubelet_pki.other_node)
    assert status == 403 and b"system:node:other" in body
    # No client certificate, or one from another CA: no TLS session at all.
    for client in (None, kubelet_pki.foreign_admin):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(port, "/containerLogs/default/x/y", kubelet_pki, client)
    # Plain HTTP gets no answer.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()
    conn.close()


def test_api_server_refuses_an_agent_that_names_another_node(server, agent, rest):
    """A Node claiming the real agent's address does not get its pods' logs through it."""
    port = _agent_port(rest)
    rest.create(NODES, None, {"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": "impostor"}})
    node = rest.get(NODES, None, "impostor")
    node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                      "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    rest.update_status(NODES, None, node)
    rest.create(PODS, "default", _pod("on-impostor", "impostor", ["sleep", "1"]))
    status, body = _log(server, "on-impostor")
    assert status == 503, body
    assert b"is not node" in body and b"impostor" in body, body
