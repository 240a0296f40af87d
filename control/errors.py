"""API errors as Kubernetes ``Status`` objects.

Every failure the API server reports is one of these; the falcon error handler
turns it into the JSON Status body kubectl and client libraries understand.
"""


class ApiError(Exception):
    """A request that failed with an HTTP code and a Kubernetes reason."""

    code = 500
    reason = "InternalError"

    def __init__(self, message, *, name=None, kind=None, group=None, causes=None,
                 retry_after=None):
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind))
                        if v is not None}
        if causes:
            self.details["causes"] = causes
        self.retry_after = retry_after

    def status(self):
        """Return the Status object for this error."""
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        details = dict(self.details)
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            body["details"] = details
        return body


class BadRequest(ApiError):
    code, reason = 400, "BadRequest"


class Unauthorized(ApiError):
    code, reason = 401, "Unauthorized"


class Forbidden(ApiError):
    code, reason = 403, "Forbidden"


class NotFound(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowed(ApiError):
    code, reason = 405, "MethodNotAllowed"


class NotAcceptable(ApiError):
    code, reason = 406, "NotAcceptable"


class AlreadyExists(ApiError):
    code, reason = 409, "AlreadyExists"


class Conflict(ApiError):
    code, reason = 409, "Conflict"


class Gone(ApiError):
    code, reason = 410, "Expired"


class RequestEntityTooLarge(ApiError):
    code, reason = 413, "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class Invalid(ApiError):
    """422 with one cause per invalid field, as kube-apiserver reports them."""

    code, reason = 422, "Invalid"

    def __init__(self, kind, name, field_errors, group=None):
        causes = [{"reason": reason, "message": message, "field": path}
                  for path, reason, message in field_errors]
        summary = ", ".join(f"{path}: {message}" for path, _, message in field_errors)
        super().__init__(f'{kind} "{name}" is invalid: {summary}', name=name, kind=kind,
                         group=group, causes=causes)


class UnprocessablePatch(ApiError):
    """A PATCH that cannot be applied to the current object."""

    code, reason = 422, "Invalid"


class TooManyRequests(ApiError):
    code, reason = 429, "TooManyRequests"


class ServiceUnavailable(ApiError):
    code, reason = 503, "ServiceUnavailable"


class Timeout(ApiError):
    code, reason = 504, "Timeout"


def not_found(resource, name):
    return NotFound(f'{resource.qualified} "{name}" not found', name=name,
                    kind=resource.plural, group=resource.group)
