"""Field paths and field sets, as server-side apply tracks ownership (FieldsV1).

A path is a tuple of elements spelled as FieldsV1 keys: ``f:<field>`` (a field of
a struct or a key of a map), ``k:<json object>`` (an item of an associative list,
by its key fields), ``v:<json value>`` (an item of a set). ``members`` lists the
paths an object sets: every leaf (a scalar, an atomic list or struct, an empty
object) with its value, and every list item (value ``ITEM``). Which lists are
associative, sets or atomic comes from Kubernetes' list-type and patch-merge-key
facts (patch.MERGE_KEYS and the overrides below); objects of a type the schema
does not hold (custom resources) have granular maps and atomic lists.
"""

import json

from control.objects import patch, schema

#: The value ``members`` gives a list item: it has fields of its own.
ITEM = ("<item>",)
#: Lists keyed by more than their patchMergeKey (x-kubernetes-list-map-keys).
LIST_KEY_OVERRIDES = {
    ("V1Container", "ports"): ("containerPort", "protocol"),
    ("V1EphemeralContainer", "ports"): ("containerPort", "protocol"),
    ("V1ServiceSpec", "ports"): ("port", "protocol"),
    ("V1PodSpec", "topologySpreadConstraints"): ("topologyKey", "whenUnsatisfiable"),
}
#: Key fields a list item may leave out, with the value Kubernetes defaults them to.
KEY_DEFAULTS = {"protocol": "TCP"}
#: Structs Kubernetes marks +structType=atomic: owned and replaced as a whole.
ATOMIC_STRUCTS = frozenset({
    "V1LabelSelector", "V1NodeSelector", "V1NodeSelectorTerm", "V1LocalObjectReference",
    "V1ObjectReference", "V1TypedLocalObjectReference", "V1ConfigMapKeySelector",
    "V1SecretKeySelector", "V1ObjectFieldSelector", "V1ResourceFieldSelector",
})
#: Metadata the server sets: never owned (what Kubernetes strips before tracking).
SERVER_METADATA = ("name", "namespace", "uid", "resourceVersion", "generation",
                   "creationTimestamp", "managedFields", "selfLink")
#: Deepest path followed; a deeper object is refused long before (decoding.MAX_DEPTH).
MAX_DEPTH = 200
SET = "set"


class FieldPathError(ValueError):
    """An object or a FieldsV1 value cannot be read as a field set; the message says why."""


_ENCODER = json.JSONEncoder(separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def encode(value):
    """Encode a value as FieldsV1 keys spell it: compact JSON, keys sorted, UTF-8."""
    if isinstance(value, str):
        return json.encoder.encode_basestring(value)
    if value is True or value is False or value is None:
        return "true" if value else ("false" if value is False else "null")
    if isinstance(value, int):
        return str(value)
    return _ENCODER.encode(value)


def list_kind(parent_type, field, item_type):
    """Return the key fields of an associative list, SET, or None for an atomic list."""
    override = LIST_KEY_OVERRIDES.get((parent_type, field))
    if override:
        return override
    key = patch.merge_key(item_type) if item_type else None
    if key:
        return (key,)
    if field in patch.MERGED_PRIMITIVE_LISTS:
        return SET
    return None


def item_element(item, keys):
    """Return the ``k:`` element naming a list item by its key fields (None if it has none)."""
    if not isinstance(item, dict):
        return None
    fields = {}
    for key in keys:
        value = item.get(key, KEY_DEFAULTS.get(key))
        if value is not None:
            fields[key] = value
    if not fields or not all(k in fields for k in keys if k not in KEY_DEFAULTS):
        return None
    return "k:{" + ",".join(f"{encode(k)}:{encode(fields[k])}" for k in sorted(fields)) + "}"


def child_type(type_name, field):
    """The schema type of ``field`` inside a value of ``type_name`` (None: unknown)."""
    if type_name is None or type_name == "object":
        return None
    if schema.is_map(type_name):
        return schema.element_type(type_name)
    if schema.has_type(type_name):
        return schema.field_type(type_name, field)
    return None


def granular(type_name):
    """Whether a map of this type is owned field by field (not replaced whole)."""
    return type_name is None or type_name == "object" or schema.is_map(type_name) or (
        schema.has_type(type_name) and type_name not in ATOMIC_STRUCTS)


def members(value, type_name, strict=False):
    """Return {path: value} of the paths ``value`` sets (list items map to ITEM).

    With ``strict`` an associative list with an item lacking its keys or a
    duplicate key is an error (an applied configuration); otherwise such a list
    is owned as a whole, as Kubernetes falls back to for stored objects.
    """
    out = {}
    _walk(value, type_name, (), out, strict)
    return out


def _walk(value, type_name, path, out, strict):
    if len(path) > MAX_DEPTH:
        raise FieldPathError(f"the object is nested more than {MAX_DEPTH} levels deep")
    for field, child in value.items():
        _child(child, child_type(type_name, field), path + ("f:" + str(field),), out, strict,
               type_name, field)


def _child(value, type_name, path, out, strict, parent_type, field):
    if isinstance(value, dict) and value and granular(type_name):
        _walk(value, type_name, path, out, strict)
    elif isinstance(value, list) and value and type_name and schema.is_list(type_name):
        item_type = schema.element_type(type_name)
        kind = list_kind(parent_type, field, item_type)
        if kind is None:
            out[path] = value
        elif kind == SET:
            _set_items(value, path, out, strict)
        else:
            _keyed_items(value, kind, item_type, path, out, strict)
    else:
        out[path] = value


def _set_items(value, path, out, strict):
    elements = ["v:" + encode(v) for v in value]
    if len(set(elements)) != len(elements) or any(isinstance(v, (dict, list)) for v in value):
        if strict:
            raise FieldPathError(f"{path_string(path)}: a set holds each value once, and "
                                 "only plain values")
        out[path] = value
        return
    for element, item in zip(elements, value):
        out[path + (element,)] = item


def _keyed_items(value, keys, item_type, path, out, strict):
    elements = [item_element(item, keys) for item in value]
    if None in elements or len(set(elements)) != len(elements):
        if strict:
            names = ", ".join(keys)
            raise FieldPathError(f"{path_string(path)}: every item needs its key fields "
                                 f"({names}) and no two items may have the same keys")
        out[path] = value
        return
    for element, item in zip(elements, value):
        item_path = path + (element,)
        out[item_path] = ITEM
        _walk(item, item_type, item_path, out, strict)


def find_item(items, element, keys):
    """Return the index of the item of a list named by a ``k:`` or ``v:`` element, or None."""
    for index, item in enumerate(items):
        if keys == SET:
            if "v:" + encode(item) == element:
                return index
        elif item_element(item, keys) == element:
            return index
    return None


# -- FieldsV1 ---------------------------------------------------------------------------
def to_fields_v1(paths):
    """Encode a set of paths as a FieldsV1 trie ('.' marks a member with children)."""
    root = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node["."] = {}
    return _compact(root, top=True)


def _compact(node, top=False):
    if not top and set(node) == {"."}:
        return {}
    return {key: (_compact(child) if key != "." else {}) for key, child in sorted(node.items())}


def from_fields_v1(trie, max_paths=100_000):
    """Decode a FieldsV1 trie into a frozenset of paths (FieldPathError if malformed)."""
    if not isinstance(trie, dict):
        raise FieldPathError("fieldsV1 must be an object")
    paths = set()
    stack = [(trie, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise FieldPathError(f"fieldsV1 is nested more than {MAX_DEPTH} levels deep")
        for key, child in node.items():
            if not isinstance(child, dict):
                raise FieldPathError(f"fieldsV1 {key!r} must map to an object")
            if key == ".":
                paths.add(path)
            elif key[:2] in ("f:", "k:", "v:", "i:"):
                if not child:
                    paths.add(path + (key,))
                else:
                    stack.append((child, path + (key,)))
            else:
                raise FieldPathError(f"fieldsV1 key {key[:60]!r} must start with f:, k:, v: "
                                     "or i:, or be '.'")
            if len(paths) > max_paths:
                raise FieldPathError(f"fieldsV1 holds more than {max_paths} fields")
    paths.discard(())
    return frozenset(paths)


def path_string(path):
    """Render a path as Kubernetes prints it: .spec.containers[name="web"].image."""
    parts = []
    for element in path:
        kind, text = element[:2], element[2:]
        if kind == "f:":
            parts.append("." + text)
        elif kind == "k:":
            try:
                fields = json.loads(text)
                parts.append("[" + ",".join(f"{k}={encode(v)}" for k, v in fields.items()) + "]")
            except (ValueError, AttributeError):
                parts.append("[" + text + "]")
        elif kind == "v:":
            parts.append("[=" + text + "]")
        else:
            parts.append("[" + text + "]")
    return "".join(parts)


def tracked(obj, has_status, subresource=None):
    """Return the part of ``obj`` whose fields are owned: no server metadata, and
    only status for the status subresource (no status for a main resource that has one)."""
    obj = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata = {k: v for k, v in metadata.items() if k not in SERVER_METADATA}
        if metadata:
            obj["metadata"] = metadata
        else:
            obj.pop("metadata")
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    if has_status:
        obj.pop("status", None)
    return obj
