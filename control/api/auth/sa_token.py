"""Sign and verify ServiceAccount tokens: JWTs (ES256 or RS256) as kube-apiserver issues.

Claims, as Kubernetes writes them: ``iss``, ``sub`` (system:serviceaccount:<ns>:<name>),
``aud``, ``exp``, ``nbf``, ``iat`` and ``kubernetes.io`` with the namespace, the
ServiceAccount's name and uid and, for a token bound to a pod, the pod's. A token
is only as alive as what it names: authentication (authn.py) checks that the
ServiceAccount (and the pod) still exist with the same uid.
"""

import base64
import hashlib
import json
import re
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

#: kube-apiserver's default lifetime of a requested token, and its minimum.
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
#: Seconds of clock skew tolerated on nbf and exp.
LEEWAY = 60
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.S)


class InvalidToken(Exception):
    """A token that is malformed, badly signed, expired or not for this audience."""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise InvalidToken("not base64url") from None


def key_id(public_key):
    """Return the ``kid`` of a public key: the hash of its DER form, as Kubernetes does."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def _algorithm(key):
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name != "secp256r1":
            raise ValueError("only P-256 EC keys are supported (ES256)")
        return "ES256"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    raise ValueError("a ServiceAccount key must be an EC P-256 or an RSA key")


def load_signing_key(path):
    """Read the private key tokens are signed with (PEM)."""
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    _algorithm(key)
    return key


def load_verify_keys(path):
    """Read every public key (or private key's public half) in a PEM file."""
    with open(path, "rb") as f:
        text = f.read()
    keys = []
    for match in _PEM_BLOCK.finditer(text):
        label, pem = match.group(1), match.group(0)
        if label.endswith(b"PRIVATE KEY"):
            keys.append(serialization.load_pem_private_key(pem, password=None).public_key())
        elif label.endswith(b"PUBLIC KEY"):
            keys.append(serialization.load_pem_public_key(pem))
    if not keys:
        raise ValueError(f"{path}: no public or private key found")
    for key in keys:
        _algorithm(key)
    return keys


def _sign(key, data):
    if _algorithm(key) == "ES256":
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _verify(key, signature, data):
    if _algorithm(key) == "ES256":
        if len(signature) != 64:
            raise InvalidSignature()
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                   int.from_bytes(signature[32:], "big"))
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())


class TokenSigner:
    """Issue ServiceAccount tokens with one private key for one issuer."""

    def __init__(self, private_key, issuer, clock=time.time):
        self.key = private_key
        self.issuer = issuer
        self.clock = clock
        self.header = {"alg": _algorithm(private_key), "kid": key_id(private_key.public_key())}

    def issue(self, namespace, name, uid, audiences=None, expiration_seconds=None, pod=None,
              secret=None):
        """Return (token, expiry as a Unix time) for ServiceAccount ``namespace/name``.

        ``pod`` and ``secret`` (dicts with name and uid) bind the token to an object:
        it dies with it.
        """
        now = int(self.clock())
        expiry = now + int(expiration_seconds or DEFAULT_EXPIRATION_SECONDS)
        private = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod:
            private["pod"] = {"name": pod["name"], "uid": pod["uid"]}
        if secret:
            private["secret"] = {"name": secret["name"], "uid": secret["uid"]}
        claims = {"iss": self.issuer, "sub": f"system:serviceaccount:{namespace}:{name}",
                  "aud": list(audiences or [self.issuer]), "exp": expiry, "nbf": now,
                  "iat": now, "kubernetes.io": private}
        signing_input = (b64url(json.dumps(self.header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = _sign(self.key, signing_input.encode("ascii"))
        return signing_input + "." + b64url(signature), expiry


class TokenVerifier:
    """Check ServiceAccount tokens: signature, issuer, audience and times."""

    def __init__(self, public_keys, issuers, audiences, clock=time.time):
        self.keys = list(public_keys)
        self.by_kid = {key_id(k): k for k in self.keys}
        self.issuers = set(issuers)
        self.audiences = set(audiences)
        self.clock = clock

    @staticmethod
    def looks_like_jwt(token):
        return token.count(".") == 2

    def claims(self, token, audiences=None):
        """Return the token's claims; raise InvalidToken unless all checks pass.

        ``audiences`` (a TokenReview's) replaces the server's own when given.
        """
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(b64url_decode(header_b64))
            claims = json.loads(b64url_decode(payload_b64))
        except ValueError:
            raise InvalidToken("malformed token") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken("malformed token")
        if header.get("alg") not in ("ES256", "RS256"):
            raise InvalidToken(f"unsupported signing algorithm {header.get('alg')!r}")
        candidates = [self.by_kid[header["kid"]]] if header.get("kid") in self.by_kid \
            else self.keys
        signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
        signature = b64url_decode(signature_b64)
        if not any(self._verifies(k, header["alg"], signature, signing_input)
                   for k in candidates):
            raise InvalidToken("invalid signature")
        self._check_claims(claims, audiences)
        return claims

    @staticmethod
    def _verifies(key, alg, signature, data):
        if _algorithm(key) != alg:
            return False
        try:
            _verify(key, signature, data)
        except InvalidSignature:
            return False
        return True

    def _check_claims(self, claims, audiences):
        if claims.get("iss") not in self.issuers:
            raise InvalidToken("token issuer is not trusted")
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else aud
        wanted = set(audiences) if audiences else self.audiences
        if not isinstance(aud, list) or not wanted & set(aud):
            raise InvalidToken("token audiences are not accepted")
        now = self.clock()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, (int, float)) or now > exp + LEEWAY:
            raise InvalidToken("token has expired")
        if not isinstance(nbf, (int, float)) or now + LEEWAY < nbf:
            raise InvalidToken("token is not valid yet")
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict) or not isinstance(private.get("serviceaccount"), dict):
            raise InvalidToken("token names no ServiceAccount")
