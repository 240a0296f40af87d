"""The agent's port over mutual TLS: the API server's log proxy reaches it, nobody else does.

The agent (conftest.py) serves with a certificate of the server's CA for its node name
(CN system:node:<node>, DNS SAN <node>, IP SAN 127.0.0.1) and takes only client
certificates of that CA; the API server presents its kubelet client certificate (CN
kube-apiserver-kubelet-client, O system:masters) and verifies the agent for the node
name the pod is bound to. There is no shared agent token on either side.
"""

import http.client
import ssl
import types
import urllib.error

import pytest

from cli.pki import CertificateAuthority
from control.objects.kinds import NODES, PODS
from tests.support.apiproc import eventually


@pytest.fixture(scope="module")
def clients(server, tmp_path_factory):
    """Client certificates: the server's kubelet client, another node's, a foreign admin's."""
    base = str(tmp_path_factory.mktemp("clients"))
    foreign = CertificateAuthority.create(f"{base}/foreign")
    return types.SimpleNamespace(
        ca_file=server.ca_file,
        apiserver=server.kubelet_client,
        other_node=server.issue_client("node-other", "system:node:other", ["system:nodes"]),
        foreign_admin=foreign.issue(base, "foreign-admin", "admin", ["system:masters"],
                                    client=True))


def _agent_port(rest, node):
    try:
        status = rest.get(NODES, None, node).get("status") or {}
    except Exception:
        return None
    return ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")


def _get(port, path, clients, client=None, verify=True):
    """GET ``path`` on the agent over TLS with ``client`` (an Issued) or no certificate."""
    context = ssl.create_default_context(cafile=clients.ca_file)
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
    rest.create(PODS, "default", _pod("tls-hello", agent.node_name,
                                      ["sh", "-c", "echo hello over tls; sleep 3600"]))
    status, body = eventually(
        lambda: (got := _log(server, "tls-hello"))[0] == 200 and b"hello over tls" in got[1]
        and got, timeout=60, message="the pod's log through the API server", logs=agent.logs)
    assert body.strip() == b"hello over tls"


def test_agent_refuses_clients_without_the_right_certificate(agent, rest, clients):
    port = _agent_port(rest, agent.node_name)
    # The API server's kubelet client may use the API (404: no such pod).
    assert _get(port, "/containerLogs/default/x/y", clients, clients.apiserver)[0] == 404
    assert _get(port, "/healthz", clients, clients.apiserver) == (200, b"ok\n")
    # Another node's certificate from the same CA: authenticated, not allowed.
    status, body = _get(port, "/containerLogs/default/x/y", clients, clients.other_node)
    assert status == 403 and b"system:node:other" in body
    # No client certificate, or one from another CA: no TLS session at all.
    for client in (None, clients.foreign_admin):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(port, "/containerLogs/default/x/y", clients, client)
    # Plain HTTP gets no answer.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/healthz")
        conn.getresponse().read()
    conn.close()


def test_api_server_refuses_an_agent_that_names_another_node(server, agent, rest):
    """A Node claiming the real agent's address does not get its pods' logs through it."""
    port = _agent_port(rest, agent.node_name)
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
