"""Check a request body against its resource: its kind, and the fields Kubernetes knows.

kube-apiserver decodes a body into its Go type, so an unknown field is dropped
(with a warning, or refused under ``fieldValidation=Strict``) and a field of the
wrong type is a 400. The schema (control/objects/schema.py) stands in for the types.
"""

import copy
import json

from control import errors
from control.api.crd import fields as custom_fields
from control.objects import schema, validation

#: kube-apiserver's default when the client does not say (fieldValidation=...).
DEFAULT_FIELD_VALIDATION = "Warn"
FIELD_VALIDATIONS = ("Strict", "Warn", "Ignore")
#: The largest object accepted: the store's 1 MiB value cap, less room for what the
#: server adds (metadata, defaults, status) after this check.
MAX_OBJECT_BYTES = 1024 * 1024 - 16 * 1024


def check_kind(resource, body):
    """Refuse (400) a body whose kind, apiVersion or metadata is not the resource's."""
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind and kind != resource.kind:
        raise errors.BadRequest(f"the kind of the object ({kind}) does not match the "
                                f"resource of the request ({resource.plural}): send it to "
                                "its own collection")
    if api_version and api_version != resource.api_version:
        raise errors.BadRequest(f"the apiVersion of the object ({api_version}) does not "
                                f"match the request ({resource.api_version})")
    if not isinstance(body.get("metadata", {}), dict):
        raise errors.BadRequest(f"{resource.kind}.metadata must be an object, not "
                                f"{_json_type(body['metadata'])}")
    check_size(resource, body)


def check_size(resource, body):
    """Refuse (413) an object too large for the store to keep (its 1 MiB value cap)."""
    size = len(json.dumps(body, separators=(",", ":")).encode())
    if size > MAX_OBJECT_BYTES:
        name = body.get("metadata", {}).get("name") or ""
        raise errors.RequestEntityTooLarge(
            f"the {resource.kind} {name!r} is {size} bytes once encoded; an object may be "
            f"at most {MAX_OBJECT_BYTES} bytes (the store keeps values of up to 1 MiB): keep "
            "large data outside the object", name=name or None, kind=resource.plural)


def _json_type(value):
    return {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
            list: "array"}.get(type(value), type(value).__name__)


def check_fields(resource, body, mode, warnings):
    """Refuse (Strict) or drop and report (Warn, Ignore) fields Kubernetes does not know.

    Returns the body without the unknown fields; ``warnings`` (a list, or None)
    receives one line per dropped field under Warn.
    """
    mode = mode or DEFAULT_FIELD_VALIDATION
    if mode not in FIELD_VALIDATIONS:
        raise errors.BadRequest(f"fieldValidation={mode!r} is not one of Strict, Warn, Ignore")
    if resource.custom is not None:     # a CRD's structural schema prunes (control/api/crd/)
        return custom_fields.check(resource, body, mode, warnings)
    type_name = schema.kind_type(resource.api_version, resource.kind)
    if type_name is None:
        return body
    # As Kubernetes' decoder: a null field is unset (never stored to trip a controller).
    body = validation.drop_nulls(body, type_name)
    unknown, wrong_types = validation.check_fields(body, type_name)
    if wrong_types:
        raise errors.BadRequest(f"{resource.kind} in version \"{resource.version}\" cannot be "
                                "handled: " + "; ".join(f"{path}: {message}"
                                                        for path, message in wrong_types))
    if not unknown:
        return body
    if mode == "Strict":
        raise errors.BadRequest("strict decoding error: " + ", ".join(
            f'unknown field "{path}"' for path in unknown))
    if mode == "Warn" and warnings is not None:
        warnings.extend(f'unknown field "{path}"' for path in unknown)
    return without_unknown(body, type_name)


def without_unknown(value, type_name):
    """Return a copy of ``value`` holding only the fields its schema type knows.

    Walks the value by the schema, as the checks do, instead of re-reading their
    paths: a field name may hold ".", "[" or nothing at all.
    """
    if value is None:
        return None
    if schema.is_list(type_name):
        if not isinstance(value, list):
            return copy.deepcopy(value)
        return [without_unknown(item, schema.element_type(type_name)) for item in value]
    if schema.is_map(type_name):
        if not isinstance(value, dict):
            return copy.deepcopy(value)
        return {key: without_unknown(item, schema.element_type(type_name))
                for key, item in value.items()}
    if schema.is_scalar(type_name) or not isinstance(value, dict):
        return copy.deepcopy(value)     # free-form objects included: never looked into
    known = schema.fields(type_name)
    return {key: without_unknown(item, known[key]) for key, item in value.items()
            if key in known}
