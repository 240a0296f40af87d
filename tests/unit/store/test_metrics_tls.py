"""The store's /metrics over TLS: only cluster-CA clients in system:monitoring may read it."""

import asyncio
import http.client
import socket
import ssl
import threading

import pytest

from cli.pki import CertificateAuthority
from store import node_main
from store.metrics import StoreMetrics, server_context


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("store-metrics")
    store_ca = CertificateAuthority.create(str(base / "store-ca"))
    cluster_ca = CertificateAuthority.create(str(base / "cluster-ca"))
    member = store_ca.issue(str(base / "pki"), "s1", "s1", ip_addresses=["127.0.0.1"],
                            server=True, client=True)
    return {
        "store_ca": store_ca, "cluster_ca": cluster_ca, "member": member,
        "monitor": cluster_ca.issue(str(base / "pki"), "monitor", "prometheus",
                                    ["system:monitoring"], client=True),
        "admin": cluster_ca.issue(str(base / "pki"), "admin", "admin", ["system:masters"],
                                  client=True),
        "store_client": store_ca.issue(str(base / "pki"), "apiserver", "apiserver",
                                       ["system:monitoring"], client=True),
    }


class Served:
    """StoreMetrics.serve on its own event loop thread."""

    def __init__(self, context):
        self.loop = asyncio.new_event_loop()
        metrics = StoreMetrics(lambda: {"steer_store_is_leader": ("Leader?", 1)})
        self.server = self.loop.run_until_complete(metrics.serve("127.0.0.1", 0, context))
        self.port = self.server.sockets[0].getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def tls_port(pki):
    served = Served(server_context(pki["member"].cert, pki["member"].key,
                                   pki["cluster_ca"].cert_path))
    try:
        yield served.port
    finally:
        served.stop()


def _get(port, pki, cert=None, path="/metrics"):
    context = ssl.create_default_context(cafile=pki["store_ca"].cert_path)
    if cert is not None:
        context.load_cert_chain(cert.cert, cert.key)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_a_monitoring_certificate_of_the_cluster_ca_reads_metrics(pki, tls_port):
    status, body = _get(tls_port, pki, pki["monitor"])
    assert status == 200 and "steer_store_is_leader 1" in body


def test_other_callers_are_refused(pki, tls_port):
    status, body = _get(tls_port, pki, pki["admin"])
    assert status == 403 and "system:monitoring" in body
    # The store CA's certificates (which open every key) are not accepted here,
    # and a caller without a certificate does not get past the handshake.
    for cert in (pki["store_client"], None):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _get(tls_port, pki, cert)
    assert _get(tls_port, pki, pki["monitor"])[0] == 200


def test_hostile_requests_get_4xx_and_the_port_keeps_serving(pki, tls_port):
    context = ssl.create_default_context(cafile=pki["store_ca"].cert_path)
    context.load_cert_chain(pki["monitor"].cert, pki["monitor"].key)
    silent = socket.create_connection(("127.0.0.1", tls_port))     # never says anything
    try:
        with context.wrap_socket(socket.create_connection(("127.0.0.1", tls_port)),
                                 server_hostname="127.0.0.1") as huge:
            huge.sendall(b"GET /" + b"x" * 20000 + b" HTTP/1.1\r\n\r\n")
            assert b" 431 " in huge.recv(4096)
        assert _get(tls_port, pki, pki["monitor"])[0] == 200
    finally:
        silent.close()


def test_without_certificate_flags_the_port_stays_plain_http(pki):
    served = Served(None)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        served.stop()


def test_the_flags_come_as_a_set(pki, tmp_path):
    args = node_main.build_parser().parse_args(
        ["--name", "s1", "--data-dir", str(tmp_path), "--peer-addr", "127.0.0.1:1",
         "--client-addr", "127.0.0.1:2", "--initial-cluster", "s1=127.0.0.1:1",
         "--metrics-cert-file", pki["member"].cert])
    with pytest.raises(SystemExit, match="--metrics-client-ca-file"):
        node_main.metrics_tls(args)
    args.metrics_key_file = pki["member"].key
    args.metrics_client_ca_file = pki["cluster_ca"].cert_path
    assert isinstance(node_main.metrics_tls(args), ssl.SSLContext)
    args.metrics_cert_file = args.metrics_key_file = args.metrics_client_ca_file = None
    assert node_main.metrics_tls(args) is None
