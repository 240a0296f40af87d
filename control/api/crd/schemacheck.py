"""Check that a CRD's openAPIV3Schema is structural, as kube-apiserver requires in v1.

Every node has a ``type`` (unless it is ``x-kubernetes-int-or-string`` or
``x-kubernetes-preserve-unknown-fields``), nothing the API server cannot enforce
appears (``$ref``, ``patternProperties``, ...), logical junctors (allOf, anyOf,
oneOf, not) add no types or defaults, ``metadata`` is only restricted in its name,
and every ``default`` passes its own node's validation. Patterns are refused when
RE2 (Kubernetes' engine) would refuse them, or when they nest quantifiers (Python's
matcher could take exponential time on them).
"""

import copy
import re

from control.objects import structural

TYPES = ("object", "array", "string", "integer", "number", "boolean")
FORBIDDEN = ("$ref", "$schema", "definitions", "dependencies", "deprecated", "discriminator",
             "id", "patternProperties", "readOnly", "writeOnly", "xml", "additionalItems")
JUNCTORS = ("allOf", "anyOf", "oneOf")
NOT_IN_JUNCTORS = ("type", "default", "additionalProperties", "nullable", "description",
                   structural.PRESERVE, structural.EMBEDDED, structural.INT_OR_STRING)
NUMBERS = ("minimum", "maximum", "multipleOf")
COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
#: Nodes one schema may hold: a bound on the work every custom object's write costs.
MAX_NODES = 10000
_RE2_UNSUPPORTED = re.compile(r"\\[1-9]|\(\?[=!]|\(\?<[=!]|\(\?P=")
_NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


class _Walk:
    def __init__(self):
        self.errors = []
        self.nodes = 0

    def add(self, path, reason, message):
        self.errors.append((path, reason, message))


def check(schema, path):
    """Return (field, reason, message) errors of a CRD version's openAPIV3Schema."""
    walk = _Walk()
    if not isinstance(schema, dict):
        walk.add(path, "FieldValueRequired", "Required value: schemas are required")
        return walk.errors
    if schema.get("type") != "object":
        walk.add(f"{path}.type", "FieldValueInvalid",
                 f"Invalid value: {_q(schema.get('type', ''))}: must be object at the root")
    _node(walk, schema, path, in_junctor=False, items=False)
    metadata = (schema.get("properties") or {}).get("metadata")
    if isinstance(metadata, dict):
        _check_metadata(walk, metadata, f"{path}.properties[metadata]")
    return walk.errors


def _q(value):
    return structural._quote(value)


def _node(walk, node, path, in_junctor, items):
    walk.nodes += 1
    if walk.nodes == MAX_NODES + 1:
        walk.add(path, "FieldValueTooMany", f"Too many: the schema has more than {MAX_NODES} "
                 "nodes; split the resource or use x-kubernetes-preserve-unknown-fields")
    if walk.nodes > MAX_NODES:
        return
    if not isinstance(node, dict):
        walk.add(path, "FieldValueInvalid", f"Invalid value: {_q(node)}: must be a schema object")
        return
    for key in FORBIDDEN:
        if key in node:
            walk.add(f"{path}.{key}", "FieldValueForbidden", f"Forbidden: {key} is not supported")
    if node.get("uniqueItems"):
        walk.add(f"{path}.uniqueItems", "FieldValueForbidden", "Forbidden: uniqueItems cannot "
                 "be set to true since the runtime complexity becomes quadratic")
    if in_junctor:
        for key in NOT_IN_JUNCTORS:
            if key in node:
                walk.add(f"{path}.{key}", "FieldValueForbidden",
                         f"Forbidden: must be empty to be structural ({key} inside allOf, "
                         "anyOf, oneOf or not)")
    else:
        _check_type(walk, node, path, items)
    _check_keywords(walk, node, path)
    for name, sub in _children(walk, node, path):
        _node(walk, sub, name, in_junctor, items=name.endswith(".items"))
    for junctor in JUNCTORS:
        subs = node.get(junctor)
        if subs is None:
            continue
        if not isinstance(subs, list):
            walk.add(f"{path}.{junctor}", "FieldValueInvalid", "Invalid value: must be a list")
            continue
        for index, sub in enumerate(subs):
            _node(walk, sub, f"{path}.{junctor}[{index}]", True, False)
    if "not" in node:
        _node(walk, node["not"], f"{path}.not", True, False)
    if "default" in node and not in_junctor:
        _check_default(walk, node, path)


def _check_type(walk, node, path, items):
    preserve, int_or_string = node.get(structural.PRESERVE), node.get(structural.INT_OR_STRING)
    kind = node.get("type")
    if structural.PRESERVE in node and preserve is not True:
        walk.add(f"{path}.{structural.PRESERVE}", "FieldValueInvalid",
                 f"Invalid value: {_q(preserve)}: must be true or undefined")
    if int_or_string:
        if kind is not None:
            walk.add(f"{path}.type", "FieldValueForbidden",
                     "Forbidden: must be empty for x-kubernetes-int-or-string")
        return
    if kind is None:
        if not preserve:
            what = "array items" if items else "object fields"
            walk.add(f"{path}.type", "FieldValueRequired",
                     f"Required value: must not be empty for specified {what}")
        return
    if kind not in TYPES:
        walk.add(f"{path}.type", "FieldValueNotSupported", f"Unsupported value: {_q(kind)}: "
                 "supported values: " + ", ".join(_q(t) for t in TYPES))
    if kind == "array" and "items" not in node:
        walk.add(f"{path}.items", "FieldValueRequired", "Required value: must be specified")


def _check_keywords(walk, node, path):
    if "properties" in node and "additionalProperties" in node:
        walk.add(f"{path}.additionalProperties", "FieldValueForbidden",
                 "Forbidden: additionalProperties and properties are mutual exclusive")
    for key in NUMBERS:
        if key in node and not structural._has_type(node[key], "number"):
            walk.add(f"{path}.{key}", "FieldValueInvalid",
                     f"Invalid value: {_q(node[key])}: must be a number")
    for key in COUNTS:
        if key in node and not (structural._has_type(node[key], "integer") and node[key] >= 0):
            walk.add(f"{path}.{key}", "FieldValueInvalid",
                     f"Invalid value: {_q(node[key])}: must be a non-negative integer")
    if "enum" in node and not isinstance(node["enum"], list):
        walk.add(f"{path}.enum", "FieldValueInvalid", "Invalid value: must be a list")
    required = node.get("required")
    if required is not None and not (isinstance(required, list) and
                                      all(isinstance(r, str) for r in required)):
        walk.add(f"{path}.required", "FieldValueInvalid", "Invalid value: must be a list of "
                 "field names")
    if "pattern" in node:
        problem = pattern_problem(node["pattern"])
        if problem:
            walk.add(f"{path}.pattern", "FieldValueInvalid",
                     f"Invalid value: {_q(node['pattern'])}: {problem}")


def pattern_problem(pattern):
    """Say why a pattern cannot be used, or return None."""
    if not isinstance(pattern, str):
        return "must be a string"
    if _RE2_UNSUPPORTED.search(pattern):
        return ("must be a valid regular expression: back-references and look-around are not "
                "supported (RE2 syntax)")
    if _NESTED_QUANTIFIER.search(pattern):
        return "nested quantifiers such as (a+)+ are refused: they can take exponential time"
    try:
        structural.compiled(pattern)
    except re.error as exc:
        return f"must be a valid regular expression: {exc}"
    return None


def _children(walk, node, path):
    properties = node.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            walk.add(f"{path}.properties", "FieldValueInvalid", "Invalid value: must be an object")
        else:
            for name, sub in properties.items():
                yield f"{path}.properties[{name}]", sub
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        yield f"{path}.additionalProperties", extra
    elif extra is not None and not isinstance(extra, bool):
        walk.add(f"{path}.additionalProperties", "FieldValueInvalid",
                 "Invalid value: must be a schema or a boolean")
    if "items" in node:
        if isinstance(node["items"], dict):
            yield f"{path}.items", node["items"]
        else:
            walk.add(f"{path}.items", "FieldValueForbidden",
                     "Forbidden: items must be a schema object and not an array")


def _check_default(walk, node, path):
    value = node["default"]
    if value is None and not node.get("nullable"):
        walk.add(f"{path}.default", "FieldValueForbidden",
                 "Forbidden: must not be null for a field that is not nullable")
        return
    for field, reason, message in structural.validate(value, node, f"{path}.default"):
        walk.add(field, reason, message)
    pruned = structural.prune(copy.deepcopy(value), node, f"{path}.default")
    for field in pruned:
        walk.add(field, "FieldValueInvalid", "Invalid value: must not have unknown fields "
                 "(they would be pruned)")


def _check_metadata(walk, metadata, path):
    allowed = {"type", "properties", "description"}
    properties = metadata.get("properties") or {}
    if set(metadata) - allowed or set(properties) - {"name", "generateName"}:
        walk.add(path, "FieldValueForbidden", "Forbidden: must not specify anything other than "
                 "name and generateName, but metadata is implicitly specified")
    if metadata.get("type") not in (None, "object"):
        walk.add(f"{path}.type", "FieldValueInvalid",
                 f"Invalid value: {_q(metadata.get('type'))}: must be object")
