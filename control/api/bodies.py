"""Read request bodies (size-capped, within a deadline, chunked or not) and write JSON.

A body is read once, by ``buffer_body``, before the request counts against the
in-flight limits (limits.py), so a client trickling its body holds only its own
connection. The bytes are kept on ``req.context`` and parsed by decoding.py.
"""

import json
import socket
import time

from control import errors
from control.api import decoding
from control.api.protobuf import negotiation

#: kube-apiserver's own limit on a request body.
MAX_BODY_BYTES = 3 * 1024 * 1024
#: Seconds a client has to send a whole body.
BODY_READ_TIMEOUT = 30.0
#: Bytes read per call, so the deadline is checked between reads.
READ_CHUNK = 64 * 1024
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml",
              "application/apply-patch+yaml")


def has_body(req):
    """Whether the request carries a body (a Content-Length above 0, or chunked)."""
    return bool(req.content_length) or _chunked(req)


def buffer_body(req, timeout=BODY_READ_TIMEOUT, clock=time.monotonic):
    """Read the whole body into ``req.context.raw_body`` once; return the bytes.

    413 over MAX_BODY_BYTES, 408 when the client takes longer than ``timeout``
    seconds (the connection is then shut for reading: its rest is never read).
    """
    if req.context.get("raw_body") is not None:
        return req.context.raw_body
    length = req.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise _too_large(f"the request body is {length} bytes")
    if not length and not _chunked(req):
        req.context.raw_body = b""
        return b""
    # Chunked bodies come from the server's own de-chunking reader, to its end.
    stream = req.bounded_stream if length else req.stream
    deadline = clock() + timeout
    parts, size = [], 0
    while True:
        chunk = _read_before(req, stream, min(READ_CHUNK, MAX_BODY_BYTES + 1 - size),
                             deadline, clock)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large("the request body is larger")
        if length is not None and size >= length:
            break
    req.context.raw_body = b"".join(parts)
    return req.context.raw_body


def read_object(req):
    """Parse the request body as one JSON or YAML object."""
    body = read_value(req)
    if not isinstance(body, dict):
        raise errors.BadRequest("the request body must be an object, not "
                                f"{type(body).__name__}")
    return body


def read_value(req):
    """Parse the request body as any JSON or YAML value (a JSON patch is a list), or a
    protobuf object (control/api/protobuf/)."""
    raw = buffer_body(req)
    if not raw.strip():
        raise errors.BadRequest("the request body is empty; send a JSON or YAML object")
    if media_type(req) in YAML_TYPES:
        return decoding.decode_yaml(raw)
    if media_type(req) == negotiation.MEDIA_TYPE:
        return negotiation.read_body(req, raw)
    return decoding.decode_json(raw)


def media_type(req):
    """The request's media type without parameters, lower case ('' if none)."""
    return (req.content_type or "").split(";")[0].strip().lower()


def write_json(resp, body, status=None):
    """Write ``body`` as JSON, or as protobuf when the client prefers it and its kind has
    a message (control/api/protobuf/negotiation.py marks the response)."""
    if status is not None:
        resp.status = status
    if resp.context.get(negotiation.CONTEXT_FLAG):
        encoded = negotiation.encode_answer(body)
        if encoded is not None:
            resp.content_type = negotiation.MEDIA_TYPE
            resp.text, resp.data = None, encoded
            return
    resp.content_type = "application/json"
    resp.data, resp.text = None, json.dumps(body, separators=(",", ":"))


def _chunked(req):
    return "chunked" in (req.get_header("Transfer-Encoding") or "").lower()


def _too_large(what):
    return errors.RequestEntityTooLarge(f"{what}; the limit is {MAX_BODY_BYTES} bytes")


def _read_before(req, stream, size, deadline, clock):
    """Read up to ``size`` bytes, giving up (408) at ``deadline``."""
    remaining = deadline - clock()
    if remaining <= 0:
        _give_up(req)
    sock = req.env.get("gunicorn.socket")
    if _gevent_patched():
        import gevent

        try:
            with gevent.Timeout(remaining):
                return stream.read(size)
        except gevent.Timeout:
            _give_up(req)
    if sock is None:
        return stream.read(size)
    # Threads: every receive waits at most what is left of the deadline.
    previous = sock.gettimeout()
    try:
        sock.settimeout(remaining)
        return stream.read(size)
    except (socket.timeout, TimeoutError):
        _give_up(req)
    finally:
        sock.settimeout(previous)


def _give_up(req):
    sock = req.env.get("gunicorn.socket")
    if sock is not None:
        # The server would otherwise drain the rest of the body before the next request.
        # The plain socket's shutdown: an SSLSocket's would also drop TLS for the answer.
        try:
            socket.socket.shutdown(sock, socket.SHUT_RD)
        except (OSError, TypeError):
            pass
    raise RequestTimeout("the request body was not received in time: send it within the "
                         "server's body read timeout")


class RequestTimeout(errors.ApiError):
    """408: the client did not send its body in time."""

    code, reason = 408, "Timeout"


def _gevent_patched():
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("socket")
