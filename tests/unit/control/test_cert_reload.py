"""Renewed certificate files reach running contexts: tlsreload, RestClient, protobuf approvals."""

import os
import ssl

import pytest

from cli import certrenewal
from cli.pki import CertificateAuthority
from control.api import protobuf_csr, tlsreload
from control.client import RestClient
from control.client.kubeconfig import ClientConfig
from tests.unit.control.auth.test_api_authz import As, make_client


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def serial_of(context):
    """The serial of the certificate a server context presents (one in-memory handshake)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = context.wrap_bio(server_in, server_out, server_side=True)
    peer = client.wrap_bio(client_in, client_out, server_hostname="x")
    for _ in range(10):
        for side, src, dst in ((peer, client_out, server_in), (server, server_out, client_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            dst.write(src.read())
    from cryptography import x509
    return x509.load_der_x509_certificate(peer.getpeercert(binary_form=True)).serial_number


@pytest.fixture
def ca(tmp_path):
    return CertificateAuthority.create(str(tmp_path / "ca"))


def test_changed_files_are_loaded_into_the_same_context_at_most_once_an_interval(ca, tmp_path):
    first = ca.issue(str(tmp_path), "srv", "srv", server=True, dns_names=["x"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(first.cert, first.key)
    clock = Clock()
    files = tlsreload.CertificateFiles(clock=clock, interval=5)
    files.add(context, first.cert, first.key)
    before = serial_of(context)
    assert files.refresh() == 0                     # nothing changed
    ca.issue(str(tmp_path), "srv", "srv", server=True, dns_names=["x"])
    assert files.refresh() == 0                     # checked less than 5 s ago
    clock.now = 6
    assert files.refresh() == 1
    assert serial_of(context) != before


def test_a_half_written_pair_is_skipped_and_retried(ca, tmp_path):
    issued = ca.issue(str(tmp_path), "srv", "srv", server=True, dns_names=["x"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    files = tlsreload.CertificateFiles(clock=Clock(), interval=0)
    files.add(context, issued.cert, issued.key)
    before = serial_of(context)
    other = ca.issue(str(tmp_path), "other", "srv", server=True, dns_names=["x"])
    os.replace(other.key, issued.key)                # a new key, the old certificate
    assert files.refresh() == 0 and serial_of(context) == before
    os.replace(other.cert, issued.cert)
    assert files.refresh() == 1 and serial_of(context) != before


def test_a_rest_client_presents_renewed_client_certificates_on_new_connections(ca, tmp_path):
    issued = ca.issue(str(tmp_path), "cm", "system:kube-controller-manager", client=True)
    config = ClientConfig(server="https://127.0.0.1:1", ca_file=ca.cert_path,
                          cert_file=issued.cert, key_file=issued.key)
    rest = RestClient.from_config(config)
    rest._cert_check_interval = 0
    stamp = rest._cert_stamp
    rest._new_connection(1)
    assert rest._cert_stamp == stamp                # unchanged files: not read again
    ca.issue(str(tmp_path), "cm", "system:kube-controller-manager", client=True)
    rest._new_connection(1)                         # the next connection loads them
    assert rest._cert_stamp != stamp
    other = ca.issue(str(tmp_path), "x", "x", client=True)
    os.replace(other.key, issued.key)               # mid-write: key and certificate differ
    stamp = rest._cert_stamp
    rest._new_connection(1)
    assert rest._cert_stamp == stamp                # skipped, read again next time


def test_a_garbled_protobuf_approval_is_a_400_and_the_server_serves_on(tmp_path):
    admin = As(make_client(tmp_path), "admin")
    url = "/apis/certificates.k8s.io/v1/certificatesigningrequests/x/approval"
    proto = {"Content-Type": protobuf_csr.protobuf.MEDIA_TYPE}
    for body in (b"garbage", b"k8s\x00\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                 b"k8s\x00" + b"\x0a\x04\x0a\x02v1"):
        answer = admin.simulate_put(url, body=body, headers=proto)
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json["message"]
    assert admin.simulate_get("/healthz").status_code == 200


@pytest.mark.parametrize("text, seconds", [("60s", 60), ("90", 90), ("10m", 600),
                                           ("2h", 7200), ("365d", 365 * 86400)])
def test_cert_lifetimes_parse(text, seconds):
    assert certrenewal.parse_lifetime(text) == seconds


@pytest.mark.parametrize("text", ["5s", "soon", "-60s", ""])
def test_bad_cert_lifetimes_are_refused(text):
    with pytest.raises(Exception, match="duration|shorter"):
        certrenewal.parse_lifetime(text)


def test_short_lifetimes_are_checked_often_long_ones_seldom():
    assert certrenewal.check_interval(60) == 10
    assert certrenewal.check_interval(None) == certrenewal.MAX_INTERVAL
    assert certrenewal.check_interval(365 * 86400) == certrenewal.MAX_INTERVAL
