"""Find who sent a request: a TLS client certificate, a bearer token, or nobody.

The x509 authenticator reads the peer certificate the TLS layer verified against
--client-ca-file: gunicorn hands its socket over as ``environ["gunicorn.socket"]``
(tests inject a parsed certificate as ``environ["steer.peer_cert"]``, which no
client can set). CN is the user, each O a group, as Kubernetes reads them.
A connection's certificate is read and parsed once: its user is remembered for
the connection's later requests, until the certificate's notAfter.
"""

import ssl
import time
import weakref

from control.api.auth import user
from control.api.auth.tokens import InvalidCredentials

PEER_CERT_KEY = "steer.peer_cert"
#: TLS socket -> (UserInfo or None, notAfter in epoch seconds) of its peer certificate.
_connection_users = weakref.WeakKeyDictionary()


def peer_certificate(environ):
    """Return the verified peer certificate (``ssl.getpeercert()`` form), or None."""
    injected = environ.get(PEER_CERT_KEY)
    if injected is not None:
        return injected
    sock = environ.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        return getpeercert() or None
    except (ValueError, OSError):
        return None


def connection_user(environ, clock=time.time):
    """Return the UserInfo of the request's verified client certificate, or None.

    Parsed once per TLS connection (getpeercert builds a new dict on every call);
    past the certificate's notAfter the connection no longer authenticates.
    """
    if PEER_CERT_KEY in environ:
        cert = environ[PEER_CERT_KEY]
        return user_from_certificate(cert) if cert else None
    sock = environ.get("gunicorn.socket")
    try:
        found, not_after = _connection_users[sock]
    except (KeyError, TypeError):
        cert = peer_certificate(environ)
        found = user_from_certificate(cert) if cert else None
        not_after = _not_after(cert)
        try:
            _connection_users[sock] = (found, not_after)
        except TypeError:
            pass        # not weakly referable (not a socket): nothing remembered
    return found if found is None or clock() < not_after else None


def _not_after(cert):
    try:
        return ssl.cert_time_to_seconds(cert["notAfter"])
    except (KeyError, TypeError, ValueError):
        return float("inf")     # no date to go by: as long as the connection lasts


def user_from_certificate(cert):
    """Return the UserInfo of a certificate: CN the name, O the groups; None without CN."""
    name, groups = None, []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName" and name is None:
                name = value
            elif key == "organizationName":
                groups.append(value)
    if not name:
        return None
    return user.authenticated(name, groups)


def bearer_token(headers_get):
    """Return the bearer token of the Authorization header, '' if malformed, None if absent."""
    value = headers_get("AUTHORIZATION")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


class RequestAuthenticator:
    """Authenticate a request: certificate first, then bearer token, else anonymous."""

    def __init__(self, tokens=None, client_certificates=True, anonymous=True):
        self.tokens = tokens                    # a tokens.TokenChain, or None
        self.client_certificates = client_certificates
        self.anonymous = anonymous

    def authenticate(self, environ, headers_get):
        """Return (UserInfo or None for no credentials at all, why it failed or None).

        A failure (an invalid token) is never anonymous: the caller answers 401.
        """
        if self.client_certificates:
            found = connection_user(environ)
            if found is not None:
                return found, None
        token = bearer_token(headers_get)
        if token is not None:
            if not token or self.tokens is None:
                return None, "invalid bearer token"
            try:
                return self.tokens.authenticate_token(token), None
            except InvalidCredentials as exc:
                return None, str(exc)
        return None, None
