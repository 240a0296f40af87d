"""Check a request body against its resource: its kind, and the fields Kubernetes knows.

kube-apiserver decodes a body into its Go type, so an unknown field is dropped
(with a warning, or refused under ``fieldValidation=Strict``) and a field of the
wrong type is a 400. The schema (control/objects/schema.py) stands in for the types.
"""

import copy
import re

from control import errors
from control.objects import schema, validation

#: kube-apiserver's default when the client does not say (fieldValidation=...).
DEFAULT_FIELD_VALIDATION = "Warn"
FIELD_VALIDATIONS = ("Strict", "Warn", "Ignore")
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")


def check_kind(resource, body):
    """Refuse (400) a body whose kind or apiVersion is not the resource's."""
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if kind and kind != resource.kind:
        raise errors.BadRequest(f"the kind of the object ({kind}) does not match the "
                                f"resource of the request ({resource.plural}): send it to "
                                "its own collection")
    if api_version and api_version != resource.api_version:
        raise errors.BadRequest(f"the apiVersion of the object ({api_version}) does not "
                                f"match the request ({resource.api_version})")


def check_fields(resource, body, mode, warnings):
    """Refuse (Strict) or drop and report (Warn, Ignore) fields Kubernetes does not know.

    Returns the body without the unknown fields; ``warnings`` (a list, or None)
    receives one line per dropped field under Warn.
    """
    mode = mode or DEFAULT_FIELD_VALIDATION
    if mode not in FIELD_VALIDATIONS:
        raise errors.BadRequest(f"fieldValidation={mode!r} is not one of Strict, Warn, Ignore")
    type_name = schema.kind_type(resource.api_version, resource.kind)
    if type_name is None:
        return body
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
    return without_paths(body, unknown)


def without_paths(obj, paths):
    """Return a copy of ``obj`` without the fields at ``paths`` (spec.x[0].y form)."""
    obj = copy.deepcopy(obj)
    for path in paths:
        tokens = [name if name else (int(index) if index.isdigit() else index)
                  for name, index in _PATH_TOKEN.findall(path)]
        node = obj
        for token in tokens[:-1]:
            try:
                node = node[token]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node.pop(tokens[-1], None)
    return obj
