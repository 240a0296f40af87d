"""PATCH bodies: JSON merge patch, JSON patch and Kubernetes' strategic merge patch.

Strategic merge is what `kubectl apply`, `label` and `edit` send for built-in
kinds: like a merge patch, except that lists of objects with a merge key (the
containers of a pod by ``name``, a service's ports by ``port``...) are merged item
by item instead of replaced, and ``$patch``/``$retainKeys``/``$deleteFromPrimitiveList``
directives say what to delete or replace. The item types and their merge keys come
from the schema (control/objects/schema.py) and Kubernetes' patchMergeKey tags.
"""

import copy
import json

from control.objects import schema

#: Operations one JSON patch may hold (kube-apiserver's maxJSONPatchOperations).
MAX_OPERATIONS = 10_000
#: Bytes (as JSON) all of a patch's ``copy`` operations may copy together: a copy of
#: the whole document doubles it, so twenty of them would need gigabytes.
MAX_COPIED_BYTES = 3 * 1024 * 1024


class PatchError(ValueError):
    """The patch cannot be applied; the message says why."""


# -- RFC 7386 JSON merge patch -------------------------------------------------------
def merge_patch(target, patch):
    """Apply a JSON merge patch: maps merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 JSON patch ---------------------------------------------------------------
def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"JSON pointer {path!r} must start with '/'")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc, parts, path):
    node = doc
    for part in parts[:-1]:
        node = _child(node, part, path)
    return node


def _child(node, part, path):
    try:
        if isinstance(node, list):
            return node[int(part)]
        return node[part]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"path {path!r} does not exist in the object") from None


def _index(node, part, path, allow_end):
    if part == "-" and allow_end:
        return len(node)
    try:
        index = int(part)
    except ValueError:
        raise PatchError(f"{part!r} in {path!r} is not a list index") from None
    if not 0 <= index <= len(node) - (0 if allow_end else 1):
        raise PatchError(f"index {index} in {path!r} is out of range")
    return index


def _add(doc, path, value):
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _parent(doc, parts, path), parts[-1]
    if isinstance(parent, list):
        parent.insert(_index(parent, last, path, allow_end=True), value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise PatchError(f"cannot add at {path!r}: its parent is not an object or a list")
    return doc


def _remove(doc, path):
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole object")
    parent, last = _parent(doc, parts, path), parts[-1]
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    raise PatchError(f"path {path!r} does not exist in the object")


def json_patch(target, operations, max_operations=MAX_OPERATIONS,
               max_copied_bytes=MAX_COPIED_BYTES):
    """Apply an RFC 6902 JSON patch (add, remove, replace, move, copy, test).

    At most ``max_operations`` operations, and ``copy`` operations that together
    copy at most ``max_copied_bytes`` (measured as JSON) before they are made.
    """
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    if len(operations) > max_operations:
        raise PatchError(f"the JSON patch has {len(operations)} operations; at most "
                         f"{max_operations} are accepted")
    doc = copy.deepcopy(target)
    copied = 0
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {number} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if not isinstance(path, str) or not isinstance(op.get("from", ""), str):
            raise PatchError(f"operation {number}: 'path' and 'from' must be strings")
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {number} ({kind}) needs a 'value'")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError(f"operation {number} ({kind}) needs 'from'")
            parts = _pointer(op["from"])
            value = _child(_parent(doc, parts, op["from"]), parts[-1], op["from"]) \
                if parts else doc
            if kind == "copy":
                copied += len(json.dumps(value, separators=(",", ":")))
                if copied > max_copied_bytes:
                    raise PatchError(f"the copy operations of the JSON patch copy more than "
                                     f"{max_copied_bytes} bytes (at operation {number})")
            value = copy.deepcopy(value)
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            parts = _pointer(path)
            current = _child(_parent(doc, parts, path), parts[-1], path) if parts else doc
            if current != op["value"]:
                raise PatchError(f"test failed at {path!r}: the value is {current!r}")
        else:
            raise PatchError(f"unknown JSON patch operation {kind!r}")
    return doc


# -- strategic merge patch ----------------------------------------------------------------
#: Item type -> merge key, from Kubernetes' patchMergeKey struct tags.
MERGE_KEYS = {
    "V1Container": "name", "V1EphemeralContainer": "name", "V1ContainerPort": "containerPort",
    "V1EnvVar": "name", "V1Volume": "name", "V1VolumeMount": "mountPath",
    "V1VolumeDevice": "devicePath", "V1LocalObjectReference": "name",
    "V1ServicePort": "port", "V1OwnerReference": "uid", "V1NodeAddress": "type",
    "V1HostAlias": "ip", "V1PodResourceClaim": "name", "V1TopologySpreadConstraint": "topologyKey",
}
#: Primitive lists merged as sets rather than replaced.
MERGED_PRIMITIVE_LISTS = {"finalizers"}


def merge_key(item_type):
    if item_type in MERGE_KEYS:
        return MERGE_KEYS[item_type]
    if item_type.endswith("Condition"):
        return "type"
    return None


def strategic_merge_patch(target, patch, type_name):
    """Apply a strategic merge patch to an object of schema type ``type_name``."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _merge_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch, type_name)


def _field_type(type_name, field):
    if type_name and schema.has_type(type_name):
        return schema.field_type(type_name, field)
    return None


def _merge_map(original, patch, type_name):
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            original[field] = [v for v in original.get(field, []) if v not in value]
            continue
        if value is None:
            original.pop(key, None)
            continue
        field_type = _field_type(type_name, key)
        current = original.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            original[key] = _merge_map(current, value, _element_type(field_type, "{}") or field_type)
        elif isinstance(value, list) and isinstance(current, list):
            original[key] = _merge_list(current, value, key, _element_type(field_type, "[]"))
        else:
            original[key] = _strip_directives(copy.deepcopy(value))
    if retain is not None:
        original = {k: v for k, v in original.items() if k in retain}
    return original


def _element_type(field_type, marker):
    if field_type and field_type.startswith(marker):
        return field_type[len(marker):]
    return None


def _merge_list(current, patch, field, item_type):
    key = merge_key(item_type) if item_type else None
    if key is None:
        if field in MERGED_PRIMITIVE_LISTS:
            return current + [v for v in patch if v not in current]
        if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
            return [_strip_directives(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
        return _strip_directives(copy.deepcopy(patch))
    merged = [copy.deepcopy(item) for item in current]
    for item in patch:
        if not isinstance(item, dict):
            raise PatchError(f"items of {field} must be objects with a {key!r} key")
        if item.get("$patch") == "replace":
            return [_strip_directives(copy.deepcopy(i)) for i in patch if i.get("$patch") != "replace"]
        position = next((n for n, m in enumerate(merged)
                         if isinstance(m, dict) and key in item and m.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if position is not None:
                merged.pop(position)
        elif position is None:
            merged.append(_strip_directives(copy.deepcopy(item)))
        else:
            merged[position] = _merge_map(merged[position], item, item_type)
    return merged


def _strip_directives(value):
    """Drop $-directives from a value that is being inserted as a whole."""
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value
