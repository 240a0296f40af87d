"""certificates.k8s.io on a real control plane: CSRs by the official client and kubectl,
the signing and approving controllers, and an agent joining with a bootstrap token whose
60-second certificates rotate while it keeps its Node Ready."""

import base64
import datetime
import json
import os
import socket
import ssl
import threading

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from agent.main import Agent, parse_args
from control.objects import kinds, x509certs
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane

KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
SIGNING_SECONDS = 60


@pytest.fixture(scope="module")
def plane(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("csr-plane")
    with ControlPlane(server, base, controllers="csrsigning,csrapproving,nodelifecycle",
                      scheduler=False,
                      manager_args=["--cluster-signing-cert-file", server.ca.cert_path,
                                    "--cluster-signing-key-file", server.ca.key_path,
                                    "--cluster-signing-duration", f"{SIGNING_SECONDS}s"]) as cp:
        yield cp


@pytest.fixture(scope="module")
def api(server):
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=server.kubeconfig,
                                client_configuration=configuration)
    with k8s.ApiClient(configuration) as api_client:
        yield k8s.CertificatesV1Api(api_client)


def request_pem(cn="alice", orgs=("dev",)):
    key = x509certs.new_key()
    return key, x509certs.make_request(key, cn, orgs)


def body(name, pem, signer="kubernetes.io/kube-apiserver-client", seconds=None):
    return k8s.V1CertificateSigningRequest(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1CertificateSigningRequestSpec(
            request=base64.b64encode(pem).decode(), signer_name=signer,
            usages=["digital signature", "client auth"], expiration_seconds=seconds))


def issued(api, name, timeout=30):
    def certificate():
        csr = api.read_certificate_signing_request(name)
        return csr.status.certificate if csr.status else None
    return base64.b64decode(eventually(certificate, timeout, f"a certificate for {name}"))


def test_the_official_client_creates_approves_and_reads_the_certificate(server, plane, api):
    key, pem = request_pem()
    created = api.create_certificate_signing_request(body("alice-client", pem, seconds=3600))
    assert created.spec.username == "admin"
    csr = api.read_certificate_signing_request("alice-client")
    csr.status = k8s.V1CertificateSigningRequestStatus(conditions=[
        k8s.V1CertificateSigningRequestCondition(type="Approved", status="True",
                                                 reason="Test", message="approved by a test")])
    api.replace_certificate_signing_request_approval("alice-client", csr)
    pem = issued(api, "alice-client")
    assert x509certs.certificate_matches_key(pem, key)
    cert = x509certs.load_certificate(pem)
    # --cluster-signing-duration (60 s) caps the hour asked for.
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == \
        SIGNING_SECONDS * 1.5      # backdated by half a short lifetime
    listed = api.list_certificate_signing_request()
    assert "alice-client" in [item.metadata.name for item in listed.items]


def test_a_client_request_for_another_signer_stays_pending(server, plane, api):
    _, pem = request_pem()
    api.create_certificate_signing_request(body("left-alone", pem, signer="example.com/mine"))
    csr = api.read_certificate_signing_request("left-alone")
    assert not (csr.status and csr.status.conditions)


@pytest.mark.kubectl
def test_kubectl_approves_denies_and_lists(server, plane, api):
    for name in ("k-approve", "k-deny"):
        api.create_certificate_signing_request(body(name, request_pem()[1]))
    server.kubectl("certificate", "approve", "k-approve")
    server.kubectl("certificate", "deny", "k-deny")
    issued(api, "k-approve")
    out = server.kubectl("get", "csr", "k-approve", "k-deny").stdout
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION",
                              "CONDITION"]
    shown = {row.split()[0]: row.split()[-1] for row in rows}
    assert shown == {"k-approve": "Approved,Issued", "k-deny": "Denied"}
    # Approving a denied request is refused: the conditions are exclusive.
    refused = server.kubectl("certificate", "approve", "k-deny", check=False)
    assert refused.returncode != 0


# -- a node joining with a bootstrap token ----------------------------------------------
def bootstrap_secret():
    data = {"token-id": TOKEN_ID, "token-secret": TOKEN_SECRET,
            "usage-bootstrap-authentication": "true"}
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{TOKEN_ID}", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def write_bootstrap_kubeconfig(path, server):
    document = {"apiVersion": "v1", "kind": "Config", "current-context": "boot",
                "clusters": [{"name": "c", "cluster": {"server": server.url,
                                                       "certificate-authority": server.ca_file}}],
                "users": [{"name": "u", "user": {"token": f"{TOKEN_ID}.{TOKEN_SECRET}"}}],
                "contexts": [{"name": "boot", "context": {"cluster": "c", "user": "u"}}]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    return path


def serving_certificate(server, port):
    context = ssl.create_default_context(cafile=server.ca_file)
    context.check_hostname = False
    context.load_cert_chain(server.kubelet_client.cert, server.kubelet_client.key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock) as tls:
            return x509certs.load_certificate(ssl.DER_cert_to_PEM_cert(
                tls.getpeercert(binary_form=True)).encode())


@pytest.fixture(scope="module")
def joined(server, plane, tmp_path_factory):
    base = tmp_path_factory.mktemp("join")
    rest = server.rest_client()
    rest.create(kinds.SECRETS, "kube-system", bootstrap_secret())
    boot = write_bootstrap_kubeconfig(str(base / "bootstrap.kubeconfig"), server)
    args = parse_args(["--bootstrap-kubeconfig", boot,
                       "--kubeconfig", str(base / "node" / "agent.kubeconfig"),
                       "--client-ca-file", server.ca_file,
                       "--node-name", "joiner", "--node-ip", "127.0.0.1", "--port", "0",
                       "--runtime", "fake", "--data-dir", str(base / "data"),
                       "--heartbeat-interval", "1"])
    agent = None
    try:
        agent = Agent(args).start(threading.Event())
        yield agent
    finally:
        if agent is not None:
            agent.stop()


def test_a_bootstrap_token_joins_a_node_with_approved_certificates(server, joined):
    rest = server.rest_client()
    node = eventually(lambda: _get(rest, kinds.NODES, "joiner"), 30, "the joined Node")
    assert node["metadata"]["name"] == "joiner"
    csrs = rest.list(kinds.CERTIFICATESIGNINGREQUESTS)["items"]
    by_user = {(c["spec"]["username"], c["spec"]["signerName"]) for c in csrs}
    assert (f"system:bootstrap:{TOKEN_ID}", KUBELET) in by_user
    assert ("system:node:joiner", "kubernetes.io/kubelet-serving") in by_user
    with open(joined.args.kubeconfig) as handle:
        kubeconfig = json.load(handle)
    user = kubeconfig["users"][0]["user"]
    assert "token" not in user and user["client-certificate"].endswith(
        "kubelet-client-current.pem")
    assert oct(os.stat(joined.args.kubeconfig).st_mode & 0o777) == "0o600"
    cert = serving_certificate(server, joined.server.port)
    assert cert.subject.rfc4514_string() == "CN=system:node:joiner,O=system:nodes"


def test_certificates_rotate_before_expiry_and_the_node_stays_ready(server, joined):
    rest = server.rest_client()
    first_serving = serving_certificate(server, joined.server.port)
    first_lease = rest.get(kinds.LEASES, "kube-node-lease", "joiner")["spec"]["renewTime"]
    expiry = first_serving.not_valid_after_utc
    # Past the first certificates' expiry: both must have been renewed meanwhile.
    eventually(lambda: datetime.datetime.now(datetime.timezone.utc) > expiry +
               datetime.timedelta(seconds=5), SIGNING_SECONDS + 30, "the first expiry")
    assert joined.client_certs.rotations >= 1 and joined.serving_certs.rotations >= 1
    renewed = serving_certificate(server, joined.server.port)
    assert renewed.serial_number != first_serving.serial_number
    assert renewed.not_valid_after_utc > datetime.datetime.now(datetime.timezone.utc)
    lease = eventually(lambda: rest.get(kinds.LEASES, "kube-node-lease", "joiner")["spec"]
                       ["renewTime"] != first_lease, 10, "a Lease renewal")
    assert lease
    node = rest.get(kinds.NODES, None, "joiner")
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"


def _get(rest, resource, name):
    try:
        return rest.get(resource, None, name)
    except Exception:       # noqa: BLE001 - not there yet
        return None
