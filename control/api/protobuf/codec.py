"""Encode a JSON object as a Kubernetes protobuf message and back, driven by schema.py.

The JSON side is what the JSON API reads and writes: ``bytes`` fields are base64,
times are RFC 3339 strings, int-or-string is an int or a string, embedded structs
are inlined. Go always sends the zero values of plain (non-pointer) fields;
decoding drops them where Go's JSON has ``omitempty`` (and drops empty plain
structs), and keeps those of pointer fields (``replicas: 0``,
``automountServiceAccountToken: false``) and of fields JSON always writes
(``restartCount: 0``).
"""

import base64
import binascii
import functools
import struct

from control.api.protobuf import schema, specials, wire
from control.api.protobuf.wire import DecodeError

#: Messages nested deeper than this are refused (a Pod in a List in a WatchEvent is ~15).
MAX_DEPTH = 64
VARINT_TYPES = {"int32": 32, "int64": 64, "uint32": 0, "uint64": 0, "bool": 0}
INT_RANGES = {"int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
              "uint32": (0, (1 << 32) - 1), "uint64": (0, (1 << 64) - 1)}


class EncodeError(ValueError):
    """A JSON value does not fit its protobuf field (the caller answers JSON instead)."""


# ---------------------------------------------------------------- decoding

def decode(name, data, start=0, end=None, depth=0):
    """Return the JSON object of message ``name`` held in ``data[start:end]``."""
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages are nested deeper than {MAX_DEPTH} levels")
    end = len(data) if end is None else end
    out = {}
    _decode_into(out, schema.message(name), data, start, end, depth)
    return out


def _decode_into(out, message, data, start, end, depth):
    by_number = message.by_number
    for number, wire_type, value in wire.iter_fields(data, start, end):
        field = by_number.get(number)
        if field is None:
            continue                    # an unknown field: skipped, as kube-apiserver does
        if field.inline:
            if wire_type != wire.LENGTH:
                raise _wrong_wire(message, field, wire_type)
            if depth + 1 > MAX_DEPTH:
                raise DecodeError(f"messages are nested deeper than {MAX_DEPTH} levels")
            _decode_into(out, schema.message(field.type), data, value[0], value[1], depth + 1)
            continue
        if field.repeated and wire_type == wire.LENGTH and field.type in VARINT_TYPES:
            out.setdefault(field.name, []).extend(_packed(field, data, *value))
            continue
        decoded = _decode_value(message, field, field.type, wire_type, value, data, depth)
        if field.repeated:
            out.setdefault(field.name, []).append(decoded)
        elif field.type == "map":
            out.setdefault(field.name, {}).update((decoded,))
        elif decoded is None or (not decoded and not field.pointer and (
                not field.keep_zero or field.type not in schema.SCALAR_TYPES)):
            # Go's zero of a plain field JSON omits (omitempty), or an empty plain struct.
            out.pop(field.name, None)
        else:
            out[field.name] = decoded


def _decode_value(message, field, ftype, wire_type, value, data, depth):
    if ftype == "map":
        return _map_entry(message, field, data, value, depth, wire_type)
    if ftype in VARINT_TYPES:
        if wire_type != wire.VARINT:
            raise _wrong_wire(message, field, wire_type)
        bits = VARINT_TYPES[ftype]
        if ftype == "bool":
            return value != 0
        return wire.to_signed(value, bits) if bits else value & ((1 << 32) - 1 if ftype ==
                                                                "uint32" else (1 << 64) - 1)
    if ftype in ("double", "float"):
        expected = wire.FIXED64 if ftype == "double" else wire.FIXED32
        if wire_type != expected:
            raise _wrong_wire(message, field, wire_type)
        return wire.double(value) if ftype == "double" else wire.float32(value)
    if wire_type != wire.LENGTH:
        raise _wrong_wire(message, field, wire_type)
    start, stop = value
    if ftype == "string":
        try:
            return bytes(data[start:stop]).decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"{message.name}.{field.name} is not valid UTF-8") from None
    if ftype == "bytes":
        return base64.b64encode(data[start:stop]).decode("ascii")
    if depth + 1 > MAX_DEPTH:
        raise DecodeError(f"messages are nested deeper than {MAX_DEPTH} levels")
    if ftype == specials.RAW_EXTENSION:
        return _raw_extension(data, start, stop, depth + 1)
    if specials.special(ftype) is not None:
        return specials.decode_special(ftype, data, start, stop)
    return decode(ftype, data, start, stop, depth + 1)


def _raw_extension(data, start, stop, depth):
    """An embedded object: enveloped protobuf (a WatchEvent's) or JSON (a revision's data)."""
    raw = b""
    for number, wire_type, value in wire.iter_fields(data, start, stop):
        if number == 1 and wire_type == wire.LENGTH:
            raw = bytes(data[value[0]:value[1]])
    if not raw:
        return None
    if raw.startswith(b"k8s\x00"):
        from control.api.protobuf import envelope  # envelope imports this module
        return envelope.decode(raw, depth)
    return specials.json_value(raw)


def _map_entry(message, field, data, value, depth, wire_type):
    if wire_type != wire.LENGTH:
        raise _wrong_wire(message, field, wire_type)
    key, item = None, None
    for number, entry_wire, entry_value in wire.iter_fields(data, *value):
        if number == 1:
            key = _decode_value(message, field, field.key_type, entry_wire, entry_value, data,
                                depth)
        elif number == 2:
            item = _decode_value(message, field, field.value_type, entry_wire, entry_value,
                                 data, depth)
    if key is None:
        key = "" if field.key_type == "string" else 0
    if item is None:
        item = _zero(field.value_type, data, depth)
    return key, item


def _zero(ftype, data, depth):
    if ftype in ("string", "bytes"):
        return ""
    if ftype in VARINT_TYPES or ftype in ("double", "float"):
        return False if ftype == "bool" else 0
    if specials.special(ftype) is not None:
        return specials.decode_special(ftype, b"", 0, 0)
    return {}


def _packed(field, data, start, stop):
    out, bits = [], VARINT_TYPES[field.type]
    pos = start
    while pos < stop:
        value, pos = wire.read_varint(data, pos, stop)
        out.append(value != 0 if field.type == "bool" else
                   wire.to_signed(value, bits) if bits else value)
    return out


def _wrong_wire(message, field, wire_type):
    return DecodeError(f"{message.name}.{field.name} (field {field.number}) has wire type "
                       f"{wire_type}, which does not fit a {field.type}")


# ---------------------------------------------------------------- encoding

def encode(name, obj):
    """Return the bytes of message ``name`` holding the JSON object ``obj``."""
    out = bytearray()
    try:
        _encode_into(out, _plan(name), obj)
    except EncodeError:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError, binascii.Error,
            UnicodeEncodeError) as exc:
        raise EncodeError(f"a value does not fit {name}: {exc}") from None
    return bytes(out)


def _encode_into(out, plan, obj):
    if type(obj) is not dict:
        raise EncodeError(f"expected a JSON object, not {type(obj).__name__}")
    get = obj.get
    for name, inline, write in plan:
        if inline:
            write(obj, out)
            continue
        value = get(name)
        if value is not None:
            write(value, out)


@functools.lru_cache(maxsize=None)
def _plan(name):
    """The (JSON name, inline, writer(value, out)) of each field of message ``name``."""
    return tuple((f.name, f.inline, _field_writer(f)) for f in schema.message(name).fields)


def _field_writer(field):
    if field.type == "map":
        key_writer = _value_writer(1, field.key_type)
        value_writer = _value_writer(2, field.value_type)
        tag = wire.key(field.number, wire.LENGTH)

        def write_map(value, out):
            for key, item in value.items():
                entry = bytearray()
                key_writer(key, entry)
                if item is not None:
                    value_writer(item, entry)
                out += tag
                out += _varint(len(entry))
                out += entry
        return write_map
    write = _value_writer(field.number, field.type)
    if not field.repeated:
        return write

    def write_list(value, out):
        if type(value) is not list:
            raise EncodeError(f"{field.name} must be a list")
        for item in value:
            if item is not None:
                write(item, out)
    return write_list


def _value_writer(number, ftype):
    tag = wire.key(number, wire.LENGTH)
    if ftype == "string":
        def write_string(value, out):
            raw = (value if type(value) is str else str(value)).encode("utf-8")
            out += tag
            out += _varint(len(raw))
            out += raw
        return write_string
    if ftype in INT_RANGES or ftype == "bool":
        return _number_writer(number, ftype)
    if ftype == "bytes":
        def write_bytes(value, out):
            raw = base64.b64decode(value, validate=True)
            out += tag
            out += _varint(len(raw))
            out += raw
        return write_bytes
    if ftype in ("double", "float"):
        fixed_tag = wire.key(number, wire.FIXED64 if ftype == "double" else wire.FIXED32)
        layout = "<d" if ftype == "double" else "<f"
        return lambda value, out: out.extend(fixed_tag + struct.pack(layout, float(value)))
    found = specials.special(ftype)
    if found is not None:
        encode_special = found[1]

        def write_special(value, out):
            raw = encode_special(value)
            out += tag
            out += _varint(len(raw))
            out += raw
        return write_special

    def write_message(value, out):
        inner = bytearray()
        _encode_into(inner, _plan(ftype), value)
        out += tag
        out += _varint(len(inner))
        out += inner
    return write_message


def _number_writer(number, ftype):
    tag = wire.key(number, wire.VARINT)
    if ftype == "bool":
        true, false = tag + b"\x01", tag + b"\x00"
        return lambda value, out: out.extend(true if value else false)
    low, high = INT_RANGES[ftype]

    def write_int(value, out):
        if type(value) is not int:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            elif not isinstance(value, int) or isinstance(value, bool):
                raise EncodeError(f"{value!r} is not a {ftype}")
        if not low <= value <= high:
            raise EncodeError(f"{value} is out of the range of a {ftype}")
        out += tag
        out += _varint(value)
    return write_int


_SMALL = tuple(bytes((i,)) for i in range(128))


def _varint(value):
    return _SMALL[value] if 0 <= value < 128 else wire.encode_varint(value)
