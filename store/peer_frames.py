"""Frames of the Raft peer port: a 4-byte big-endian length, then a msgpack map.

``FrameReader`` refuses a length over its limit from the header alone (before
the body is buffered); ``unpack`` accepts only a map with a string "type" and
gives tuples where PySyncObj's pickled messages had them (``use_list=False``:
log entries compare equal to the journal's tuples). Nothing here unpickles.
"""

import struct

import msgpack

HEADER = struct.Struct(">I")
#: Largest frame accepted from an identified member (an append of up to
#: ``APPEND_BYTES`` of entries plus one more entry, or a snapshot chunk).
APPEND_BYTES = 16 << 20
MAX_FRAME_BYTES = 2 * APPEND_BYTES + (1 << 20)
#: Largest frame before the hello identified the member.
MAX_HELLO_BYTES = 4096


class FrameError(ValueError):
    """A peer sent bytes that are not a well-formed frame; its connection closes."""


def pack(message):
    """Return ``message`` (a dict) as one frame."""
    body = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def unpack(body):
    """Return the message of a frame's body, or raise ``FrameError``."""
    try:
        message = msgpack.unpackb(body, raw=False, use_list=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types for bad input
        raise FrameError(f"not msgpack: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("a peer message must be a map with a string 'type'")
    return message


class FrameReader:
    """Split a byte stream into frame bodies, refusing a length over ``limit`` at once."""

    def __init__(self, limit):
        self.limit = limit
        self._buffer = bytearray()

    def feed(self, data):
        """Yield each body complete after ``data``, one at a time.

        The limit is read before each header, so the consumer may raise it between
        bodies (after a hello that arrived in the same read as what follows it).
        Consumed bytes are dropped once per call, not once per frame.
        """
        buffer = self._buffer
        buffer += data
        offset = 0
        try:
            while len(buffer) - offset >= HEADER.size:
                (length,) = HEADER.unpack_from(buffer, offset)
                if length > self.limit:
                    raise FrameError(f"frame of {length} bytes is over the limit of {self.limit}")
                end = offset + HEADER.size + length
                if len(buffer) < end:
                    break
                body = bytes(buffer[offset + HEADER.size:end])
                offset = end
                yield body
        finally:
            del buffer[:offset]
