"""Check the shape of each Raft message a member receives before PySyncObj sees it.

PySyncObj indexes its messages and compares their fields without checking them;
a field of the wrong type from a peer would raise in the middle of its state
changes. ``check`` accepts only the message types members send, with each
field of the type PySyncObj and ReadIndex expect, and raises ``BadMessage``
otherwise (the connection then closes). The chunked append ("transmission"),
which carries a pickle, is refused: members never send it, because no entry
reaches ``store.peer_frames.APPEND_BYTES``.
"""

from store import readindex
from store.peer_frames import FrameError


class BadMessage(FrameError):
    """A peer message of an unknown type, or with a field of the wrong type."""


def _int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(value):
    return isinstance(value, bool)


def _entries(value):
    return isinstance(value, tuple) and all(
        isinstance(e, tuple) and len(e) == 3 and isinstance(e[0], bytes) and _int(e[1])
        and _int(e[2]) for e in value)


def _chunk(value):
    return value is None or (isinstance(value, tuple) and len(value) == 3
                             and isinstance(value[0], bytes) and _bool(value[1])
                             and _bool(value[2]))


#: type -> {field: (required, check)}
SCHEMAS = {
    "request_vote": {"term": (True, _int), "last_log_index": (True, _int),
                     "last_log_term": (True, _int)},
    "response_vote": {"term": (True, _int)},
    "timeout_now": {"term": (True, _int)},
    "append_entries": {"term": (True, _int), "commit_index": (True, _int),
                       "prevLogIdx": (False, _int), "prevLogTerm": (False, _int),
                       "entries": (False, _entries), "serialized": (False, _chunk),
                       readindex.SEQ: (False, _int)},
    "next_node_idx": {"next_node_idx": (True, _int), "reset": (True, _bool),
                      "success": (True, _bool), readindex.SEQ: (False, _int)},
    "apply_command": {"command": (True, lambda v: isinstance(v, bytes)),
                      "request_id": (False, _int)},
    "apply_command_response": {"request_id": (True, _int), "error": (False, _int),
                               "log_idx": (False, _int), "log_term": (False, _int)},
    readindex.REQUEST: {"rid": (True, _int)},
    readindex.REPLY: {"rid": (True, _int), "index": (False, _int),
                      "error": (False, lambda v: isinstance(v, str))},
}


def check(message):
    """Return ``message`` if its type and fields are what members send; else raise ``BadMessage``."""
    kind = message.get("type")
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise BadMessage(f"unknown peer message type {kind!r}")
    for field, value in message.items():
        if field == "type":
            continue
        rule = schema.get(field)
        if rule is None:
            raise BadMessage(f"unexpected field {field!r} in a {kind} message")
        if not rule[1](value):
            raise BadMessage(f"field {field!r} of a {kind} message has the wrong type")
    missing = [f for f, (required, _) in schema.items() if required and f not in message]
    if missing:
        raise BadMessage(f"a {kind} message lacks {', '.join(missing)}")
    if kind == "append_entries" and ("prevLogIdx" in message) != ("prevLogTerm" in message):
        raise BadMessage("an append_entries message needs both prevLogIdx and prevLogTerm")
    if kind == "append_entries" and "prevLogIdx" not in message and "serialized" not in message \
            and "entries" in message:
        raise BadMessage("append_entries with entries but no prevLogIdx")
    return message
