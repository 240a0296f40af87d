"""ServiceAccount JWTs: signing, verification, expiry on a fake clock, audiences."""

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from control.api.auth import sa_token

ISSUER = "https://kubernetes.default.svc.cluster.local"


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(params=["ES256", "RS256"])
def key(request):
    if request.param == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pair(key, clock, audiences=(ISSUER,)):
    signer = sa_token.TokenSigner(key, ISSUER, clock=clock)
    verifier = sa_token.TokenVerifier([key.public_key()], [ISSUER], audiences, clock=clock)
    return signer, verifier


def test_a_token_carries_kubernetes_claims_and_verifies(key):
    clock = Clock()
    signer, verifier = pair(key, clock)
    token, expiry = signer.issue("ns", "builder", "uid-1", pod={"name": "p", "uid": "uid-p"})
    claims = verifier.claims(token)
    assert claims["sub"] == "system:serviceaccount:ns:builder"
    assert claims["aud"] == [ISSUER] and claims["iss"] == ISSUER
    assert claims["exp"] == expiry == int(clock.now) + 3600
    assert claims["nbf"] == claims["iat"] == int(clock.now)
    assert claims["kubernetes.io"] == {"namespace": "ns",
                                       "serviceaccount": {"name": "builder", "uid": "uid-1"},
                                       "pod": {"name": "p", "uid": "uid-p"}}
    header = json.loads(sa_token.b64url_decode(token.split(".")[0]))
    assert header["alg"] == signer.header["alg"] and header["kid"]


def test_an_expired_token_is_refused_after_the_leeway(key):
    clock = Clock()
    signer, verifier = pair(key, clock)
    token, expiry = signer.issue("ns", "sa", "u", expiration_seconds=600)
    clock.now = expiry + sa_token.LEEWAY - 1
    verifier.claims(token)
    clock.now = expiry + sa_token.LEEWAY + 1
    with pytest.raises(sa_token.InvalidToken, match="expired"):
        verifier.claims(token)


def test_a_token_not_valid_yet_is_refused(key):
    clock = Clock()
    signer, verifier = pair(key, clock)
    token, _ = signer.issue("ns", "sa", "u")
    clock.now -= sa_token.LEEWAY + 10
    with pytest.raises(sa_token.InvalidToken, match="not valid yet"):
        verifier.claims(token)


def test_audience_issuer_and_signature_are_checked(key):
    clock = Clock()
    signer, verifier = pair(key, clock)
    token, _ = signer.issue("ns", "sa", "u", audiences=["vault"])
    with pytest.raises(sa_token.InvalidToken, match="audiences"):
        verifier.claims(token)
    assert verifier.claims(token, audiences=["vault"])["aud"] == ["vault"]
    other = sa_token.TokenSigner(key, "https://elsewhere", clock=clock)
    with pytest.raises(sa_token.InvalidToken, match="issuer"):
        verifier.claims(other.issue("ns", "sa", "u")[0])
    good, _ = signer.issue("ns", "sa", "u")
    head, payload, signature = good.split(".")
    forged = json.loads(sa_token.b64url_decode(payload))
    forged["sub"] = "system:serviceaccount:kube-system:admin"
    tampered = ".".join([head, sa_token.b64url(json.dumps(forged).encode()), signature])
    with pytest.raises(sa_token.InvalidToken, match="signature"):
        verifier.claims(tampered)


def test_a_token_from_another_key_is_refused(key):
    clock = Clock()
    signer, _ = pair(key, clock)
    stranger = ec.generate_private_key(ec.SECP256R1())
    verifier = sa_token.TokenVerifier([stranger.public_key()], [ISSUER], [ISSUER], clock=clock)
    with pytest.raises(sa_token.InvalidToken, match="signature"):
        verifier.claims(signer.issue("ns", "sa", "u")[0])


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c", "e30.e30.", "!!.??.**"])
def test_malformed_tokens_are_refused(token, key):
    _, verifier = pair(key, Clock())
    with pytest.raises(sa_token.InvalidToken):
        verifier.claims(token)


def test_alg_none_is_refused(key):
    _, verifier = pair(key, Clock())
    header = sa_token.b64url(b'{"alg":"none"}')
    payload = sa_token.b64url(json.dumps({"iss": ISSUER, "aud": [ISSUER], "exp": 2e9}).encode())
    with pytest.raises(sa_token.InvalidToken, match="algorithm"):
        verifier.claims(f"{header}.{payload}.")


def test_keys_load_from_pem_files(tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "sa.key"
    key_file.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    pub_file = tmp_path / "sa.pub"
    pub_file.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        + other.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    assert isinstance(sa_token.load_signing_key(key_file), ec.EllipticCurvePrivateKey)
    keys = sa_token.load_verify_keys(pub_file)
    assert [sa_token.key_id(k) for k in keys] == [
        sa_token.key_id(private.public_key()), sa_token.key_id(other.public_key())]
    assert len(sa_token.load_verify_keys(key_file)) == 1
