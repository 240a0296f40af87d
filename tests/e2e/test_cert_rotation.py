"""A local cluster whose certificates live 60 s keeps serving past their expiry.

`steer up --cert-lifetime 60s`: the supervisor re-issues the control plane's
certificates before they expire and the components read them again without a
restart; the agents renew theirs by CSRs that the controller manager approves
and signs. After the first certificates' expiry the API server and the agents
present new certificates, a node's Lease is still renewed, the node is Ready and
`steer get pods` works.
"""

import datetime
import os
import socket
import ssl

import pytest

from control.client import RestClient, kubeconfig
from control.objects import kinds, x509certs
from tests.e2e.conftest import E2ECluster
from tests.support.apiproc import eventually

pytestmark = pytest.mark.e2e
LIFETIME = 60


class ShortLivedCluster(E2ECluster):
    """`steer up` with --cert-lifetime 60s."""

    def steer(self, *args, **kwargs):
        if args and args[0] == "up":
            args = (*args, "--cert-lifetime", f"{LIFETIME}s")
        return super().steer(*args, **kwargs)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ShortLivedCluster(tmp_path_factory.mktemp("steer-home"), nodes=1)
    try:
        yield c.up()
    finally:
        c.stop()


def peer_certificate(host, port, ca_file):
    """The certificate a TLS port presents (no client certificate: the handshake suffices)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    with socket.create_connection((host, port), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509certs.load_certificate(ssl.DER_cert_to_PEM_cert(der).encode())


def agent_certificate(cluster, ca_file):
    node = cluster.rest.get(kinds.NODES, None, "node-1")
    address = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"][0]
    port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    context.load_cert_chain(f"{cluster.home}/pki/admin.crt", f"{cluster.home}/pki/admin.key")
    with socket.create_connection((address, port), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:
            der = tls.getpeercert(binary_form=True)
    return x509certs.load_certificate(ssl.DER_cert_to_PEM_cert(der).encode())


def test_everything_keeps_working_past_the_first_certificates_expiry(cluster):
    ca_file = f"{cluster.home}/pki/ca.crt"
    host, port = cluster.url.removeprefix("https://").rsplit(":", 1)
    first_api = peer_certificate(host, int(port), ca_file)
    first_agent = agent_certificate(cluster, ca_file)
    assert (first_api.not_valid_after_utc - first_api.not_valid_before_utc).total_seconds() \
        <= LIFETIME * 1.5
    expiry = max(first_api.not_valid_after_utc, first_agent.not_valid_after_utc)
    eventually(lambda: datetime.datetime.now(datetime.timezone.utc) >
               expiry + datetime.timedelta(seconds=5), LIFETIME * 3, "the first expiry",
               logs=cluster.logs)
    # A fresh client: the admin's certificate in $STEER_HOME/kubeconfig was renewed too.
    cluster.rest = RestClient.from_config(kubeconfig.load(cluster.kubeconfig), timeout=10)
    renewed_api = peer_certificate(host, int(port), ca_file)
    assert renewed_api.serial_number != first_api.serial_number
    assert renewed_api.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)
    renewed_agent = agent_certificate(cluster, ca_file)
    assert renewed_agent.serial_number != first_agent.serial_number
    lease = cluster.rest.get(kinds.LEASES, "kube-node-lease", "node-1")["spec"]["renewTime"]
    eventually(lambda: cluster.rest.get(kinds.LEASES, "kube-node-lease", "node-1")["spec"]
               ["renewTime"] != lease, 15, "the node's Lease to be renewed", logs=cluster.logs)
    assert cluster.node_ready("node-1")
    got = cluster.steer("get", "pods", "-A")      # fails the test on a non-zero exit
    assert "NAME" in got.stdout or "No resources" in got.stdout + got.stderr
    # No component fell back to anonymous (an expired certificate on an old connection)
    # nor lost its Lease meanwhile.
    for name in os.listdir(os.path.join(cluster.home, "cluster", "logs")):
        with open(os.path.join(cluster.home, "cluster", "logs", name), errors="replace") as f:
            text = f.read()
        assert 'User "system:anonymous"' not in text, f"{name} was anonymous:\n{text[-3000:]}"
        assert "lost the lease" not in text, f"{name} lost its lease:\n{text[-3000:]}"
    csrs = cluster.rest.list(kinds.CERTIFICATESIGNINGREQUESTS)["items"]
    assert {c["spec"]["signerName"] for c in csrs} >= {
        "kubernetes.io/kube-apiserver-client-kubelet", "kubernetes.io/kubelet-serving"}
