"""Seal the dashboard's session (the user's bearer token) into an encrypted cookie.

The API server runs several gunicorn workers that share nothing, so the session is
not kept in memory: the token travels in a cookie encrypted and authenticated with
Fernet (AES-128-CBC + HMAC-SHA256), under a key every worker derives from the same
secret (the ServiceAccount signing key). The cookie is HttpOnly (no script reads it),
Secure and SameSite=Strict (no other site's page sends it), and expires after
SESSION_SECONDS; the sealed payload carries its own issue time, so an old cookie
replayed after its Max-Age is refused too. Each session holds a random CSRF token
that every POST must echo.
"""

import base64
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("steer.ui")

SESSION_COOKIE = "steer_ui_session"
#: Before login: a random value the login form must echo (login CSRF, double submit).
LOGIN_COOKIE = "steer_ui_login"
SESSION_SECONDS = 8 * 3600
COOKIE_PATH = "/ui"
#: A token longer than this is refused at login (a JWT is ~1 KiB; a cookie holds 4 KiB).
MAX_TOKEN_BYTES = 2048


@dataclass(frozen=True)
class Session:
    """Who the browser is: a bearer token, or the TLS client certificate (token None)."""

    token: str
    csrf: str
    issued: float
    user: str = ""

    @property
    def uses_certificate(self):
        return self.token is None


def key_from_secret(secret_bytes):
    """Derive the cookie key from a secret every worker reads (HKDF-SHA256)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"steer-dashboard-session-v1").derive(secret_bytes)
    return base64.urlsafe_b64encode(derived)


def load_key(signing_key_file=None):
    """Return the Fernet key: from the signing key file, or random for this process."""
    if signing_key_file:
        with open(signing_key_file, "rb") as f:
            return key_from_secret(f.read())
    log.info("event=dashboard_session_key source=random note=%s",
             "sessions last only within one worker process (no signing key configured)")
    return key_from_secret(os.urandom(32))


class SessionBox:
    """Seal and open session cookies; ``clock`` is injectable for the expiry tests."""

    def __init__(self, key, clock=time.time, lifetime=SESSION_SECONDS):
        self.fernet = Fernet(key)
        self.clock = clock
        self.lifetime = lifetime

    def new(self, token, user=""):
        return Session(token=token, csrf=secrets.token_urlsafe(24), issued=self.clock(),
                       user=user)

    def seal(self, session):
        payload = json.dumps({"t": session.token, "c": session.csrf, "i": session.issued,
                              "u": session.user})
        return self.fernet.encrypt_at_time(payload.encode(), int(session.issued)).decode()

    def open(self, cookie_value):
        """Return the Session in a cookie, or None if absent, forged or expired."""
        if not cookie_value:
            return None
        try:
            raw = self.fernet.decrypt_at_time(cookie_value.encode(), self.lifetime,
                                              int(self.clock()))
            data = json.loads(raw)
        except (InvalidToken, ValueError, UnicodeError):
            return None
        return Session(token=data.get("t"), csrf=str(data.get("c")), issued=data.get("i"),
                       user=str(data.get("u") or ""))


def same_secret(expected, given):
    """Compare a CSRF value in constant time (a missing value never matches)."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def cookie_header(name, value, max_age):
    """Build a Set-Cookie value with every protective attribute."""
    return (f"{name}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; Secure; "
            "SameSite=Strict")
