"""Frame format and message schemas shared by the store server and its client.

A frame is a 4-byte big-endian length followed by that many bytes of msgpack.
Every request is a map with an integer ``id`` (chosen by the client, unique on its
connection) and an ``op``; every response carries the same ``id``, so many requests
can be in flight on one connection and answers may come back in any order.

Request:   {"id": 7, "op": "put", "key": b"k", "value": b"v", "client": 42, "req": 9}
Response:  {"id": 7, "header": {...}, "result": {...}}
       or  {"id": 7, "header": {...}, "error": {"code": "...", "message": "..."}}
Watch:     the request {"id": 8, "op": "watch", ...} is answered by a stream of
           {"id": 8, "watch": "created" | "events" | "canceled", ...} messages
           until the client sends {"id": 9, "op": "watch_cancel", "watch_id": 8}
           or the server ends it with "canceled" and an error.
"""

import struct

import msgpack

LENGTH = struct.Struct(">I")

#: Largest request frame a server accepts: a 1 MiB value plus generous room for
#: the rest of a txn. Larger frames are refused with ``too_large``.
MAX_REQUEST_BYTES = 4 << 20
#: Largest frame a client accepts (snapshots and big ranges come back whole).
MAX_RESPONSE_BYTES = 1 << 30

#: Operations a server understands; anything else is answered with ``unknown_op``.
READ_OPS = {"range", "status", "members", "snapshot"}
WRITE_OPS = {"put", "delete", "txn", "lease_grant", "lease_revoke",
             "lease_keepalive", "compact"}
ADMIN_OPS = {"member_add", "member_remove"}
STREAM_OPS = {"watch", "watch_cancel"}
ALL_OPS = READ_OPS | WRITE_OPS | ADMIN_OPS | STREAM_OPS

# Error codes beyond the state machine's (invalid, value_too_large,
# lease_not_found, compacted, future_revision, unknown_op):
UNAVAILABLE = "unavailable"    # no leader or quorum within the deadline; a write may or may not apply
BAD_REQUEST = "bad_request"    # malformed frame or message
TOO_LARGE = "too_large"        # frame over MAX_REQUEST_BYTES
NOT_FOUND = "not_found"        # member or watch that does not exist
DENIED = "denied"              # membership change refused (another one is in progress)
# Limits of the client port (store/connection.py, store/node_main.py flags):
TOO_MANY_CONNECTIONS = "too_many_connections"  # --max-connections reached; connection closed
TOO_MANY_REQUESTS = "too_many_requests"  # --max-inflight reached on this connection; not run
TOO_MANY_WATCHES = "too_many_watches"  # --max-watches(-per-connection) reached; watch refused
NO_SPACE = "no_space"          # --quota-backend-bytes exceeded: writes refused until compaction

#: Errors after which a client may safely retry the same request elsewhere.
RETRYABLE = {UNAVAILABLE}


class ProtocolError(Exception):
    """A peer sent bytes that are not a valid frame or message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def pack(message):
    """Encode one message as a length-prefixed frame."""
    body = msgpack.packb(message, use_bin_type=True)
    return LENGTH.pack(len(body)) + body


def unpack_body(body):
    """Decode a frame body into a message map, or raise ProtocolError."""
    try:
        message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise ProtocolError(BAD_REQUEST, f"frame is not valid msgpack: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(BAD_REQUEST, "a message must be a msgpack map")
    return message


def read_length(header, limit):
    """Return the body length announced by a 4-byte header, checking the limit."""
    (length,) = LENGTH.unpack(header)
    if length > limit:
        raise ProtocolError(
            TOO_LARGE,
            f"frame of {length} bytes is over the {limit}-byte limit; "
            "values are capped at 1 MiB")
    return length


def error(code, message, **extra):
    """Build the error part of a response."""
    return {"code": code, "message": message, **extra}
