"""Authenticators: client certificates, the token file, ServiceAccount and bootstrap tokens."""

import base64
import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from control import errors
from control.api.auth import authn, sa_token, tokens, user
from control.objects import kinds

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
ISSUER = "https://issuer.test"


def cert(cn, *orgs):
    subject = [(("commonName", cn),)] if cn else []
    return {"subject": tuple(subject + [(("organizationName", o),) for o in orgs])}


def test_a_certificate_names_the_user_and_its_groups():
    found = authn.user_from_certificate(cert("system:node:n1", "system:nodes"))
    assert found.name == "system:node:n1"
    assert found.groups == ("system:nodes", user.AUTHENTICATED)
    assert authn.user_from_certificate(cert(None, "system:masters")) is None


def test_the_peer_certificate_comes_from_the_socket_or_the_test_key():
    class Sock:
        def getpeercert(self):
            return cert("admin", "system:masters")

    assert authn.peer_certificate({"gunicorn.socket": Sock()})["subject"][0][0][1] == "admin"
    assert authn.peer_certificate({"gunicorn.socket": object()}) is None
    assert authn.peer_certificate({authn.PEER_CERT_KEY: cert("x")}) == cert("x")


def test_token_file_rows_as_kube_apiserver_reads_them(tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text('# comment\nt1,alice,uid-a,"dev,ops"\nt2,bob,uid-b\n')
    entries = tokens.read_token_file(path)
    assert entries["t1"].name == "alice" and entries["t1"].uid == "uid-a"
    assert entries["t1"].groups == ("dev", "ops", user.AUTHENTICATED)
    assert entries["t2"].groups == (user.AUTHENTICATED,)
    static = tokens.StaticTokens(entries)
    assert static.authenticate_token("t2").name == "bob"
    assert static.authenticate_token("t3") is None
    path.write_text("justatoken\n")
    with pytest.raises(ValueError):
        tokens.read_token_file(path)


def test_the_request_authenticator_prefers_the_certificate_then_the_token():
    chain = tokens.TokenChain([tokens.StaticTokens({"good": user.authenticated("bob")})])
    auth = authn.RequestAuthenticator(chain)
    env = {authn.PEER_CERT_KEY: cert("admin", "system:masters")}
    headers = {"AUTHORIZATION": "Bearer good"}
    assert auth.authenticate(env, headers.get)[0].name == "admin"
    assert auth.authenticate({}, headers.get)[0].name == "bob"
    assert auth.authenticate({}, {"AUTHORIZATION": "Bearer bad"}.get) == (
        None, "invalid bearer token")
    assert auth.authenticate({}, {}.get) == (None, None)
    assert auth.authenticate({}, {"AUTHORIZATION": "Basic abc"}.get) == (None, None)


class Objects:
    """A lookup over a dict of (resource, namespace, name) -> object."""

    def __init__(self, *objs):
        self.objs = {}
        for resource, obj in objs:
            self.add(resource, obj)

    def add(self, resource, obj):
        meta = obj["metadata"]
        self.objs[(resource, meta.get("namespace"), meta["name"])] = obj

    def __call__(self, resource, namespace, name):
        try:
            return self.objs[(resource, namespace, name)]
        except KeyError:
            raise errors.NotFound(name) from None


def sa_setup(clock=lambda: 1_800_000_000):
    key = ec.generate_private_key(ec.SECP256R1())
    signer = sa_token.TokenSigner(key, ISSUER, clock=clock)
    verifier = sa_token.TokenVerifier([key.public_key()], [ISSUER], [ISSUER], clock=clock)
    objects = Objects((kinds.SERVICEACCOUNTS, {"metadata": {"namespace": "ns", "name": "sa",
                                                            "uid": "sa-uid"}}),
                      (kinds.PODS, {"metadata": {"namespace": "ns", "name": "p", "uid": "p-uid"}}))
    return signer, tokens.ServiceAccountTokens(verifier, objects), objects


def test_a_service_account_token_authenticates_its_account():
    signer, authenticator, _ = sa_setup()
    token, _ = signer.issue("ns", "sa", "sa-uid", pod={"name": "p", "uid": "p-uid"})
    found = authenticator.authenticate_token(token)
    assert found.name == "system:serviceaccount:ns:sa" and found.uid == "sa-uid"
    assert set(found.groups) == {"system:serviceaccounts", "system:serviceaccounts:ns",
                                 user.AUTHENTICATED}
    assert found.extra["authentication.kubernetes.io/pod-name"] == ["p"]
    assert authenticator.authenticate_token("not-a-jwt") is None


def test_a_token_dies_with_its_account_or_pod():
    signer, authenticator, objects = sa_setup()
    token, _ = signer.issue("ns", "sa", "sa-uid", pod={"name": "p", "uid": "p-uid"})
    objects.add(kinds.PODS, {"metadata": {"namespace": "ns", "name": "p", "uid": "new-uid"}})
    with pytest.raises(tokens.InvalidCredentials, match="deleted"):
        authenticator.authenticate_token(token)
    del objects.objs[(kinds.PODS, "ns", "p")]
    with pytest.raises(tokens.InvalidCredentials, match="gone"):
        authenticator.authenticate_token(token)
    unbound, _ = signer.issue("ns", "sa", "sa-uid")
    objects.add(kinds.SERVICEACCOUNTS, {"metadata": {"namespace": "ns", "name": "sa",
                                                     "uid": "recreated"}})
    with pytest.raises(tokens.InvalidCredentials, match="deleted"):
        authenticator.authenticate_token(unbound)


def bootstrap_secret(token_id="abcdef", secret="0123456789abcdef", usage="true",
                     expiration=None, groups="system:bootstrappers:kubeadm:default-node-token"):
    data = {"token-id": token_id, "token-secret": secret,
            "usage-bootstrap-authentication": usage, "auth-extra-groups": groups}
    if expiration:
        data["expiration"] = expiration
    return {"metadata": {"namespace": "kube-system", "name": f"bootstrap-token-{token_id}"},
            "type": "bootstrap.kubernetes.io/token",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_a_bootstrap_token_authenticates_a_joining_node():
    objects = Objects((kinds.SECRETS, bootstrap_secret(expiration="2026-12-02T00:00:00Z")))
    authenticator = tokens.BootstrapTokens(objects, lambda: NOW)
    found = authenticator.authenticate_token("abcdef.0123456789abcdef")
    assert found.name == "system:bootstrap:abcdef"
    assert found.groups == ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                            user.AUTHENTICATED)
    assert authenticator.authenticate_token("not a bootstrap token") is None


@pytest.mark.parametrize("secret, token", [
    (bootstrap_secret(), "abcdef.0000000000000000"),
    (bootstrap_secret(usage="false"), "abcdef.0123456789abcdef"),
    (bootstrap_secret(expiration="2026-11-30T00:00:00Z"), "abcdef.0123456789abcdef"),
    (bootstrap_secret(), "zzzzzz.0123456789abcdef"),
    ({**bootstrap_secret(), "type": "Opaque"}, "abcdef.0123456789abcdef"),
])
def test_bad_bootstrap_tokens_are_refused(secret, token):
    authenticator = tokens.BootstrapTokens(Objects((kinds.SECRETS, secret)), lambda: NOW)
    with pytest.raises(tokens.InvalidCredentials):
        authenticator.authenticate_token(token)


def test_only_bootstrapper_groups_are_added():
    secret = bootstrap_secret(groups="system:masters,system:bootstrappers:extra")
    found = tokens.BootstrapTokens(Objects((kinds.SECRETS, secret)), lambda: NOW) \
        .authenticate_token("abcdef.0123456789abcdef")
    assert "system:masters" not in found.groups
    assert "system:bootstrappers:extra" in found.groups
