"""Structural OpenAPI v3 schemas of custom resources: validate, default, prune.

What kube-apiserver does with a CustomResourceDefinition's ``openAPIV3Schema``
for every custom object written: unknown fields are pruned (unless a node says
``x-kubernetes-preserve-unknown-fields``), ``default`` values are filled in,
then the object is validated with Kubernetes' field paths and messages
(``spec.replicas: Invalid value: "x": spec.replicas in body must be of type
integer: "x"``). Checking that a schema is structural is control/api/crd/schemacheck.py's.
Every walk here follows the schema and the value together, so its depth is
bounded by the request body's nesting limit (control/api/decoding.py).
"""

import base64
import binascii
import copy
import datetime
import ipaddress
import json
import re
import uuid

INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE = "x-kubernetes-preserve-unknown-fields"
EMBEDDED = "x-kubernetes-embedded-resource"
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object", type(None): "null"}
#: Regular expressions compiled once per pattern (a CRD's patterns are few).
_PATTERNS = {}
MAX_PATTERNS = 4096


def json_type(value):
    return _JSON_TYPES.get(type(value), type(value).__name__)


def child(path, name):
    return f"{path}.{name}" if path else name


def _quote(value):
    """Go's %q of a scalar, or the JSON of anything else, as Kubernetes' messages print."""
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"))


def _has_type(value, wanted):
    if wanted == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if wanted == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return json_type(value) == wanted


# ---------------------------------------------------------------- validation

def validate(value, node, path=""):
    """Return Kubernetes' (field, reason, message) errors of ``value`` against ``node``."""
    found = []
    _validate(value, node or {}, path, found)
    return found


def _invalid(found, path, value, message):
    found.append((path, "FieldValueInvalid", f"Invalid value: {_quote(value)}: {message}"))


def _type_error(found, path, value, wanted):
    shown = "null" if value is None else value
    _invalid(found, path, shown, f"{path} in body must be of type {wanted}: {_quote(shown)}")


def _validate(value, node, path, found):
    if value is None:
        if node.get("nullable") or node.get(PRESERVE) and "type" not in node:
            return
        if "type" in node:
            _type_error(found, path, None, node["type"])
        elif node.get(INT_OR_STRING):
            _type_error(found, path, None, "integer or string")
        return
    wanted = node.get("type")
    if node.get(INT_OR_STRING):
        if not (isinstance(value, str) or _has_type(value, "integer")):
            return _type_error(found, path, value, "integer or string")
    elif wanted and not _has_type(value, wanted):
        return _type_error(found, path, value, wanted)
    if "enum" in node and not any(_same(value, allowed) for allowed in node["enum"]):
        supported = ", ".join(_quote(v) for v in node["enum"])
        found.append((path, "FieldValueNotSupported",
                      f"Unsupported value: {_quote(value)}: supported values: {supported}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _numeric(value, node, path, found)
    elif isinstance(value, str):
        _string(value, node, path, found)
    elif isinstance(value, list):
        _array(value, node, path, found)
    elif isinstance(value, dict):
        _object(value, node, path, found)
    _junctors(value, node, path, found)


def _same(a, b):
    return json_type(a) == json_type(b) and a == b or (
        _has_type(a, "number") and _has_type(b, "number") and a == b)


def _numeric(value, node, path, found):
    if "minimum" in node:
        low = node["minimum"]
        if node.get("exclusiveMinimum") and value <= low:
            _invalid(found, path, value, f"{path} in body should be greater than {low}")
        elif value < low:
            _invalid(found, path, value,
                     f"{path} in body should be greater than or equal to {low}")
    if "maximum" in node:
        high = node["maximum"]
        if node.get("exclusiveMaximum") and value >= high:
            _invalid(found, path, value, f"{path} in body should be less than {high}")
        elif value > high:
            _invalid(found, path, value, f"{path} in body should be less than or equal to {high}")
    step = node.get("multipleOf")
    if step and (value / step) != int(value / step):
        _invalid(found, path, value, f"{path} in body should be a multiple of {step}")
    fmt = node.get("format")
    if fmt == "int32" and not -2**31 <= value < 2**31 or \
            fmt == "int64" and not -2**63 <= value < 2**63:
        _invalid(found, path, value, f"{path} in body must be of type {fmt}: {_quote(value)}")


def _string(value, node, path, found):
    if "maxLength" in node and len(value) > node["maxLength"]:
        found.append((path, "FieldValueTooLong",
                      f"Too long: may not be longer than {node['maxLength']}"))
    if "minLength" in node and len(value) < node["minLength"]:
        _invalid(found, path, value,
                 f"{path} in body should be at least {node['minLength']} chars long")
    if "pattern" in node and compiled(node["pattern"]).search(value) is None:
        _invalid(found, path, value, f"{path} in body should match '{node['pattern']}'")
    fmt = node.get("format")
    if fmt in FORMATS and not FORMATS[fmt](value):
        _invalid(found, path, value, f"{path} in body must be of type {fmt}: {_quote(value)}")


def _array(value, node, path, found):
    if "maxItems" in node and len(value) > node["maxItems"]:
        found.append((path, "FieldValueTooMany",
                      f"Too many: {len(value)}: must have at most {node['maxItems']} items"))
    if "minItems" in node and len(value) < node["minItems"]:
        _invalid(found, path, len(value),
                 f"{path} in body should have at least {node['minItems']} items")
    if node.get("x-kubernetes-list-type") == "set":
        seen = []
        for index, item in enumerate(value):
            if item in seen:
                found.append((f"{path}[{index}]", "FieldValueDuplicate",
                              f"Duplicate value: {_quote(item)}"))
            seen.append(item)
    items = node.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", found)


def _object(value, node, path, found):
    properties = node.get("properties") or {}
    for name in node.get("required") or ():
        if name not in value:
            found.append((child(path, name), "FieldValueRequired", "Required value"))
    if "maxProperties" in node and len(value) > node["maxProperties"]:
        found.append((path, "FieldValueTooMany", f"Too many: {len(value)}: must have at most "
                      f"{node['maxProperties']} items"))
    if "minProperties" in node and len(value) < node["minProperties"]:
        _invalid(found, path, len(value),
                 f"{path} in body should have at least {node['minProperties']} properties")
    extra = node.get("additionalProperties")
    for name, item in value.items():
        if name in properties:
            if not (path == "" and name == "metadata"):
                _validate(item, properties[name], child(path, name), found)
        elif isinstance(extra, dict):
            _validate(item, extra, child(path, name), found)


def _junctors(value, node, path, found):
    for sub in node.get("allOf") or ():
        _validate(value, sub, path, found)
    if node.get("anyOf") and not any(not validate(value, sub, path) for sub in node["anyOf"]):
        _invalid(found, path, value, f"{path} in body must validate at least one schema (anyOf)")
    if node.get("oneOf") and sum(not validate(value, sub, path) for sub in node["oneOf"]) != 1:
        _invalid(found, path, value, f"{path} in body must validate one and only one schema "
                 "(oneOf)")
    if isinstance(node.get("not"), dict) and not validate(value, node["not"], path):
        _invalid(found, path, value, f"{path} in body must not validate the schema (not)")


def compiled(pattern):
    """Return the pattern compiled (cached; a bad pattern was refused with its CRD)."""
    found = _PATTERNS.get(pattern)
    if found is None:
        if len(_PATTERNS) >= MAX_PATTERNS:
            _PATTERNS.clear()
        found = _PATTERNS[pattern] = re.compile(pattern)
    return found


# ---------------------------------------------------------------- formats (the cheap ones)

def _date_time(text):
    try:
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return "T" in text.upper()
    except ValueError:
        return False


def _date(text):
    try:
        datetime.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _byte(text):
    try:
        base64.b64decode(text, validate=True)
        return True
    except (binascii.Error, ValueError):
        return False


def _ip(version):
    def check(text):
        try:
            return ipaddress.ip_address(text).version == version
        except ValueError:
            return False
    return check


def _uuid(text):
    try:
        uuid.UUID(text)
        return len(text) == 36
    except ValueError:
        return False


FORMATS = {"date-time": _date_time, "date": _date, "byte": _byte, "ipv4": _ip(4),
           "ipv6": _ip(6), "uuid": _uuid,
           "email": lambda text: re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text) is not None}


# ---------------------------------------------------------------- defaulting and pruning

def apply_defaults(value, node):
    """Fill in ``default`` values where fields are absent (or null and not nullable)."""
    if isinstance(value, dict):
        properties = node.get("properties") or {}
        for name, sub in properties.items():
            if "default" in sub and (name not in value or
                                     value[name] is None and not sub.get("nullable")):
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                apply_defaults(value[name], sub)
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in properties:
                    apply_defaults(item, extra)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for item in value:
            apply_defaults(item, node["items"])
    return value


def prune(value, node, path="", pruned=None):
    """Drop the fields the schema does not specify, in place; return their paths.

    Kept: what a node with ``x-kubernetes-preserve-unknown-fields`` holds, every key
    under ``additionalProperties``, and an embedded resource's apiVersion, kind and
    metadata.
    """
    pruned = [] if pruned is None else pruned
    if isinstance(value, dict):
        properties = node.get("properties") or {}
        extra = node.get("additionalProperties")
        keep_all = node.get(PRESERVE) or extra is True or isinstance(extra, dict)
        for name in list(value):
            if name in properties:
                prune(value[name], properties[name], child(path, name), pruned)
            elif isinstance(extra, dict):
                prune(value[name], extra, child(path, name), pruned)
            elif not keep_all and not (node.get(EMBEDDED) and
                                       name in ("apiVersion", "kind", "metadata")):
                del value[name]
                pruned.append(child(path, name))
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for index, item in enumerate(value):
            prune(item, node["items"], f"{path}[{index}]", pruned)
    return pruned
