"""OpenAPI documents built from the compact schema: /openapi/v3 and /openapi/v2.

kubectl 1.32 reads the v3 index, then one document per group/version, for
`apply` (it looks for the ``fieldValidation`` query parameter on each kind's
PATCH to decide that the server validates) and for `explain` (it finds a kind's
schema by its ``x-kubernetes-group-version-kind``). v2 is served as JSON for
other tools. Documents are built once per process and cached with their hash.
"""

import functools
import hashlib
import json

from control.objects import kinds, schema

_FORMATS = {
    "string": {"type": "string"},
    "integer": {"type": "integer", "format": "int64"},
    "number": {"type": "number", "format": "double"},
    "boolean": {"type": "boolean"},
    "date-time": {"type": "string", "format": "date-time"},
    "date": {"type": "string", "format": "date"},
    "byte": {"type": "string", "format": "byte"},
    "object": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "int-or-string": {"x-kubernetes-int-or-string": True},
    "quantity": {"x-kubernetes-int-or-string": True},
}


def _property(field_type, ref_prefix):
    if field_type.startswith("[]"):
        return {"type": "array", "items": _property(field_type[2:], ref_prefix)}
    if field_type.startswith("{}"):
        return {"type": "object", "additionalProperties": _property(field_type[2:], ref_prefix)}
    if field_type in _FORMATS:
        return dict(_FORMATS[field_type])
    return {"$ref": ref_prefix + field_type}


def _gvk_by_type():
    found = {}
    for key, type_name in schema.kinds().items():
        group_version, _, kind = key.rpartition("/")
        group, _, version = group_version.rpartition("/")
        found.setdefault(type_name, []).append({"group": group, "version": version, "kind": kind})
    return found


def _schemas(ref_prefix):
    gvks = _gvk_by_type()
    out = {}
    for name in schema.type_names():
        properties = {}
        for field, field_type in schema.fields(name).items():
            prop = _property(field_type, ref_prefix)
            description = schema.field_description(name, field)
            if description:
                prop = {"allOf": [prop], "description": description} if "$ref" in prop \
                    else {**prop, "description": description}
            properties[field] = prop
        entry = {"type": "object", "description": schema.type_description(name),
                 "properties": properties}
        required = schema.required_fields(name)
        if required:
            entry["required"] = required
        if name in gvks:
            entry["x-kubernetes-group-version-kind"] = gvks[name]
        out[name] = entry
    return out


_FIELD_VALIDATION = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
                     "description": "Ignore, Warn or Strict handling of unknown fields."}


def _operation(action, op_id, gvk, ref, body=False):
    op = {"operationId": op_id, "x-kubernetes-action": action,
          "x-kubernetes-group-version-kind": gvk, "parameters": [_FIELD_VALIDATION],
          "responses": {"200": {"description": "OK",
                                "content": {"application/json": {"schema": ref}}}}}
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": ref}}}
    return op


def _paths(group, version, ref_prefix):
    """Collection and item paths with their verbs (kubectl looks for fieldValidation)."""
    paths = {}
    prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
    for r in kinds.resources_in(group, version):
        gvk = {"group": group, "version": version, "kind": r.kind}
        type_name = schema.kind_type(r.api_version, r.kind)
        ref = {"$ref": ref_prefix + type_name} if type_name else {"type": "object"}
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        collection = {"post": _operation("post", f"create{r.kind}", gvk, ref, body=True)}
        if not r.stored:
            # Reviews are only created: they have no list, no items.
            paths[f"{prefix}{ns}/{r.plural}"] = collection
            continue
        paths[f"{prefix}{ns}/{r.plural}"] = {
            "get": _operation("list", f"list{r.kind}", gvk, ref), **collection}
        paths[f"{prefix}{ns}/{r.plural}/{{name}}"] = {
            "get": _operation("get", f"read{r.kind}", gvk, ref),
            "put": _operation("put", f"replace{r.kind}", gvk, ref, body=True),
            "patch": _operation("patch", f"patch{r.kind}", gvk, ref, body=True),
            "delete": _operation("delete", f"delete{r.kind}", gvk, ref)}
    return paths


@functools.cache
def v3_document(group, version):
    """The OpenAPI 3.0 document of one group/version, as bytes, and its hash."""
    ref_prefix = "#/components/schemas/"
    doc = {"openapi": "3.0.0",
           "info": {"title": "Steersman", "version": f"{group or 'core'}/{version}"},
           "paths": _paths(group, version, ref_prefix),
           "components": {"schemas": _schemas(ref_prefix)}}
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return body, hashlib.sha512(body).hexdigest()[:32].upper()


def v3_index():
    paths = {}
    for group, version in kinds.group_versions():
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        _, digest = v3_document(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


@functools.cache
def v2_document():
    ref_prefix = "#/definitions/"
    doc = {"swagger": "2.0", "info": {"title": "Steersman", "version": "v1.32.0"},
           "paths": {}, "definitions": _schemas(ref_prefix)}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
