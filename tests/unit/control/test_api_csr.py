"""CertificateSigningRequests through the real app: requester, validation, /approval, /status.

Users as in auth/test_api_authz.py: ``admin`` (system:masters), ``n1`` (a node),
``alice`` (a token, no roles unless a test binds one).
"""

import base64

import pytest

from control.objects import x509certs
from tests.unit.control.auth.test_api_authz import As, binding, make_client

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"


def pem_request(cn="system:node:n1", orgs=("system:nodes",), **names):
    return x509certs.make_request(x509certs.new_key(), cn, orgs, **names)


def csr(name, request=None, signer=KUBELET, usages=("digital signature", "client auth"),
        **spec):
    request = pem_request() if request is None else request
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": signer,
                     "usages": list(usages), **spec}}


def approval(obj, kind="Approved"):
    return {**obj, "status": {"conditions": [
        {"type": kind, "status": "True", "reason": "KubectlApprove", "message": "ok"}]}}


@pytest.fixture
def client(tmp_path):
    return make_client(tmp_path)


def test_the_server_records_the_requester_never_the_body(client):
    body = csr("n1-client", username="system:admin", groups=["system:masters"], uid="x")
    created = As(client, "n1").simulate_post(CSRS, json=body)
    assert created.status_code == 201, created.text
    spec = created.json["spec"]
    assert spec["username"] == "system:node:n1"
    assert "system:nodes" in spec["groups"] and "system:masters" not in spec["groups"]
    assert "uid" not in spec
    assert created.json["status"] == {}


def test_an_update_keeps_spec_and_status(client):
    admin = As(client, "admin")
    created = admin.simulate_post(CSRS, json=csr("keep")).json
    changed = {**created, "spec": {**created["spec"], "signerName": "example.com/other"},
               "status": {"certificate": "eA=="},
               "metadata": {**created["metadata"], "labels": {"a": "b"}}}
    updated = admin.simulate_put(f"{CSRS}/keep", json=changed)
    assert updated.status_code == 200, updated.text
    assert updated.json["spec"]["signerName"] == KUBELET
    assert updated.json["status"] == {}
    assert updated.json["metadata"]["labels"] == {"a": "b"}


@pytest.mark.parametrize("body, field, words", [
    (csr("bad-pem", request=b"not a request"), "spec.request", "CERTIFICATE REQUEST"),
    (csr("garbled", request=b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                            b"-----END CERTIFICATE REQUEST-----\n"), "spec.request", "parse"),
    (csr("no-signer", signer=""), "spec.signerName", "Required"),
    (csr("bare-signer", signer="signer"), "spec.signerName", "example.com/signer-name"),
    (csr("upper-domain", signer="Example.COM/x"), "spec.signerName", "domain"),
    (csr("no-usages", usages=()), "spec.usages", "Required"),
    (csr("odd-usage", usages=("fly",)), "spec.usages[0]", "Unsupported"),
    (csr("twice", usages=("client auth", "client auth")), "spec.usages[1]", "Duplicate"),
    (csr("short", expirationSeconds=60), "spec.expirationSeconds", "600 seconds"),
    (csr("a/b"), "metadata.name", '"/"'),
])
def test_invalid_requests_are_refused_with_the_field(client, body, field, words):
    answer = As(client, "admin").simulate_post(CSRS, json=body)
    assert answer.status_code == 422, answer.text
    causes = answer.json["details"]["causes"]
    assert any(c["field"] == field and words in c["message"] for c in causes), causes
    assert As(client, "admin").simulate_get("/healthz").status_code == 200


def test_a_request_whose_signature_does_not_verify_is_refused(client):
    good = pem_request().decode()
    # Flip one character of the base64 body near the signature at the end.
    lines = good.splitlines()
    last = lines[-2]
    lines[-2] = last[:-3] + ("A" if last[-3] != "A" else "B") + last[-2:]
    answer = As(client, "admin").simulate_post(
        CSRS, json=csr("tampered", request=("\n".join(lines) + "\n").encode()))
    assert answer.status_code == 422, answer.text
    assert "spec.request" in answer.text


def test_system_masters_through_the_apiserver_client_signer_is_forbidden(client):
    body = csr("masters", request=pem_request("eve", ("system:masters",)),
               signer="kubernetes.io/kube-apiserver-client")
    answer = As(client, "admin").simulate_post(CSRS, json=body)
    assert answer.status_code == 403
    assert "system:masters" in answer.json["message"]


def test_approval_sets_only_approval_conditions(client):
    admin = As(client, "admin")
    created = admin.simulate_post(CSRS, json=csr("approve-me")).json
    body = approval(created)
    body["status"]["certificate"] = "eA=="
    body["spec"] = {**body["spec"], "signerName": "example.com/x"}
    answer = admin.simulate_put(f"{CSRS}/approve-me/approval", json=body)
    assert answer.status_code == 200, answer.text
    status = answer.json["status"]
    assert [c["type"] for c in status["conditions"]] == ["Approved"]
    assert status["conditions"][0]["lastUpdateTime"]
    assert "certificate" not in status
    assert answer.json["spec"]["signerName"] == KUBELET
    table = admin.simulate_get(CSRS, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]
    assert table["rows"][0]["cells"][2:] == [KUBELET, "admin", "<none>", "Approved"]


def test_approved_and_denied_are_exclusive_and_stay(client):
    admin = As(client, "admin")
    created = admin.simulate_post(CSRS, json=csr("both")).json
    both = approval(created)
    both["status"]["conditions"].append({"type": "Denied", "status": "True"})
    answer = admin.simulate_put(f"{CSRS}/both/approval", json=both)
    assert answer.status_code == 422 and "mutually exclusive" in answer.text
    approved = admin.simulate_put(f"{CSRS}/both/approval", json=approval(created)).json
    removed = {**approved, "status": {"conditions": []}}
    answer = admin.simulate_put(f"{CSRS}/both/approval", json=removed)
    assert answer.status_code == 422 and "may not remove" in answer.text
    false = approval(created)
    false["status"]["conditions"][0]["status"] = "False"
    answer = admin.simulate_put(f"{CSRS}/both/approval", json=false)
    assert answer.status_code == 422 and "Unsupported value" in answer.text


def test_approving_needs_approve_on_the_signer(client):
    admin, alice = As(client, "admin"), As(client, "alice")
    created = admin.simulate_post(CSRS, json=csr("alice-wants")).json
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "csr-updater"},
            "rules": [{"verbs": ["get", "update"], "apiGroups": ["certificates.k8s.io"],
                       "resources": ["certificatesigningrequests/approval"]}]}
    assert admin.simulate_post("/apis/rbac.authorization.k8s.io/v1/clusterroles",
                               json=role).status_code == 201
    assert admin.simulate_post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                               json=binding("alice-csr", "csr-updater", "User",
                                            "alice")).status_code == 201
    answer = alice.simulate_put(f"{CSRS}/alice-wants/approval", json=approval(created))
    assert answer.status_code == 403, answer.text
    assert f'signerName "{KUBELET}"' in answer.json["message"]
    assert admin.simulate_post(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json=binding("alice-approves", "system:certificates.k8s.io:"
                     "kube-apiserver-client-kubelet-approver", "User", "alice")).status_code == 201
    answer = alice.simulate_put(f"{CSRS}/alice-wants/approval", json=approval(created))
    assert answer.status_code == 200, answer.text


def test_status_sets_the_certificate_once_approved_and_keeps_approval(client):
    admin = As(client, "admin")
    created = admin.simulate_post(CSRS, json=csr("issue")).json
    cert = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    early = {**created, "status": {"certificate": cert.decode()}}
    assert admin.simulate_put(f"{CSRS}/issue/status", json=early).status_code == 422
    approved = admin.simulate_put(f"{CSRS}/issue/approval", json=approval(created)).json
    # A status write cannot approve, deny or un-approve.
    sneaky = {**approved, "status": {"conditions": [{"type": "Denied", "status": "True"}]}}
    answer = admin.simulate_put(f"{CSRS}/issue/status", json=sneaky)
    assert answer.status_code == 200, answer.text
    assert [c["type"] for c in answer.json["status"]["conditions"]] == ["Approved"]


def test_nodes_create_and_read_csrs_but_do_not_approve(client):
    node = As(client, "n1")
    created = node.simulate_post(CSRS, json=csr("n1-renew"))
    assert created.status_code == 201
    assert node.simulate_get(f"{CSRS}/n1-renew").status_code == 200
    answer = node.simulate_put(f"{CSRS}/n1-renew/approval", json=approval(created.json))
    assert answer.status_code == 403
    assert node.simulate_delete(f"{CSRS}/n1-renew").status_code == 403


@pytest.mark.parametrize("mutate", [
    lambda b: b["spec"].update(request="@@not base64@@"),
    lambda b: b["spec"].update(request=base64.b64encode(b"\x00" * 4096).decode()),
    lambda b: b["spec"].update(usages="client auth"),
    lambda b: b["spec"].update(expirationSeconds="3600"),
    lambda b: b["spec"].update(signerName="a" * 600 + ".io/x"),
])
def test_hostile_specs_get_a_4xx_and_the_server_serves_on(client, mutate):
    body = csr("hostile")
    mutate(body)
    answer = As(client, "admin").simulate_post(CSRS, json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json["message"]
    assert As(client, "admin").simulate_post(CSRS, json=csr("after")).status_code == 201


def test_a_certificate_that_is_not_pem_is_refused_on_status(client):
    admin = As(client, "admin")
    created = admin.simulate_post(CSRS, json=csr("bad-cert")).json
    approved = admin.simulate_put(f"{CSRS}/bad-cert/approval", json=approval(created)).json
    for junk in (b"junk", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"):
        body = {**approved, "status": {**approved["status"],
                                       "certificate": base64.b64encode(junk).decode()}}
        answer = admin.simulate_put(f"{CSRS}/bad-cert/status", json=body)
        assert answer.status_code == 422 and "status.certificate" in answer.text
