"""Messages whose JSON form is not an object: times, quantities, int-or-string, raw JSON.

Each entry turns the message's decoded fields into the JSON value kube-apiserver
writes, and a JSON value back into the message's bytes.
"""

import base64
import calendar
import datetime
import functools
import json
import re

from control.api.protobuf import wire
from control.api.protobuf.schema import META

QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
TIME, MICRO_TIME, DURATION, FIELDS_V1 = (META + "Time", META + "MicroTime", META + "Duration",
                                         META + "FieldsV1")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
DURATION_UNITS = (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6),
                  ("us", 10**3), ("µs", 10**3), ("ns", 1))
DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")


def _scalars(data, start, end):
    """The last varint and length-delimited value of each field number."""
    out = {}
    for number, wire_type, value in wire.iter_fields(data, start, end):
        if wire_type == wire.LENGTH:
            value = bytes(data[value[0]:value[1]])
        out.setdefault(number, []).append(value)
    return out


def _int(fields, number, bits=64):
    values = [v for v in fields.get(number, ()) if isinstance(v, int)]
    return wire.to_signed(values[-1], bits) if values else 0


def _text(fields, number):
    values = [v for v in fields.get(number, ()) if isinstance(v, bytes)]
    return values[-1].decode("utf-8") if values else ""


def _time_decode(fields, micro):
    seconds, nanos = _int(fields, 1), _int(fields, 2, 32)
    if not seconds and not nanos:
        return None                 # Go's zero time: "null" in JSON, dropped here
    try:
        moment = EPOCH + datetime.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise wire.DecodeError(f"time {seconds}s is out of range") from None
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def _time_encode(value):
    text = str(value)
    if len(text) == 20 and text[10] == "T" and text[19] == "Z":     # the usual form, fast
        seconds = calendar.timegm((int(text[0:4]), int(text[5:7]), int(text[8:10]),
                                   int(text[11:13]), int(text[14:16]), int(text[17:19])))
        return wire.key(1, wire.VARINT) + wire.encode_varint(seconds)
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    delta = moment - EPOCH
    seconds = delta.days * 86400 + delta.seconds
    out = wire.key(1, wire.VARINT) + wire.encode_varint(seconds)
    if delta.microseconds:
        out += wire.key(2, wire.VARINT) + wire.encode_varint(delta.microseconds * 1000)
    return out


def _int_or_string_decode(fields):
    if _int(fields, 1) == 1:
        return _text(fields, 3)
    return _int(fields, 2, 32)


def _int_or_string_encode(value):
    if isinstance(value, str):
        return (wire.key(1, wire.VARINT) + b"\x01"
                + wire.length_delimited(3, value.encode("utf-8")))
    return (wire.key(1, wire.VARINT) + b"\x00" + wire.key(2, wire.VARINT)
            + wire.encode_varint(int(value)))


def _raw_json_decode(fields):
    values = [v for v in fields.get(1, ()) if isinstance(v, bytes)]
    return json_value(values[-1]) if values and values[-1] else None


def json_value(raw):
    """The JSON value held in bytes (FieldsV1, RawExtension); DecodeError if it is not."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise wire.DecodeError("an embedded object is not valid JSON") from None


def _raw_json_encode(value):
    return wire.length_delimited(1, json.dumps(value, separators=(",", ":")).encode())


def _duration_decode(fields):
    nanos = _int(fields, 1)
    if not nanos:
        return "0s"
    sign, nanos, parts = ("-" if nanos < 0 else ""), abs(nanos), []
    for unit, size in (("h", 3600 * 10**9), ("m", 60 * 10**9)):
        if nanos >= size:
            parts.append(f"{nanos // size}{unit}")
            nanos %= size
    seconds = f"{nanos / 10**9:.9f}".rstrip("0").rstrip(".")
    return sign + "".join(parts) + f"{seconds}s"


def _duration_encode(value):
    text, total = str(value), 0
    sign = -1 if text.startswith("-") else 1
    for number, unit in DURATION_PART.findall(text.lstrip("+-")):
        total += int(float(number) * dict(DURATION_UNITS)[unit])
    return wire.key(1, wire.VARINT) + wire.encode_varint(sign * total)


def _quantity_encode(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return wire.length_delimited(1, str(value).encode("utf-8"))


#: full name -> (decode(fields by number) -> JSON value, encode(JSON value) -> bytes)
SPECIALS = {
    TIME: (lambda f: _time_decode(f, False), _time_encode),
    MICRO_TIME: (lambda f: _time_decode(f, True), _time_encode),
    DURATION: (_duration_decode, _duration_encode),
    QUANTITY: (lambda f: _text(f, 1), _quantity_encode),
    INT_OR_STRING: (_int_or_string_decode, _int_or_string_encode),
    RAW_EXTENSION: (_raw_json_decode, _raw_json_encode),
    FIELDS_V1: (_raw_json_decode, _raw_json_encode),
}


def _extra_decode(fields):
    return [v.decode("utf-8") for v in fields.get(1, ()) if isinstance(v, bytes)]


def _extra_encode(value):
    return b"".join(wire.length_delimited(1, str(v).encode("utf-8")) for v in value or ())


def special(name):
    """The (decode, encode) pair of a message with a JSON form of its own, or None."""
    found = SPECIALS.get(name)
    if found is None and name.endswith(".ExtraValue"):   # map<string, ExtraValue>: a list
        return (_extra_decode, _extra_encode)
    return found


def decode_special(name, data, start, end):
    """The JSON value of the special message ``name`` held in ``data[start:end]``."""
    return special(name)[0](_scalars(data, start, end))


def b64(raw):
    return base64.b64encode(raw).decode("ascii")
