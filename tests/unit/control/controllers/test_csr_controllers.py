"""csrsigning and csrapproving: which requests are signed, for how long, and which are approved."""

import base64
import datetime
import os

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from cli.pki import CertificateAuthority
from control.controllers import csrapproving, csrsigning
from control.objects import x509certs
from tests.unit.control.controllers.fakes import FakeInformer

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
CLIENT = ["digital signature", "client auth"]
SERVING = ["digital signature", "key encipherment", "server auth"]


class Rest:
    """Record updates; answer SubjectAccessReviews from ``allowed`` (subresource -> bool)."""

    def __init__(self, allowed=None):
        self.updates, self.reviews, self.allowed = [], [], allowed or {}

    def update(self, resource, namespace, body, subresource=None):
        self.updates.append((subresource, body))
        return body

    def create(self, resource, namespace, body):
        attrs = body["spec"]["resourceAttributes"]
        self.reviews.append((body["spec"]["user"], attrs["subresource"]))
        return {**body, "status": {"allowed": self.allowed.get(attrs["subresource"], False)}}


def csr(name, cn="system:node:n1", orgs=("system:nodes",), signer=csrsigning.SIGNED[0],
        usages=CLIENT, username="system:node:n1", groups=("system:nodes",), approved=False,
        expiration=None, **names):
    pem = x509certs.make_request(x509certs.new_key(), cn, orgs, **names)
    spec = {"request": base64.b64encode(pem).decode(), "signerName": signer,
            "usages": list(usages), "username": username, "groups": list(groups)}
    if expiration:
        spec["expirationSeconds"] = expiration
    status = {"conditions": [{"type": "Approved", "status": "True"}]} if approved else {}
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name, "resourceVersion": "1"}, "spec": spec, "status": status}


@pytest.fixture
def ca(tmp_path):
    made = CertificateAuthority.create(str(tmp_path / "ca"), now=NOW)
    return csrsigning.SigningCA(made.cert_path, made.key_path)


def signed(ca, obj, duration=csrsigning.DEFAULT_DURATION):
    rest = Rest()
    controller = csrsigning.CSRSigningController(rest, FakeInformer([obj]), ca,
                                                 duration=duration, clock=lambda: NOW)
    controller.sync(obj["metadata"]["name"])
    return rest.updates


def test_an_approved_kubelet_client_request_is_signed_for_the_shorter_duration(ca):
    updates = signed(ca, csr("c", approved=True, expiration=3600), duration=7200)
    (sub, body), = updates
    assert sub == "status"
    cert = x509certs.load_certificate(base64.b64decode(body["status"]["certificate"]))
    assert cert.not_valid_after_utc - NOW == datetime.timedelta(hours=1)
    assert cert.not_valid_before_utc < NOW
    assert "system:node:n1" in cert.subject.rfc4514_string()
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_signing_duration_caps_a_longer_request(ca):
    (_, body), = signed(ca, csr("c", approved=True, expiration=10**7), duration=600)
    cert = x509certs.load_certificate(base64.b64decode(body["status"]["certificate"]))
    assert cert.not_valid_after_utc - NOW == datetime.timedelta(seconds=600)


def test_pending_denied_or_other_signers_are_not_signed(ca):
    assert signed(ca, csr("pending")) == []
    assert signed(ca, csr("other", signer="example.com/x", approved=True)) == []
    denied = csr("denied")
    denied["status"] = {"conditions": [{"type": "Denied", "status": "True"}]}
    assert signed(ca, denied) == []


@pytest.mark.parametrize("obj, words", [
    (csr("masters-o", orgs=("system:masters",), approved=True), "organization"),
    (csr("not-node", cn="alice", approved=True), "common name"),
    (csr("sans", approved=True, dns_names=["evil.example"]), "SANs"),
    (csr("usage", usages=["client auth", "server auth"], approved=True), "usages"),
    (csr("serving-no-san", signer=csrsigning.SIGNED[1], usages=SERVING, approved=True),
     "DNS or IP"),
    (csr("apiserver-client-masters", cn="eve", orgs=("system:masters",),
         signer=csrsigning.SIGNED[2], approved=True), "system:masters"),
])
def test_requests_a_signer_refuses_get_failed(ca, obj, words):
    (_, body), = signed(ca, obj)
    assert "certificate" not in body["status"]
    failed, = [c for c in body["status"]["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "SignerValidationFailure" and words in failed["message"]


def test_a_serving_certificate_carries_its_sans(ca):
    obj = csr("s", signer=csrsigning.SIGNED[1], usages=SERVING, approved=True,
              dns_names=["n1"], ip_addresses=["127.0.1.1"])
    (_, body), = signed(ca, obj)
    cert = x509certs.load_certificate(base64.b64decode(body["status"]["certificate"]))
    assert "n1" in str(cert.extensions)


def test_the_ca_is_read_again_when_its_files_change(tmp_path, ca):
    first = ca.load()[0]
    again = CertificateAuthority.create(os.path.dirname(ca.cert_file), now=NOW)
    assert again.cert.serial_number != first.serial_number
    assert ca.load()[0].serial_number == again.cert.serial_number


def test_a_signing_key_open_to_others_is_refused(tmp_path):
    made = CertificateAuthority.create(str(tmp_path / "ca"), now=NOW)
    os.chmod(made.key_path, 0o644)
    with pytest.raises(csrsigning.SigningKeyError, match="chmod 600"):
        csrsigning.SigningCA(made.cert_path, made.key_path)


# -- approving ----------------------------------------------------------------------------
def node(name, *addresses):
    return {"kind": "Node", "metadata": {"name": name},
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}


def approve(obj, allowed=None, nodes=()):
    rest = Rest(allowed)
    controller = csrapproving.CSRApprovingController(
        rest, FakeInformer([obj]), FakeInformer(nodes), clock=lambda: NOW)
    controller.sync(obj["metadata"]["name"])
    return rest


def approved_message(rest):
    (sub, body), = rest.updates
    assert sub == "approval"
    condition, = body["status"]["conditions"]
    assert condition["type"] == "Approved" and condition["reason"] == "AutoApproved"
    return condition["message"]


def test_a_renewal_is_approved_by_selfnodeclient():
    rest = approve(csr("renew"), {"selfnodeclient": True})
    assert "self kubelet client" in approved_message(rest)
    assert rest.reviews == [("system:node:n1", "selfnodeclient")]


def test_a_bootstrap_request_is_approved_by_nodeclient():
    obj = csr("join", username="system:bootstrap:abcdef", groups=("system:bootstrappers",))
    rest = approve(obj, {"nodeclient": True, "selfnodeclient": True})
    assert "kubelet client certificate after" in approved_message(rest)
    assert rest.reviews == [("system:bootstrap:abcdef", "nodeclient")]


def test_no_permission_leaves_it_pending():
    assert approve(csr("nobody", username="alice", groups=()), {}).updates == []
    # Another node's name is not a renewal, and nodes hold no nodeclient.
    other = csr("other", cn="system:node:n2")
    assert approve(other, {"selfnodeclient": True}).updates == []


def test_serving_requests_are_approved_only_for_the_nodes_own_names():
    own = node("n1", ("InternalIP", "127.0.1.1"), ("Hostname", "n1"))
    good = csr("serve", signer=csrsigning.SIGNED[1], usages=SERVING, dns_names=["n1"],
               ip_addresses=["127.0.1.1"])
    assert "own names" in approved_message(approve(good, nodes=[own]))
    foreign = csr("serve-foreign", signer=csrsigning.SIGNED[1], usages=SERVING,
                  dns_names=["n1", "kubernetes.default"], ip_addresses=["127.0.1.1"])
    assert approve(foreign, nodes=[own]).updates == []
    other_ip = csr("serve-ip", signer=csrsigning.SIGNED[1], usages=SERVING,
                   ip_addresses=["10.0.0.9"])
    assert approve(other_ip, nodes=[own]).updates == []
    not_node = csr("serve-alice", signer=csrsigning.SIGNED[1], usages=SERVING,
                   dns_names=["n1"], username="alice", groups=())
    assert approve(not_node, nodes=[own]).updates == []
    assert approve(good, nodes=[]).updates == []        # no Node object: pending


def test_decided_requests_are_left_alone():
    obj = csr("done", approved=True)
    assert approve(obj, {"selfnodeclient": True}).updates == []
