"""User-facing failures of `steer` and how API errors read on the terminal.

Commands raise ``CommandError(message, exit_code=1)`` for anything the user can fix;
``cli.main`` prints it as one ``error: ...`` line. API failures are turned into
kubectl's wording by ``describe_api_error`` so that a kubectl user recognises them
("Error from server (NotFound): pods "x" not found").
"""

from cli.store_cmd import CommandError  # one class for every verb, old and new
from control.client import errors as api_errors

__all__ = ["CommandError", "describe_api_error", "unreachable"]


def unreachable(server_url):
    """The error for a server that does not answer at all."""
    return CommandError(f"cannot reach the API server at {server_url}: is the cluster up? "
                        "run `steer up`")


def describe_api_error(exc):
    """Return the text kubectl prints for a failed request (without a trailing newline)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    message = exc.message or body.get("message") or str(exc)
    if exc.reason == "Invalid" or exc.status == 422:
        return _invalid(body.get("details") or {}, message)
    if exc.status == 401:
        return "error: You must be logged in to the server (Unauthorized)"
    reason = exc.reason or _REASONS.get(exc.status, "Unknown")
    return f"Error from server ({reason}): {message}"


def _invalid(details, message):
    """kubectl's wording of a 422: 'The Kind "name" is invalid: field: why' (one line per
    cause when there are several)."""
    causes = [c for c in details.get("causes") or [] if c.get("message")]
    if not details.get("kind") or not causes:
        return message
    head = f"The {details['kind']} \"{details.get('name', '')}\" is invalid"
    lines = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"]
             for c in causes]
    if len(lines) == 1:
        return f"{head}: {lines[0]}"
    return f"{head}: \n" + "\n".join(f"* {line}" for line in lines)


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Gone", 422: "Invalid",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
            504: "Timeout"}


def is_connection_failure(exc):
    return isinstance(exc, api_errors.ConnectionFailed)
