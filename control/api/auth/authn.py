"""Find who sent a request: a TLS client certificate, a bearer token, or nobody.

The x509 authenticator reads the peer certificate the TLS layer verified against
--client-ca-file: gunicorn hands its socket over as ``environ["gunicorn.socket"]``
(tests inject a parsed certificate as ``environ["steer.peer_cert"]``, which no
client can set). CN is the user, each O a group, as Kubernetes reads them.
"""

from control.api.auth import user
from control.api.auth.tokens import InvalidCredentials

PEER_CERT_KEY = "steer.peer_cert"


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
            cert = peer_certificate(environ)
            found = user_from_certificate(cert) if cert else None
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
