"""Describe failed requests as typed exceptions carrying the server's ``Status``.

Callers branch on the class (``except NotFound``) rather than on numbers, as
client-go's ``apierrors.IsNotFound`` lets them; ``.body`` keeps the whole Status.
"""

import json


class ApiException(Exception):
    """A request the API server refused, or that never got an answer (status 0)."""

    def __init__(self, status, reason="", message="", body=None, headers=None):
        super().__init__(f"({status}) {reason}: {message}" if reason else f"({status}) {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body
        self.headers = headers or {}

    @property
    def details(self):
        return (self.body or {}).get("details", {}) if isinstance(self.body, dict) else {}


class BadRequest(ApiException):
    pass


class Unauthorized(ApiException):
    pass


class Forbidden(ApiException):
    pass


class NotFound(ApiException):
    pass


class Conflict(ApiException):
    """409 for a stale resourceVersion or a failed precondition."""


class AlreadyExists(Conflict):
    """409 for a create whose name is taken (a Conflict, as in client-go's sense of 409)."""


class Gone(ApiException):
    """410: the resourceVersion (or continue token) is older than the store keeps."""


class Invalid(ApiException):
    pass


class TooManyRequests(ApiException):
    pass


class ServerError(ApiException):
    """Any 5xx."""


class ConnectionFailed(ApiException):
    """No HTTP answer: refused, reset, timed out, or a stream cut mid-way (status 0)."""

    def __init__(self, message):
        super().__init__(0, "ConnectionFailed", message)


_BY_CODE = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
            410: Gone, 422: Invalid, 429: TooManyRequests}


def from_status(code, body, headers=None):
    """Build the typed exception for an HTTP error code and its (JSON) Status body."""
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text)
        except ValueError:
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": text.strip() or f"HTTP {code}", "code": code}
    if not isinstance(body, dict):
        body = {"message": str(body), "code": code}
    reason = body.get("reason", "")
    cls = _BY_CODE.get(code) or (ServerError if code >= 500 else ApiException)
    if code == 409 and reason == "AlreadyExists":
        cls = AlreadyExists
    return cls(code, reason, body.get("message", ""), body, headers)
