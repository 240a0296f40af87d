"""Read the protobuf bodies kubectl sends for reviews, as JSON objects.

``kubectl auth can-i`` and ``kubectl auth whoami`` use client-go's typed clients,
which POST reviews as ``application/vnd.kubernetes.protobuf`` (the ``k8s\\0``
magic, then a runtime.Unknown holding the object). The API server answers in
JSON (the client accepts it). Only the review kinds are read: they are small,
flat messages, described below by field number.
"""

from control import errors

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

# Message schemas: field number -> (JSON name, type); a type is "string", "repeated",
# "map" (map<string, ExtraValue>) or another schema (a nested message).
RESOURCE_ATTRIBUTES = {1: ("namespace", "string"), 2: ("verb", "string"),
                       3: ("group", "string"), 4: ("version", "string"),
                       5: ("resource", "string"), 6: ("subresource", "string"),
                       7: ("name", "string")}
NON_RESOURCE_ATTRIBUTES = {1: ("path", "string"), 2: ("verb", "string")}
ACCESS_SPEC = {1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
               2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
               3: ("user", "string"), 4: ("groups", "repeated"), 6: ("uid", "string")}
SELF_ACCESS_SPEC = {1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                    2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES)}
SPECS = {
    "SelfSubjectAccessReview": SELF_ACCESS_SPEC,
    "SubjectAccessReview": ACCESS_SPEC,
    "LocalSubjectAccessReview": ACCESS_SPEC,
    "SelfSubjectRulesReview": {1: ("namespace", "string")},
    "TokenReview": {1: ("token", "string"), 2: ("audiences", "repeated")},
    "SelfSubjectReview": None,
}
TYPE_META = {1: ("apiVersion", "string"), 2: ("kind", "string")}
UNKNOWN = {1: ("typeMeta", TYPE_META), 2: ("raw", "bytes")}


def _varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data):
    """Yield (field number, wire type, value) of a serialized message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def decode_message(data, schema, depth=0):
    """Return the JSON object of ``data`` read with ``schema`` (unknown fields skipped)."""
    if depth > 8:
        raise ValueError("message nested too deep")
    out = {}
    for number, wire, value in _fields(data):
        if number not in schema or wire != 2:
            continue
        name, kind = schema[number]
        if kind == "string":
            out[name] = value.decode("utf-8")
        elif kind == "bytes":
            out[name] = bytes(value)
        elif kind == "repeated":
            out.setdefault(name, []).append(value.decode("utf-8"))
        else:
            out[name] = decode_message(value, kind, depth + 1)
    return out


def decode_review(raw):
    """Return the JSON object of a protobuf-encoded review; 415 for any other kind."""
    try:
        if not raw.startswith(MAGIC):
            raise ValueError("no k8s protobuf magic")
        unknown = decode_message(raw[len(MAGIC):], UNKNOWN)
        type_meta = unknown.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        if kind not in SPECS:
            raise errors.UnsupportedMediaType(
                f"protobuf bodies are only read for reviews, not {kind or 'this kind'}; "
                "send JSON")
        body = {"apiVersion": type_meta.get("apiVersion", ""), "kind": kind}
        spec_schema = SPECS[kind]
        if spec_schema is not None:
            message = decode_message(unknown.get("raw", b""), {2: ("spec", spec_schema)})
            body["spec"] = message.get("spec", {})
        return body
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"the protobuf body cannot be read: {exc}") from None
