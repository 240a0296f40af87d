"""Authenticate bearer tokens: the static token file, ServiceAccount JWTs, bootstrap tokens.

Each authenticator's ``authenticate_token(token, audiences=None)`` returns a
``UserInfo``, None when the token is not of its kind, or raises ``InvalidCredentials``
when it is of its kind but not valid (kube-apiserver answers 401 either way).
"""

import base64
import csv
import datetime
import hmac
import re

from control import errors
from control.api.auth import sa_token, user
from control.objects import kinds

BOOTSTRAP_TOKEN = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_GROUP = "system:bootstrappers"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"


class InvalidCredentials(Exception):
    """Credentials of a known kind that do not authenticate anyone."""


def read_token_file(path):
    """Read a kube-apiserver --token-auth-file: CSV token,user,uid[,"group1,group2"]."""
    entries = {}
    with open(path, newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3 or not row[0] or not row[1]:
                raise ValueError(f"{path}:{number}: want token,user,uid[,\"groups\"]")
            groups = [g.strip() for g in row[3].split(",") if g.strip()] if len(row) > 3 else []
            entries[row[0]] = user.authenticated(row[1], groups, uid=row[2])
    return entries


class StaticTokens:
    """Users named by a static token file (for admins; never for components)."""

    def __init__(self, entries):
        self.entries = dict(entries)

    @classmethod
    def from_file(cls, path):
        return cls(read_token_file(path))

    def authenticate_token(self, token, audiences=None):
        # Compare every entry in constant time: no early exit tells a prefix apart.
        found = None
        for known, info in self.entries.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = info
        return found


class ServiceAccountTokens:
    """ServiceAccount JWTs, valid while their ServiceAccount (and pod) live with that uid."""

    def __init__(self, verifier, lookup):
        self.verifier = verifier
        #: ``lookup(resource, namespace, name)`` returns the object or raises NotFound.
        self.lookup = lookup

    def authenticate_token(self, token, audiences=None):
        if not self.verifier.looks_like_jwt(token):
            return None
        try:
            claims = self.verifier.claims(token, audiences)
        except sa_token.InvalidToken as exc:
            raise InvalidCredentials(str(exc)) from None
        private = claims["kubernetes.io"]
        namespace = private.get("namespace", "")
        account = private["serviceaccount"]
        if claims.get("sub") != user.service_account_user(namespace, account.get("name", "")):
            raise InvalidCredentials("token subject does not match its ServiceAccount")
        self._check_alive(kinds.SERVICEACCOUNTS, namespace, account)
        extra = {}
        if isinstance(private.get("pod"), dict):
            self._check_alive(kinds.PODS, namespace, private["pod"])
            extra = {"authentication.kubernetes.io/pod-name": [private["pod"]["name"]],
                     "authentication.kubernetes.io/pod-uid": [private["pod"]["uid"]]}
        return user.authenticated(claims["sub"], user.service_account_groups(namespace),
                                  uid=account.get("uid", ""), extra=extra)

    def _check_alive(self, resource, namespace, ref):
        try:
            obj = self.lookup(resource, namespace, ref.get("name", ""))
        except errors.NotFound:
            raise InvalidCredentials(f"{resource.singular} {namespace}/{ref.get('name')} "
                                     "named by the token is gone") from None
        meta = obj.get("metadata", {})
        if meta.get("uid") != ref.get("uid") or meta.get("deletionTimestamp"):
            raise InvalidCredentials(f"{resource.singular} {namespace}/{ref.get('name')} "
                                     "named by the token was deleted")


def _secret_field(secret, key):
    """Return a Secret's value for ``key`` from data (base64) or stringData, or ''."""
    if key in (secret.get("stringData") or {}):
        return secret["stringData"][key]
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return ""
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


class BootstrapTokens:
    """``abcdef.0123456789abcdef`` tokens held by kube-system Secrets bootstrap-token-<id>."""

    def __init__(self, lookup, now):
        self.lookup = lookup
        #: ``now()`` returns an aware datetime (tests pass a fake clock).
        self.now = now

    def authenticate_token(self, token, audiences=None):
        match = BOOTSTRAP_TOKEN.fullmatch(token)
        if match is None:
            return None
        token_id, token_secret = match.groups()
        try:
            secret = self.lookup(kinds.SECRETS, "kube-system", f"bootstrap-token-{token_id}")
        except errors.NotFound:
            raise InvalidCredentials("no such bootstrap token") from None
        if secret.get("type") != BOOTSTRAP_SECRET_TYPE or secret["metadata"].get(
                "deletionTimestamp"):
            raise InvalidCredentials("no such bootstrap token")
        if not hmac.compare_digest(_secret_field(secret, "token-secret").encode(),
                                   token_secret.encode()):
            raise InvalidCredentials("bootstrap token secret does not match")
        if _secret_field(secret, "token-id") not in ("", token_id):
            raise InvalidCredentials("bootstrap token id does not match its Secret")
        if _secret_field(secret, "usage-bootstrap-authentication") != "true":
            raise InvalidCredentials("bootstrap token is not for authentication")
        expiration = _secret_field(secret, "expiration")
        if expiration and self._expired(expiration):
            raise InvalidCredentials("bootstrap token has expired")
        extra = [g.strip() for g in _secret_field(secret, "auth-extra-groups").split(",")
                 if g.strip().startswith(BOOTSTRAP_GROUP + ":")]
        return user.authenticated(BOOTSTRAP_USER_PREFIX + token_id, [BOOTSTRAP_GROUP, *extra])

    def _expired(self, expiration):
        try:
            when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            return True     # unreadable: treat as expired, as Kubernetes does
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return self.now() >= when


class TokenChain:
    """Try each token authenticator in turn; the first that knows the token decides."""

    def __init__(self, authenticators):
        self.authenticators = list(authenticators)

    def authenticate_token(self, token, audiences=None):
        """Return the token's user; raise InvalidCredentials if no authenticator accepts it."""
        reasons = []
        for authenticator in self.authenticators:
            try:
                found = authenticator.authenticate_token(token, audiences)
            except InvalidCredentials as exc:
                reasons.append(str(exc))
                continue
            if found is not None:
                return found
        raise InvalidCredentials("; ".join(reasons) or "invalid bearer token")
