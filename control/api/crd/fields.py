"""Unknown fields of a custom object: pruned, and warned about or refused as asked.

kube-apiserver drops every field a CRD's structural schema does not specify
(unless ``x-kubernetes-preserve-unknown-fields``), and checks ``metadata`` as an
ObjectMeta; ``fieldValidation=Strict`` turns the dropped fields into a 400 and
``Warn`` (the default) into warnings.
"""

import copy

from control import errors
from control.api import fields as builtin_fields
from control.objects import schema, structural, validation

ALWAYS_KEPT = ("apiVersion", "kind", "metadata")


def _object_meta_type():
    config_map = schema.kind_type("v1", "ConfigMap")
    return schema.fields(config_map)["metadata"]


def check(resource, body, mode, warnings):
    """Return ``body`` pruned to its schema; refuse (Strict) or report (Warn) what went."""
    body = copy.deepcopy(body)
    node = resource.custom.schema
    unknown = []
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        meta_type = _object_meta_type()
        meta_unknown, wrong_types = validation.check_fields(metadata, meta_type)
        if wrong_types:
            raise errors.BadRequest(f"{resource.kind} in version \"{resource.version}\" cannot "
                                    "be handled: " + "; ".join(f"metadata.{path}: {message}"
                                                               for path, message in wrong_types))
        if meta_unknown:
            body["metadata"] = builtin_fields.without_unknown(metadata, meta_type)
            unknown += [f"metadata.{path}" for path in meta_unknown]
    kept = {key: body[key] for key in ALWAYS_KEPT if key in body}
    rest = {key: value for key, value in body.items() if key not in ALWAYS_KEPT}
    unknown += structural.prune(rest, {**node, "properties": {
        k: v for k, v in (node.get("properties") or {}).items() if k not in ALWAYS_KEPT}})
    if unknown and mode == "Strict":
        raise errors.BadRequest("strict decoding error: " + ", ".join(
            f'unknown field "{path}"' for path in unknown))
    if unknown and mode in (None, "Warn") and warnings is not None:
        warnings.extend(f'unknown field "{path}"' for path in unknown)
    return {**kept, **rest}
