"""The protobuf wire format: varints, keys and length-delimited fields, read with bounds.

Every read checks the buffer's end, so a hostile body (a declared length past the
end, a varint that never ends, a wire type protobuf does not have) raises
DecodeError, which the API answers with a 400, instead of reading past the data.
"""

import struct

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
#: A varint is at most 10 bytes (64 bits, 7 per byte).
MAX_VARINT_BYTES = 10
U64 = 1 << 64


class DecodeError(ValueError):
    """The bytes are not a valid protobuf message of the expected type."""


def read_varint(data, pos, end):
    """Return (value, next position) of the varint at ``pos``."""
    value = shift = 0
    limit = min(end, pos + MAX_VARINT_BYTES)
    while pos < limit:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value & (U64 - 1), pos
        shift += 7
    if pos >= end:
        raise DecodeError("truncated varint")
    raise DecodeError("varint longer than 10 bytes")


def iter_fields(data, pos, end):
    """Yield (field number, wire type, value, or (start, stop) for a length-delimited field).

    Fixed-size values are returned as their raw bytes.
    """
    while pos < end:
        key, pos = read_varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("field number 0 is not allowed")
        if wire == VARINT:
            value, pos = read_varint(data, pos, end)
        elif wire == LENGTH:
            length, pos = read_varint(data, pos, end)
            if length > end - pos:
                raise DecodeError(f"field {number} declares {length} bytes, "
                                  f"only {end - pos} remain")
            value, pos = (pos, pos + length), pos + length
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if size > end - pos:
                raise DecodeError(f"truncated fixed-size field {number}")
            value, pos = bytes(data[pos:pos + size]), pos + size
        else:
            raise DecodeError(f"field {number} has wire type {wire}, which is not supported")
        yield number, wire, value


def encode_varint(value):
    """The varint bytes of a non-negative or (two's complement, 64-bit) negative int."""
    if value < 0:
        value += U64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(number, wire):
    return encode_varint((number << 3) | wire)


def length_delimited(number, payload):
    return key(number, LENGTH) + encode_varint(len(payload)) + payload


def to_signed(value, bits):
    """Read an unsigned varint as a two's complement int of ``bits`` bits."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def double(raw):
    return struct.unpack("<d", raw)[0]


def float32(raw):
    return struct.unpack("<f", raw)[0]
