"""pods/log over mutual TLS: the API server verifies the agent for the pod's node name.

A real ``agent.server.AgentServer`` with a serving certificate on a loopback port plays
the node agent; ``PodLogs`` reaches it with the API server's kubelet client context.
"""

import http.server
import threading

import pytest

from agent.server import AgentServer, server_context
from cli.pki import CertificateAuthority
from control import errors
from control.api import subresources
from control.objects import kinds


class Service:
    """The two reads PodLogs makes: the pod, and its node."""

    def __init__(self, node_name, port, address="127.0.0.1"):
        self.objects = {
            (kinds.PODS.plural, "web"): {
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"nodeName": node_name, "containers": [{"name": "c"}]}},
            (kinds.NODES.plural, node_name): {
                "metadata": {"name": node_name},
                "status": {"addresses": [{"type": "Hostname", "address": "elsewhere.invalid"},
                                         {"type": "InternalIP", "address": address}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}},
        }

    def get(self, kind, namespace, name):
        try:
            return self.objects[(kind.plural, name)]
        except KeyError:
            raise errors.NotFound(f"{name} not found") from None


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("pki"))
    ca = CertificateAuthority.create(f"{base}/ca")
    return {
        "ca": ca.cert_path,
        "apiserver": ca.issue(base, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                              ["system:masters"], client=True),
        "node": ca.issue(base, "node-n1", "system:node:n1", ["system:nodes"], client=True),
        "serving": ca.issue(base, "kubelet-n1", "system:node:n1", dns_names=["n1"],
                            ip_addresses=["127.0.0.1"], server=True),
    }


@pytest.fixture
def agent(pki, tmp_path):
    log = tmp_path / "c.log"
    log.write_text("2026-01-01T00:00:00Z stdout F one\n2026-01-01T00:00:01Z stdout F two\n")
    context = server_context(pki["serving"].cert, pki["serving"].key, pki["ca"])
    server = AgentServer("127.0.0.1", 0, lambda ns, pod, c, prev: (str(log), lambda: False),
                         ssl_context=context).start()
    yield server
    server.stop()


def logs(pki, service, client="apiserver", params=None):
    issued = pki[client]
    context = subresources.kubelet_client_context(pki["ca"], issued.cert, issued.key)
    return subresources.PodLogs(service, kubelet_tls=context).open("default", "web",
                                                                    params or {})


def test_logs_stream_over_mutual_tls(pki, agent):
    assert b"".join(logs(pki, Service("n1", agent.port))) == b"one\ntwo\n"
    limited = logs(pki, Service("n1", agent.port), params={"limitBytes": "2"})
    assert b"".join(limited) == b"on"


def test_an_agent_whose_certificate_names_another_node_is_refused(pki, agent):
    with pytest.raises(errors.ServiceUnavailable) as err:
        logs(pki, Service("n2", agent.port))
    assert 'is not node "n2"' in str(err.value)


def test_a_node_certificate_may_not_read_logs(pki, agent):
    with pytest.raises(errors.Forbidden) as err:
        logs(pki, Service("n1", agent.port), client="node")
    assert "system:node:n1" in str(err.value)


def test_only_the_internal_ip_is_dialled(pki, agent):
    service = Service("n1", agent.port)
    service.objects[(kinds.NODES.plural, "n1")]["status"]["addresses"] = [
        {"type": "Hostname", "address": "127.0.0.1"}]
    with pytest.raises(errors.ServiceUnavailable) as err:
        logs(pki, service)
    assert "InternalIP" in str(err.value)


class _Hostile(http.server.BaseHTTPRequestHandler):
    """An 'agent' answering with JSON, or with a long multi-line error body."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        if "json" in self.path:
            body, code, kind = b'{"secret": "x"}', 200, "application/json"
        else:
            body, code, kind = b"no\x1b[31m such\n" + b"x" * 5000, 404, "text/plain"
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile(pki):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    context = server_context(pki["serving"].cert, pki["serving"].key, pki["ca"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_unexpected_bodies_are_not_passed_on(pki, hostile):
    issued = pki["apiserver"]
    proxy = subresources.PodLogs(None, subresources.kubelet_client_context(
        pki["ca"], issued.cert, issued.key))
    with pytest.raises(errors.ApiError) as err:
        proxy._stream("127.0.0.1", hostile, "/containerLogs/json", False, "n1")
    assert err.value.code == 502 and "secret" not in str(err.value)
    with pytest.raises(errors.NotFound) as err:
        proxy._stream("127.0.0.1", hostile, "/containerLogs/x", False, "n1")
    message = str(err.value)
    assert message == "no?[31m such" and len(message) <= subresources.AGENT_MESSAGE_CHARS


def test_without_a_kubelet_client_context_nothing_is_dialled(agent):
    """No --kubelet-* flags: 503 naming them, instead of plain HTTP to the agent."""
    with pytest.raises(errors.ServiceUnavailable) as err:
        subresources.PodLogs(Service("n1", agent.port)).open("default", "web", {})
    assert str(err.value) == subresources.NO_KUBELET_CLIENT
