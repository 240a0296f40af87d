"""The agent's port: mutual TLS and who may call, 404s, the log options the API server forwards."""

import ssl
import threading
import types
import urllib.error
import urllib.request

import pytest

from agent.logs import LogWriter
from agent.main import agent_port_tls, parse_args
from agent.server import AgentServer, server_context
from cli.pki import CertificateAuthority


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("pki"))
    ca = CertificateAuthority.create(f"{base}/ca")
    return types.SimpleNamespace(
        ca_file=ca.cert_path,
        serving=ca.issue(base, "kubelet", "system:node:n1", dns_names=["n1"],
                         ip_addresses=["127.0.0.1"], server=True),
        apiserver=ca.issue(base, "apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                           ["system:masters"], client=True),
        node=ca.issue(base, "node-n2", "system:node:n2", ["system:nodes"], client=True))


@pytest.fixture
def served(tmp_path, pki):
    writer = LogWriter(str(tmp_path / "0.log"), clock_ns=lambda: 1_700_000_000 * 10**9)
    for n in range(3):
        writer.write("stdout", f"line{n}".encode())
    running = threading.Event()

    def find(namespace, pod, container, previous):
        if (namespace, pod, container) != ("default", "web", "c"):
            raise LookupError("no such container")
        return writer.path, running.is_set
    context = server_context(pki.serving.cert, pki.serving.key, pki.ca_file)
    server = AgentServer("127.0.0.1", 0, find, ssl_context=context).start()
    server.pki = pki
    yield server, writer, running
    server.stop()


def client_context(pki, client="apiserver"):
    context = ssl.create_default_context(cafile=pki.ca_file)
    if client:
        issued = getattr(pki, client)
        context.load_cert_chain(issued.cert, issued.key)
    return context


def open_url(server, path, client="apiserver"):
    return urllib.request.urlopen(f"https://127.0.0.1:{server.port}{path}", timeout=10,
                                  context=client_context(server.pki, client))


def get(server, path, client="apiserver"):
    with open_url(server, path, client) as response:
        return response.read().decode()


def test_healthz_answers_any_client_of_the_cluster_ca(served):
    assert get(served[0], "/healthz", client="node").strip() == "ok"


def test_logs_are_only_for_the_api_servers_kubelet_client(served):
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served[0], "/containerLogs/default/web/c", client="node")
    assert err.value.code == 403 and "system:node:n2" in err.value.read().decode()


def test_no_session_without_a_client_certificate(served):
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        get(served[0], "/healthz", client=None)


def test_unknown_container_and_bad_options(served):
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served[0], "/containerLogs/default/web/nope")
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served[0], "/containerLogs/default/web/c?tailLines=abc")
    assert err.value.code == 400


@pytest.mark.parametrize("query, expected", [
    ("", "line0\nline1\nline2\n"),
    ("?tailLines=1", "line2\n"),
    ("?limitBytes=3", "lin"),
    ("?tailLines=1&timestamps=true", "2023-11-14T22:13:20.000000000Z line2\n")])
def test_log_options(served, query, expected):
    assert get(served[0], "/containerLogs/default/web/c" + query) == expected


def test_follow_streams_until_the_container_exits(served):
    server, writer, running = served
    running.set()
    with open_url(server, "/containerLogs/default/web/c?follow=true&tailLines=0") as response:
        writer.write("stdout", b"live")
        assert response.read1(100) == b"live\n"
        running.clear()
        assert response.read() == b""


def test_metrics_in_plain_http_check_nobody():
    """Without a TLS context (the agent's --insecure-plain-http) anyone is answered."""
    server = AgentServer("127.0.0.1", 0, lambda *a: None,
                         metrics=lambda: "steer_agent_pods 3\n").start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                    timeout=10) as response:
            assert response.read() == b"steer_agent_pods 3\n"
    finally:
        server.stop()


def test_the_agent_refuses_to_start_without_tls_unless_told(pki):
    base = ["--kubeconfig", "k"]
    with pytest.raises(SystemExit) as err:
        agent_port_tls(parse_args(base))
    message = str(err.value)
    assert "--tls-cert-file" in message and "--client-ca-file" in message
    assert "--insecure-plain-http" in message and "\n" not in message
    with pytest.raises(SystemExit):     # half a setup
        agent_port_tls(parse_args([*base, "--tls-cert-file", pki.serving.cert,
                                   "--tls-private-key-file", pki.serving.key]))
    with pytest.raises(SystemExit):     # both at once
        agent_port_tls(parse_args([*base, "--insecure-plain-http",
                                   "--client-ca-file", pki.ca_file]))
    assert agent_port_tls(parse_args([*base, "--insecure-plain-http"])) is None
    context = agent_port_tls(parse_args([*base, "--tls-cert-file", pki.serving.cert,
                                         "--tls-private-key-file", pki.serving.key,
                                         "--client-ca-file", pki.ca_file]))
    assert context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(SystemExit):     # the token flag is gone
        parse_args([*base, "--agent-token-file", "t"])
