"""Component schemas built from the compact schema (control/objects/k8s_schema.json).

Names are the official client's model names (``V1Pod``); each kind's schema
carries ``x-kubernetes-group-version-kind`` (kubectl explain finds kinds by it).
Integer-or-string fields and quantities have no ``type``: the server keeps what
was sent, a number or a string. Custom resources' schemas come from openapi.py's
sources and are completed here (metadata, List schema).
"""

from control.objects import patch, schema

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

#: Types kube-apiserver documents that the compact schema does not hold.
EXTRA = {
    "V1Patch": {"type": "object", "description": "The body of a PATCH: a JSON patch (a "
                "list of operations), a merge patch, a strategic merge patch or an apply "
                "configuration, as the request's Content-Type says."},
}


def _property(field_type, ref_prefix):
    if field_type.startswith("[]"):
        return {"type": "array", "items": _property(field_type[2:], ref_prefix)}
    if field_type.startswith("{}"):
        return {"type": "object", "additionalProperties": _property(field_type[2:], ref_prefix)}
    if field_type in _FORMATS:
        return dict(_FORMATS[field_type])
    return {"$ref": ref_prefix + field_type}


def _patch_strategy(field, field_type):
    """The strategic-merge extensions of a list field, as the server merges it.

    kubectl apply computes its patch from these once a kind's PATCH accepts
    application/strategic-merge-patch+json: without them it would replace lists
    (and report every apply as a change).
    """
    if not field_type.startswith("[]"):
        return {}
    item = field_type[2:]
    if field in patch.MERGED_PRIMITIVE_LISTS and item == "string":
        return {"x-kubernetes-patch-strategy": "merge"}
    key = patch.merge_key(item) if not schema.is_scalar(item) else None
    if key is None:
        return {}
    return {"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge"}


def _gvk_by_type():
    found = {}
    for key, type_name in schema.kinds().items():
        group_version, _, kind = key.rpartition("/")
        group, _, version = group_version.rpartition("/")
        found.setdefault(type_name, []).append({"group": group, "version": version, "kind": kind})
    return found


def builtin(ref_prefix):
    """Return {type name: schema} of every type in the compact schema, plus EXTRA."""
    gvks = _gvk_by_type()
    out = {}
    for name in schema.type_names():
        properties = {}
        for field, field_type in schema.fields(name).items():
            prop = {**_property(field_type, ref_prefix), **_patch_strategy(field, field_type)}
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
    out.update({name: dict(entry) for name, entry in EXTRA.items()})
    return out


def custom_names(resource):
    """``com.example.stable.v1.CronTab`` and its List: kube-apiserver's names for a CR."""
    reversed_group = ".".join(reversed(resource.group.split(".")))
    base = f"{reversed_group}.{resource.version}.{resource.kind}"
    return base, base + "List"


def custom(resource, open_api_schema, ref_prefix):
    """Return {name: schema} of a custom resource and its List, from a CRD's schema."""
    object_name, list_name = custom_names(resource)
    gvk = {"group": resource.group, "version": resource.version, "kind": resource.kind}
    body = dict(open_api_schema or {"type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True})
    properties = dict(body.get("properties") or {})
    properties["apiVersion"] = {"type": "string"}
    properties["kind"] = {"type": "string"}
    properties["metadata"] = {"$ref": ref_prefix + "V1ObjectMeta"}
    body.update({"type": "object", "properties": properties,
                 "x-kubernetes-group-version-kind": [gvk]})
    listed = {"type": "object", "required": ["items"],
              "description": f"A list of {resource.kind} objects.",
              "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                             "metadata": {"$ref": ref_prefix + "V1ListMeta"},
                             "items": {"type": "array",
                                       "items": {"$ref": ref_prefix + object_name}}},
              "x-kubernetes-group-version-kind": [{**gvk, "kind": resource.list_kind}]}
    return {object_name: body, list_name: listed}
