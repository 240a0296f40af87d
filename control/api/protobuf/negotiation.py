"""Content negotiation for protobuf: read protobuf request bodies, choose protobuf answers.

Requests: a body sent as ``application/vnd.kubernetes.protobuf`` is decoded, when
a handler reads it (bodies.read_value), into the JSON object the JSON path would
have read; validation, admission and storage then see the same dict. Patches are
JSON only, as in Kubernetes. Answers: when the Accept header prefers protobuf
(kubectl's typed clients send ``application/vnd.kubernetes.protobuf,
application/json``), ``bodies.write_json`` writes objects, lists and Status
errors of the kinds with a message as protobuf, anything else as JSON; watches
of those kinds are length-prefixed WatchEvent frames.
"""

import json

from control import errors
from control.api.protobuf import envelope
from control.api.protobuf.wire import DecodeError

MEDIA_TYPE = envelope.MEDIA_TYPE
WATCH_MEDIA_TYPE = f"{MEDIA_TYPE};stream=watch"
#: The context flag bodies.write_json reads.
CONTEXT_FLAG = "answer_protobuf"


def decode_request(raw):
    """The JSON object of a protobuf request body; 400 if unreadable, 415 for other kinds."""
    try:
        return envelope.decode(raw)
    except envelope.UnknownKind as exc:
        raise errors.UnsupportedMediaType(str(exc)) from None
    except (DecodeError, RecursionError) as exc:
        raise errors.BadRequest(f"the protobuf body cannot be read: {exc}") from None


def prefers_protobuf(accept):
    """Whether an Accept header ranks protobuf first (and not as a Table)."""
    best, best_q = None, -1.0
    for item in (accept or "").split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        if not media:
            continue
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 0.0
        if quality > 0 and quality > best_q:      # q=0 (or unreadable): not acceptable
            best, best_q = (media, params), quality
    if best is None:
        return False
    media, params = best
    return media == MEDIA_TYPE and "as" not in params


def mark_answer(req, resp):
    """Flag the response for protobuf when the Accept header prefers it (API paths only)."""
    if req.path.startswith(("/api/", "/apis/")) and prefers_protobuf(req.get_header("Accept")):
        resp.context[CONTEXT_FLAG] = True


def read_body(req, raw):
    """The JSON object of a protobuf request body; leave the JSON on the request for the
    audit log. Patches are JSON only (415)."""
    if req.method == "PATCH":
        raise errors.UnsupportedMediaType(
            "patches are read as JSON (json-patch, merge-patch, strategic-merge-patch or "
            "apply-patch+yaml), not protobuf")
    body = decode_request(raw)
    req.context.raw_body = json.dumps(body, separators=(",", ":")).encode()
    return body


def encode_answer(body):
    """The protobuf bytes of an answer body, or None when it must go as JSON."""
    if not envelope.has_message(body):
        return None
    try:
        return envelope.encode(body)
    except (ValueError, TypeError, RecursionError):
        return None                     # a value that does not fit: the JSON answer is exact


def watch_encoding(req, api_version, kind, transformed):
    """(encode(event_type, obj) or None for JSON lines, content type) of a watch stream.

    Protobuf frames (4-byte big-endian length, then an enveloped WatchEvent) when the
    client prefers protobuf and the kind has a message; JSON otherwise, Tables included.
    """
    if transformed or not prefers_protobuf(req.get_header("Accept")) or \
            not envelope.has_message({"apiVersion": api_version, "kind": kind}):
        return None, "application/json"
    return _watch_frame, WATCH_MEDIA_TYPE


def _watch_frame(event_type, obj):
    """One protobuf watch frame; an ERROR event with a Status if ``obj`` cannot be one."""
    try:
        frame = envelope.watch_frame(event_type, obj)
    except (ValueError, TypeError, RecursionError) as exc:
        frame, problem = None, f"an object could not be encoded as protobuf: {exc}"
    else:
        problem = "an object has no protobuf form"
    if frame is None:
        frame = envelope.watch_frame("ERROR", errors.ApiError(
            f"{problem}; watch again asking for JSON").status())
    return frame
