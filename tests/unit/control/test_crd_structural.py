"""Structural schemas of custom resources: validation messages, defaulting, pruning."""

import pytest

from control.api.crd import jsonpath, schemacheck
from control.objects import structural

SPEC = {"type": "object", "properties": {
    "spec": {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "string", "enum": ["S", "M", "L"]},
        "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
        "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
        "port": {"type": "integer", "format": "int32"},
        "when": {"type": "string", "format": "date-time"},
        "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        "note": {"type": "string", "nullable": True},
        "port2": {"x-kubernetes-int-or-string": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "nested": {"type": "object", "properties": {
            "deep": {"type": "string", "default": "x"}}, "default": {}},
    }},
    "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
}}


def errors_of(spec):
    return structural.validate({"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"},
                                "spec": spec}, SPEC)


@pytest.mark.parametrize("spec,expected", [
    ({}, [("spec.size", "FieldValueRequired", "Required value")]),
    ({"size": "XL"}, [("spec.size", "FieldValueNotSupported",
                       'Unsupported value: "XL": supported values: "S", "M", "L"')]),
    ({"size": 3}, [("spec.size", "FieldValueInvalid",
                    'Invalid value: 3: spec.size in body must be of type string: 3')]),
    ({"size": "S", "replicas": "two"},
     [("spec.replicas", "FieldValueInvalid",
       'Invalid value: "two": spec.replicas in body must be of type integer: "two"')]),
    ({"size": "S", "replicas": 0},
     [("spec.replicas", "FieldValueInvalid",
       "Invalid value: 0: spec.replicas in body should be greater than or equal to 1")]),
    ({"size": "S", "replicas": 11},
     [("spec.replicas", "FieldValueInvalid",
       "Invalid value: 11: spec.replicas in body should be less than or equal to 10")]),
    ({"size": "S", "name": "a"},
     [("spec.name", "FieldValueInvalid",
       'Invalid value: "a": spec.name in body should be at least 2 chars long')]),
    ({"size": "S", "name": "abcdef"},
     [("spec.name", "FieldValueTooLong", "Too long: may not be longer than 5")]),
    ({"size": "S", "name": "AB"},
     [("spec.name", "FieldValueInvalid",
       "Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'")]),
    ({"size": "S", "tags": []},
     [("spec.tags", "FieldValueInvalid",
       "Invalid value: 0: spec.tags in body should have at least 1 items")]),
    ({"size": "S", "tags": ["a", "b", "c"]},
     [("spec.tags", "FieldValueTooMany", "Too many: 3: must have at most 2 items")]),
    ({"size": "S", "tags": [1]},
     [("spec.tags[0]", "FieldValueInvalid",
       "Invalid value: 1: spec.tags[0] in body must be of type string: 1")]),
    ({"size": "S", "port": 2**31},
     [("spec.port", "FieldValueInvalid",
       f"Invalid value: {2**31}: spec.port in body must be of type int32: {2**31}")]),
    ({"size": "S", "when": "yesterday"},
     [("spec.when", "FieldValueInvalid",
       'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"')]),
    ({"size": "S", "ratio": 0},
     [("spec.ratio", "FieldValueInvalid", "Invalid value: 0: spec.ratio in body should be "
       "greater than 0")]),
    ({"size": None},
     [("spec.size", "FieldValueInvalid",
       'Invalid value: "null": spec.size in body must be of type string: "null"')]),
    ({"size": "S", "port2": True},
     [("spec.port2", "FieldValueInvalid",
       "Invalid value: true: spec.port2 in body must be of type integer or string: true")]),
    ({"size": "S", "labels": {"a": 1}},
     [("spec.labels.a", "FieldValueInvalid",
       "Invalid value: 1: spec.labels.a in body must be of type string: 1")]),
])
def test_validation_messages_are_kubernetes(spec, expected):
    assert errors_of(spec) == expected


def test_valid_objects_pass():
    assert errors_of({"size": "M", "replicas": 3, "name": "abc", "tags": ["x"], "port": 80,
                      "when": "2026-01-02T03:04:05Z", "ratio": 0.5, "note": None,
                      "port2": "http", "labels": {"a": "b"}, "free": {"any": [1, {}]}}) == []


def test_defaults_fill_absent_fields_and_nested_objects():
    obj = {"spec": {"size": "S"}}
    structural.apply_defaults(obj, SPEC)
    assert obj["spec"]["replicas"] == 1 and obj["spec"]["nested"] == {"deep": "x"}
    kept = {"spec": {"size": "S", "replicas": 4}}
    assert structural.apply_defaults(kept, SPEC)["spec"]["replicas"] == 4


def test_pruning_drops_unknown_fields_except_where_preserved():
    obj = {"spec": {"size": "S", "junk": 1, "free": {"kept": {"deep": 1}},
                    "labels": {"any": "x"}, "tags": ["a"]},
           "status": {"ready": True, "bogus": 2}, "top": 3}
    pruned = structural.prune(obj, SPEC)
    assert sorted(pruned) == ["spec.junk", "status.bogus", "top"]
    assert obj == {"spec": {"size": "S", "free": {"kept": {"deep": 1}}, "labels": {"any": "x"},
                            "tags": ["a"]}, "status": {"ready": True}}


def test_junctors():
    node = {"type": "object", "properties": {"v": {"anyOf": [{"type": "integer"},
                                                             {"type": "string"}]}}}
    assert structural.validate({"v": 1}, node) == []
    assert structural.validate({"v": [1]}, node)[0][2].endswith(
        "v in body must validate at least one schema (anyOf)")


# ------------------------------------------------------------------ schemacheck

ROOT = "spec.versions[0].schema.openAPIV3Schema"


def check(schema):
    return schemacheck.check(schema, ROOT)


def test_structural_schema_accepted():
    assert check(SPEC) == []


def test_missing_type_is_refused_with_kubernetes_path():
    problems = check({"type": "object", "properties": {"spec": {"properties": {}}}})
    assert problems == [(f"{ROOT}.properties[spec].type", "FieldValueRequired",
                         "Required value: must not be empty for specified object fields")]


def test_preserve_and_int_or_string_need_no_type():
    assert check({"type": "object", "properties": {
        "a": {"x-kubernetes-preserve-unknown-fields": True},
        "b": {"x-kubernetes-int-or-string": True}}}) == []


@pytest.mark.parametrize("schema,field,fragment", [
    ({"type": "string"}, f"{ROOT}.type", "must be object at the root"),
    ({"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string"}}},
     f"{ROOT}.properties[a].$ref", "Forbidden: $ref is not supported"),
    ({"type": "object", "properties": {"a": {"type": "array"}}},
     f"{ROOT}.properties[a].items", "Required value"),
    ({"type": "object", "properties": {"a": {"type": "array", "items": {}}}},
     f"{ROOT}.properties[a].items.type", "must not be empty for specified array items"),
    ({"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}},
     f"{ROOT}.properties[a].default", "must be of type integer"),
    ({"type": "object", "properties": {"a": {"type": "object", "default": {"b": 1}}}},
     f"{ROOT}.properties[a].default.b", "must not have unknown fields"),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(a+)+$"}}},
     f"{ROOT}.properties[a].pattern", "nested quantifiers"),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?=x)"}}},
     f"{ROOT}.properties[a].pattern", "look-around"),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "["}}},
     f"{ROOT}.properties[a].pattern", "must be a valid regular expression"),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {},
                                             "additionalProperties": {"type": "string"}}}},
     f"{ROOT}.properties[a].additionalProperties", "mutual exclusive"),
    ({"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"type": "string"}]}}},
     f"{ROOT}.properties[a].anyOf[0].type", "must be empty to be structural"),
    ({"type": "object", "properties": {"a": {"type": "tuple"}}},
     f"{ROOT}.properties[a].type", "Unsupported value"),
    ({"type": "object", "properties": {"a": {"type": "string",
                                             "x-kubernetes-preserve-unknown-fields": False}}},
     f"{ROOT}.properties[a].x-kubernetes-preserve-unknown-fields", "must be true or undefined"),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "labels": {"type": "object"}}}}},
     f"{ROOT}.properties[metadata]", "name and generateName"),
    ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True,
                                             "items": {"type": "string"}}}},
     f"{ROOT}.properties[a].uniqueItems", "quadratic"),
])
def test_non_structural_schemas_are_refused(schema, field, fragment):
    problems = check(schema)
    assert any(p[0] == field and fragment in p[2] for p in problems), problems


def test_huge_schema_is_refused_once():
    wide = {"type": "object", "properties": {f"f{i}": {"type": "string"}
                                             for i in range(schemacheck.MAX_NODES + 10)}}
    problems = check(wide)
    assert len(problems) == 1 and "more than" in problems[0][2]


# ------------------------------------------------------------------ jsonpath

def test_jsonpath_subset():
    obj = {"spec": {"replicas": 2, "items": [{"n": "a"}, {"n": "b"}]},
           "metadata": {"annotations": {"a.b/c": "v"}},
           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert jsonpath.find(obj, ".spec.replicas") == [2]
    assert jsonpath.find(obj, ".spec.items[1].n") == ["b"]
    assert jsonpath.find(obj, ".spec.items[*].n") == ["a", "b"]
    assert jsonpath.find(obj, ".metadata.annotations['a.b/c']") == ["v"]
    assert jsonpath.find(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath.find(obj, ".spec.missing") == []
    assert jsonpath.problem("spec.x") and jsonpath.problem(".spec[") and \
        jsonpath.problem(".a" * 400)
    target = {}
    jsonpath.set_simple(target, ".spec.replicas", 3)
    assert target == {"spec": {"replicas": 3}}
