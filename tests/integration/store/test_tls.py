"""The store's client port speaks mutual TLS: only store-CA certificates get in.

A member presents its serving certificate (its client address as IP SAN) and asks
for a client certificate signed by the store's own CA; plain TCP is served only
with --insecure-plain-client, never by default.
"""

import os
import secrets
import ssl
import subprocess
import sys

import pytest

from cli.local_store import free_ports
from cli.pki import CertificateAuthority
from store.client import StoreClient, Unavailable
from tests.support.storeproc import RawConnection

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """An admin certificate and CA that are not the store's."""
    base = str(tmp_path_factory.mktemp("foreign"))
    ca = CertificateAuthority.create(os.path.join(base, "ca"))
    issued = ca.issue(base, "admin", "admin", ["system:masters"], client=True)
    return {"ca_file": ca.cert_path, "cert_file": issued.cert, "key_file": issued.key}


def test_a_store_certificate_gets_in(cluster):
    for role in ("admin", "apiserver"):
        with cluster.client(role, timeout=15) as client:
            revision = client.put(b"tls/" + role.encode(), b"v")["revision"]
            assert client.get(b"tls/" + role.encode())["header"]["revision"] >= revision


def test_a_client_without_a_certificate_is_refused(cluster):
    files = cluster.client_tls["admin"]
    with StoreClient(cluster.endpoints, timeout=2, ca_file=files["ca_file"]) as client:
        with pytest.raises(Unavailable):
            client.get(b"tls/admin")


def test_a_plain_client_is_refused(cluster):
    with StoreClient(cluster.endpoints, timeout=2) as client:
        with pytest.raises(Unavailable) as err:
            client.get(b"tls/admin")
    assert "store CA and a client certificate" in err.value.message


def test_a_certificate_from_another_ca_is_refused(cluster, foreign):
    files = cluster.client_tls["admin"]
    stranger = {**foreign, "ca_file": files["ca_file"]}     # trusts the members, not trusted
    with StoreClient(cluster.endpoints, timeout=2, **stranger) as client:
        with pytest.raises(Unavailable):
            client.get(b"tls/admin")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        conn = RawConnection(cluster.nodes[0].client_addr, timeout=5, tls=stranger)
        try:
            assert conn.request({"id": 1, "op": "status"}) is None
            raise ConnectionError("the member hung up")
        finally:
            conn.close()


def test_a_member_not_signed_by_the_store_ca_is_not_trusted(cluster, foreign):
    files = cluster.client_tls["admin"]
    with StoreClient(cluster.endpoints, timeout=2, **{**files, "ca_file": foreign["ca_file"]}) \
            as client:
        with pytest.raises(Unavailable) as err:
            client.status()
    assert "certificate verify failed" in err.value.message


def test_plain_tcp_needs_its_explicit_flag(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(32))
    peer, client_addr = (f"127.0.0.1:{port}" for port in free_ports(2))
    result = subprocess.run(
        [sys.executable, "-m", "store.server", "--name", "a", "--data-dir", str(tmp_path / "a"),
         "--peer-addr", peer, "--client-addr", client_addr, "--initial-cluster", f"a={peer}",
         "--secret-file", str(secret)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ,
                                                                  "PYTHONPATH": ROOT})
    assert result.returncode != 0
    assert "--insecure-plain-client" in result.stderr and "--cert-file" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def steer_store(cluster, *args, env=None):
    return subprocess.run([sys.executable, "-m", "cli.main", "store", "--dir",
                           os.path.join(cluster.base_dir, "not-recorded"),
                           "--endpoints", ",".join(cluster.endpoints), "--timeout", "3", *args],
                          capture_output=True, text=True, timeout=90, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": ROOT, **(env or {})})


def test_steer_store_uses_the_admin_certificate(cluster):
    files = cluster.client_tls["admin"]
    env = {"STEER_STORE_CACERT": files["ca_file"], "STEER_STORE_CERT": files["cert_file"],
           "STEER_STORE_KEY": files["key_file"]}
    put = steer_store(cluster, "put", "tls/steer", "hello", env=env)
    assert put.returncode == 0, put.stderr
    got = steer_store(cluster, "get", "tls/steer", env=env)
    assert got.returncode == 0 and got.stdout.split() == ["tls/steer", "hello"], got.stderr
    refused = steer_store(cluster, "get", "tls/steer")
    assert refused.returncode != 0 and "unavailable" in refused.stderr
