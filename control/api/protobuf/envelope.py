"""The ``k8s\\0`` envelope: a runtime.Unknown holding an object's apiVersion, kind and bytes.

kube-apiserver's protobuf bodies are the 4 magic bytes, then a runtime.Unknown
message: typeMeta {1: apiVersion, 2: kind}, 2: raw (the object's own message),
3: contentEncoding, 4: contentType.
"""

import collections
import threading

from control.api.protobuf import codec, schema, wire
from control.api.protobuf.wire import DecodeError

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


def decode(raw, depth=0):
    """Return the JSON object of an enveloped protobuf body (DecodeError if unreadable);
    ``depth`` counts the envelopes around this one (a WatchEvent's object)."""
    if not raw.startswith(MAGIC):
        raise DecodeError("the body does not start with the k8s protobuf magic (k8s\\0)")
    data = memoryview(raw)
    api_version = kind = ""
    body = None
    encoding = ""
    for number, wire_type, value in wire.iter_fields(data, len(MAGIC), len(data)):
        if wire_type != wire.LENGTH:
            continue
        if number == 1:
            api_version, kind = _type_meta(data, *value)
        elif number == 2:
            body = value
        elif number == 3:
            encoding = bytes(data[value[0]:value[1]]).decode("utf-8", "replace")
    if encoding:
        raise DecodeError(f"content encoding {encoding!r} is not supported; send it plain")
    name = schema.message_name(api_version, kind)
    if name is None:
        raise UnknownKind(api_version, kind)
    obj = {"apiVersion": api_version, "kind": kind}
    if body is not None:
        obj.update(codec.decode(name, data, body[0], body[1], depth=depth + 1))
    return obj


def _type_meta(data, start, end):
    found = {1: "", 2: ""}
    for number, wire_type, value in wire.iter_fields(data, start, end):
        if number in found and wire_type == wire.LENGTH:
            try:
                found[number] = bytes(data[value[0]:value[1]]).decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("the typeMeta is not valid UTF-8") from None
    return found[1], found[2]


def encode(obj):
    """Return the enveloped protobuf bytes of a JSON object, or None if its kind has no
    message (the caller then answers JSON). EncodeError if a value does not fit."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    name = schema.message_name(api_version, kind)
    if name is None:
        return None
    type_meta = (wire.length_delimited(1, api_version.encode())
                 + wire.length_delimited(2, kind.encode()))
    items = obj.get("items")
    if isinstance(items, list) and name.endswith("List"):
        payload = _encode_list(name, obj, items)
    else:
        payload = codec.encode(name, obj)
    return MAGIC + (wire.length_delimited(1, type_meta) + wire.length_delimited(2, payload)
                    + wire.length_delimited(3, b"") + wire.length_delimited(4, b""))


def _encode_list(name, obj, items):
    """A list's bytes: its metadata (field 1), then each item (field 2), items that are
    stored objects taken from the serialization cache."""
    item_field = schema.message(name).by_number[2]
    out = bytearray(codec.encode(name, {"metadata": obj.get("metadata")}))
    tag = wire.key(2, wire.LENGTH)
    for item in items:
        if item is None:
            continue
        raw = serialized.get(item_field.type, item)
        out += tag
        out += wire.encode_varint(len(raw))
        out += raw
    return bytes(out)


class SerializationCache:
    """The encoded bytes of stored objects, by (message, uid, resourceVersion), at most
    ``max_bytes`` of them (the least recently used go first).

    A stored object's uid and resourceVersion name its content, so a list of
    unchanged objects is written from bytes encoded once (kube-apiserver caches
    serializations for its watchers likewise). Only list items use it: they come
    from storage, while a write's answer (a dry run's, say) may not be stored.
    """

    def __init__(self, max_bytes=32 * 1024 * 1024):
        self.max_bytes = max_bytes
        self.size = 0
        self.entries = collections.OrderedDict()
        self.lock = threading.Lock()

    def clear(self):
        with self.lock:
            self.entries.clear()
            self.size = 0

    def get(self, message_name, obj):
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        uid = meta.get("uid") if isinstance(meta, dict) else None
        version = meta.get("resourceVersion") if uid else None
        if not (isinstance(uid, str) and isinstance(version, str) and version):
            return codec.encode(message_name, obj)
        key = (message_name, uid, version)
        with self.lock:
            raw = self.entries.get(key)
            if raw is not None:
                self.entries.move_to_end(key)
                return raw
        raw = codec.encode(message_name, obj)
        with self.lock:
            if key not in self.entries:
                self.entries[key] = raw
                self.size += len(raw)
            while self.size > self.max_bytes and self.entries:
                self.size -= len(self.entries.popitem(last=False)[1])
        return raw


serialized = SerializationCache()


def has_message(obj):
    """Whether this JSON object's kind can be sent as protobuf."""
    return isinstance(obj, dict) and schema.message_name(obj.get("apiVersion"),
                                                         obj.get("kind")) is not None


def watch_frame(event_type, obj):
    """One length-prefixed (4-byte big-endian) protobuf WatchEvent, or None if ``obj``'s
    kind has no message.

    As kube-apiserver's stream serializer writes it: the WatchEvent message itself,
    with no envelope, its object enveloped inside (RawExtension raw).
    """
    inner = encode(obj)
    if inner is None:
        return None
    event = codec.encode(schema.META + "WatchEvent", {"type": event_type})
    event += wire.length_delimited(2, wire.length_delimited(1, inner))
    return len(event).to_bytes(4, "big") + event


def decode_watch_event(data):
    """The JSON form ({"type", "object"}) of one frame's WatchEvent message."""
    return codec.decode(schema.META + "WatchEvent", data)


class UnknownKind(DecodeError):
    """The envelope names a kind this server has no protobuf message for."""

    def __init__(self, api_version, kind):
        super().__init__(f"protobuf bodies of {api_version or '?'}/{kind or '?'} are not "
                         "supported; send JSON")
        self.api_version, self.kind = api_version, kind
