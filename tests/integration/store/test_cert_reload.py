"""A store member serves a renewed certificate without a restart (file change or SIGHUP)."""

import os
import signal
import socket
import ssl

from cli.pki import CertificateAuthority
from tests.support.apiproc import eventually
from tests.support.storeproc import READY_TIMEOUT


def served_serial(cluster, i=0):
    files = cluster.client_tls["admin"]
    context = ssl.create_default_context(cafile=files["ca_file"])
    context.check_hostname = False
    context.load_cert_chain(files["cert_file"], files["key_file"])
    host, port = cluster.nodes[i].client_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def reissue(cluster, i=0):
    """Issue member ``i`` a new serving certificate in place, as `steer up` renews one."""
    node = cluster.nodes[i]
    for path in cluster._member_files(node):
        os.remove(path)
    cluster.ensure_certificates()


def test_a_renewed_certificate_is_served_to_new_connections(clusters):
    cluster = clusters.new(1, name="reload")
    cluster.wait_ready(READY_TIMEOUT)
    first = served_serial(cluster)
    reissue(cluster)
    eventually(lambda: served_serial(cluster) != first, 20, "the renewed certificate",
               logs=cluster.logs)
    with cluster.client("admin", timeout=15) as client:
        assert client.put(b"reload/k", b"v")["revision"] > 0


def test_sighup_reloads_and_the_member_keeps_serving(clusters):
    cluster = clusters.new(1, name="hup")
    cluster.wait_ready(READY_TIMEOUT)
    before = served_serial(cluster)
    reissue(cluster)
    os.kill(cluster.nodes[0].pid, signal.SIGHUP)
    eventually(lambda: served_serial(cluster) != before, 10, "the certificate after SIGHUP",
               logs=cluster.logs)
    with cluster.client("admin", timeout=15) as client:
        assert client.put(b"hup/k", b"v")["revision"] > 0
    assert CertificateAuthority.load(cluster.pki_dir)      # the CA itself was kept
