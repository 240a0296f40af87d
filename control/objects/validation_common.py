"""Field errors, number ranges and ObjectMeta rules shared by every kind's validation.

As k8s.io/apimachinery's field package and ValidateObjectMeta word them (1.32):
each error is the ``(field path, reason, message)`` triple ``errors.Invalid``
takes, so one 422 Status carries every cause with Kubernetes' path and text.
"""

import json

from control.objects import validation
from control.objects.podvalidation import duplicate, forbidden, invalid, not_found, required
from control.objects.selectors import _key_errors, _value_errors

__all__ = ["duplicate", "forbidden", "invalid", "not_found", "required", "not_supported",
           "too_long", "go_value", "non_negative", "positive", "in_range", "enum",
           "label_errors", "annotation_errors", "object_meta_errors", "object_meta_update_errors",
           "immutable", "name_messages", "INT32_MAX"]

INT32_MAX = 2**31 - 1
#: metav1 validation.TotalAnnotationSizeLimitB: keys and values together, in bytes.
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
IMMUTABLE = "field is immutable"


def not_supported(path, value, supported):
    """Return the error triple of field.NotSupported (supported values in Kubernetes' order)."""
    choices = ", ".join(f'"{s}"' for s in supported)
    return (path, "FieldValueNotSupported",
            f"Unsupported value: {json.dumps(value)}: supported values: {choices}")


def too_long(path, limit):
    """Return the error triple of field.TooLong as 1.32 words it for byte limits."""
    return (path, "FieldValueTooLong", f"Too long: must have at most {limit} bytes")


def go_value(value):
    """Render a map or list as Go's %#v prints a map[string]string or []string (None: nil map)."""
    if value is None:
        return "map[string]string(nil)"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{inner}}}"
    if isinstance(value, list):
        return "[]string{" + ", ".join(json.dumps(v) for v in value) + "}"
    return value


def invalid_raw(path, shown, message):
    """Return field.Invalid for a value already rendered (a map, a struct)."""
    return (path, "FieldValueInvalid", f"Invalid value: {shown}: {message}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def non_negative(value, path):
    """ValidateNonnegativeField: [] if value is unset or >= 0."""
    if _is_int(value) and value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def positive(value, path):
    """ValidatePositiveField-like check: [] if value is unset or > 0."""
    if _is_int(value) and value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def in_range(value, low, high, path):
    """InclusiveRangeError: [] if value is unset or low <= value <= high."""
    if _is_int(value) and not low <= value <= high:
        return [invalid(path, value, f"must be between {low} and {high}, inclusive")]
    return []


def enum(value, supported, path, required_if_unset=False):
    """NotSupported unless value is one of supported; Required when unset and needed."""
    if value in (None, ""):
        return [required(path, "")] if required_if_unset else []
    if value not in supported:
        return [not_supported(path, value, supported)]
    return []


def immutable(new, old, path, shown=None):
    """ValidateImmutableField: Invalid 'field is immutable' when new differs from old."""
    if new == old:
        return []
    if shown is not None:
        return [invalid_raw(path, shown, IMMUTABLE)]
    return [invalid(path, new, IMMUTABLE)]


# -- labels and annotations ---------------------------------------------------------------


def label_errors(labels, path):
    """ValidateLabels: keys are qualified names, values label values (both at the map's path)."""
    if not isinstance(labels, dict):
        return []
    errs = []
    for key, value in labels.items():
        errs += [invalid(path, key, m) for m in _key_errors(key)]
        errs += [invalid(path, value, m) for m in _value_errors(value)]
    return errs


def annotation_errors(annotations, path):
    """ValidateAnnotations: qualified-name keys (lower-cased), at most 256 KiB in all."""
    if not isinstance(annotations, dict):
        return []
    errs, total = [], 0
    for key, value in annotations.items():
        errs += [invalid(path, key, m) for m in _key_errors(str(key).lower())]
        total += len(str(key).encode()) + len(str(value or "").encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


# -- ObjectMeta -----------------------------------------------------------------------


def name_messages(kind, name):
    """Return why ``name`` is not a valid name of ``kind`` (Services: DNS-1035 labels)."""
    if kind == "Service":
        return validation.validate_dns1035_label(name)
    if kind == "Namespace":
        return validation.validate_dns1123_label(name)
    return validation.validate_dns1123_subdomain(name)


def _generate_name_errors(prefix, kind, path):
    """Validate generateName as the name functions do with prefix=true (a '-' may end it)."""
    if not isinstance(prefix, str) or not prefix:
        return []
    trimmed = prefix[:-1] if prefix.endswith("-") else prefix
    return [invalid(path, prefix, m) for m in name_messages(kind, trimmed)] if trimmed else []


def object_meta_errors(obj, kind, namespaced, path="metadata"):
    """ValidateObjectMeta without the name (each strategy checks names its own way)."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return []
    errs = []
    namespace = metadata.get("namespace")
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace", ""))
        else:
            errs += [invalid(f"{path}.namespace", namespace, m)
                     for m in validation.validate_dns1123_label(namespace)]
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs += _generate_name_errors(metadata.get("generateName"), kind, f"{path}.generateName")
    errs += non_negative(metadata.get("generation"), f"{path}.generation")
    errs += label_errors(metadata.get("labels"), f"{path}.labels")
    errs += annotation_errors(metadata.get("annotations"), f"{path}.annotations")
    errs += _finalizer_errors(metadata.get("finalizers"), f"{path}.finalizers")
    errs += _owner_reference_errors(metadata.get("ownerReferences"), f"{path}.ownerReferences")
    return errs


def _finalizer_errors(finalizers, path):
    """ValidateFinalizers: qualified names (at the list's path), not orphan and foreground."""
    errs = []
    for name in finalizers or ():
        if isinstance(name, str):
            errs += [invalid(path, name, m) for m in _key_errors(name)]
    if "orphan" in (finalizers or ()) and "foregroundDeletion" in (finalizers or ()):
        errs.append(invalid_raw(path, go_value(list(finalizers)),
                                "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


def _owner_reference_errors(refs, path):
    errs = []
    for index, ref in enumerate(refs or ()):
        if not isinstance(ref, dict):
            continue
        at = f"{path}[{index}]"
        api_version = str(ref.get("apiVersion") or "")
        if not api_version.rsplit("/", 1)[-1]:
            errs.append(invalid(f"{at}.apiVersion", api_version, "version must not be empty"))
        for field in ("kind", "name", "uid"):
            if not ref.get(field):
                errs.append(invalid(f"{at}.{field}", "", f"{field} must not be empty"))
    return errs


def object_meta_update_errors(new, old, path="metadata"):
    """ValidateObjectMetaUpdate: name, namespace, uid, creationTimestamp never change."""
    new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
    errs = []
    for field in ("name", "namespace", "uid", "creationTimestamp"):
        if field in old_meta:
            errs += immutable(new_meta.get(field), old_meta.get(field), f"{path}.{field}")
    return errs
