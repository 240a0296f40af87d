"""The API server's TLS: gunicorn's gevent worker serving certificates, client certificates
reaching the app, streams over TLS, and plain HTTP only when asked for by name."""

import os
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from cli.local_store import free_ports
from cli.pki import CertificateAuthority
from control.client import ConnectionFailed, RestClient
from control.objects import kinds
from tests.support.apiproc import ROOT

# A stand-in app served through ApiServerApplication (the real gunicorn settings): it
# answers what the TLS layer told it about the peer, and streams three lines slowly.
PEER_APP = textwrap.dedent("""
    import json, sys, time
    from control.api.server import ApiServerApplication, build_parser, check_tls_flags

    def app(environ, start_response):
        if environ["PATH_INFO"] == "/stream":
            start_response("200 OK", [("Content-Type", "application/json")])
            def lines():
                for i in range(3):
                    yield json.dumps({"type": "ADDED", "object": {"metadata": {"name": str(i)}}}
                                     ).encode() + b"\\n"
                    time.sleep(0.2)
            return lines()
        peer = environ["gunicorn.socket"].getpeercert()
        subject = {k: v for rdn in (peer or {}).get("subject", ()) for k, v in rdn}
        body = json.dumps({"cn": subject.get("commonName"),
                           "o": subject.get("organizationName")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    class PeerApp(ApiServerApplication):
        def load(self):
            return app

    parser = build_parser()
    args = parser.parse_args(sys.argv[1:])
    check_tls_flags(parser, args)
    PeerApp(args).run()
""")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    ca = CertificateAuthority.create(str(base / "ca"))
    serving = ca.issue(str(base), "apiserver", "kube-apiserver", dns_names=["localhost"],
                       ip_addresses=["127.0.0.1"], server=True)
    admin = ca.issue(str(base), "admin", "admin", ["system:masters"], client=True)
    stranger_ca = CertificateAuthority.create(str(base / "other"))
    stranger = stranger_ca.issue(str(base), "stranger", "admin", ["system:masters"],
                                 client=True)
    return base, ca, serving, admin, stranger


@pytest.fixture(scope="module")
def peer_server(pki):
    base, ca, serving, _, _ = pki
    script = base / "peer_app.py"
    script.write_text(PEER_APP)
    port = free_ports(1)[0]
    log_path = base / "peer_app.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(script), "--bind", f"127.0.0.1:{port}",
             "--store-endpoints", "127.0.0.1:1", "--workers", "1",
             "--tls-cert-file", serving.cert, "--tls-private-key-file", serving.key,
             "--client-ca-file", ca.cert_path],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT})
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=ca.cert_path)
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=2, context=context)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text()) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)


def test_verified_client_certificate_reaches_the_app(pki, peer_server):
    _, ca, _, admin, _ = pki
    client = RestClient(peer_server, ca_file=ca.cert_path, cert_file=admin.cert,
                        key_file=admin.key, retries=0)
    assert client.request("GET", "/whoami") == {"cn": "admin", "o": "system:masters"}


def test_client_without_certificate_is_served_anonymously(pki, peer_server):
    _, ca, _, _, _ = pki
    client = RestClient(peer_server, ca_file=ca.cert_path, retries=0)
    assert client.request("GET", "/whoami") == {"cn": None, "o": None}


def test_certificate_from_another_ca_is_refused(pki, peer_server):
    _, ca, _, _, stranger = pki
    client = RestClient(peer_server, ca_file=ca.cert_path, cert_file=stranger.cert,
                        key_file=stranger.key, retries=0)
    with pytest.raises(ConnectionFailed):
        client.request("GET", "/whoami")


def test_streams_flow_over_tls_in_the_gevent_worker(pki, peer_server):
    _, ca, _, admin, _ = pki
    client = RestClient(peer_server, ca_file=ca.cert_path, cert_file=admin.cert,
                        key_file=admin.key)
    watch = client.watch(kinds.PODS)
    watch._url = "/stream"      # the stand-in app streams at /stream
    with watch:
        assert [obj["metadata"]["name"] for _, obj in watch] == ["0", "1", "2"]


def test_plain_http_to_the_tls_port_gets_nothing(peer_server):
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(peer_server.replace("https", "http") + "/whoami", timeout=5)


def test_real_server_over_tls(server):
    """The module's steer-apiserver: the admin's certificate, the CA's trust, a watch."""
    rest = server.rest_client(timeout=10, retries=0)
    assert rest.request("GET", "/readyz")
    anonymous = RestClient(server.url, ca_file=server.ca_file, timeout=10, retries=0)
    assert anonymous.request("GET", "/version")["major"]
    untrusting = RestClient(server.url, timeout=10, retries=0)
    with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.request("GET", "/version")


def test_refuses_to_start_without_tls_unless_told():
    done = subprocess.run([sys.executable, "-m", "control.api.server", "--store-endpoints",
                           "127.0.0.1:1", "--bind", f"127.0.0.1:{free_ports(1)[0]}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 2
    for flag in ("--tls-cert-file", "--tls-private-key-file", "--insecure-plain-http"):
        assert flag in done.stderr

