"""Check decoded JSON objects against the Kubernetes schema, and name rules.

Paths are written the way Kubernetes writes field paths: ``spec.replicas``,
``spec.containers[0].image``, ``metadata.labels[app]``. Any field may be null
(Kubernetes reads null as unset). Free-form ``object`` fields are not looked into.
"""

from __future__ import annotations

import binascii
import re
from datetime import datetime

from control.objects import schema

# -- schema checks -----------------------------------------------------------


def find_unknown_fields(obj, type_name: str) -> list[str]:
    """Return the path of every field in obj that the type does not know."""
    unknown: list[str] = []
    _walk(obj, type_name, "", unknown, None)
    return unknown


def check_types(obj, type_name: str) -> list[tuple[str, str]]:
    """Return (path, message) for every value in obj of the wrong JSON type."""
    errors: list[tuple[str, str]] = []
    _walk(obj, type_name, "", None, errors)
    return errors


def check_fields(obj, type_name: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Return (unknown field paths, type errors) in one pass over obj."""
    unknown: list[str] = []
    errors: list[tuple[str, str]] = []
    _walk(obj, type_name, "", unknown, errors)
    return unknown, errors


def _json_type(value) -> str:
    """Return the JSON name of a decoded value's type (for messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# Kubernetes' own message when a quantity does not parse.
QUANTITY_ERROR = (
    "quantities must match the regular expression "
    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
# The suffixes resource.Quantity accepts: binary, decimal SI, or an exponent.
_QUANTITY = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)


def _scalar_error(value, type_: str) -> str | None:
    """Return why a non-null value does not fit a scalar type, or None."""
    kind = _json_type(value)
    # bool is an int subclass in Python but never a JSON number.
    is_int = kind == "integer"
    if type_ == "object":
        return None
    if type_ == "string":
        ok = kind == "string"
    elif type_ == "integer":
        ok = is_int
    elif type_ == "number":
        ok = is_int or kind == "number"
    elif type_ == "boolean":
        ok = kind == "boolean"
    elif type_ == "int-or-string":
        ok = is_int or kind == "string"
    elif type_ == "quantity":
        if kind == "string":
            return None if _QUANTITY.fullmatch(value) else QUANTITY_ERROR
        ok = is_int or kind == "number"
    elif type_ in ("date-time", "date"):
        if kind != "string":
            ok = False
        else:
            return None if _parses_as_time(value, type_) else f"must be an RFC 3339 {type_}"
    elif type_ == "byte":
        if kind != "string":
            ok = False
        else:
            return None if _is_base64(value) else "must be base64-encoded data"
    else:
        raise ValueError(f"unknown scalar type {type_!r}")
    if ok:
        return None
    return f"must be of type {type_}, got {kind}"


#: Integer fields Go holds as int64 (by field name); every other integer is an int32.
INT64_FIELDS = frozenset({
    "activeDeadlineSeconds", "terminationGracePeriodSeconds", "deletionGracePeriodSeconds",
    "generation", "observedGeneration", "runAsUser", "runAsGroup", "fsGroup",
    "supplementalGroups", "tolerationSeconds", "startingDeadlineSeconds", "expirationSeconds",
    "gracePeriodSeconds", "remainingItemCount", "sizeBytes", "revision",
    "seconds", "uid", "gid",    # lifecycle sleep; a container status' user (LinuxContainerUser)
})
_INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}


def _field_name(path: str) -> str:
    """Return the field a path ends in: "spec.replicas" and "x.groups[2]" -> replicas, groups."""
    return re.sub(r"\[[^\]]*\]$", "", path).rsplit(".", 1)[-1]


def _int_range_error(value: int, path: str) -> str | None:
    """Refuse an integer its Go field cannot hold, as Kubernetes' JSON decoder does."""
    width = "int64" if _field_name(path) in INT64_FIELDS else "int32"
    low, high = _INT_RANGES[width]
    if low <= value <= high:
        return None
    return f"cannot unmarshal number {value} into a field of type {width}"


def drop_nulls(value, type_: str):
    """Return value as Kubernetes' decoder reads it: a null field is unset.

    A null list item or map value becomes its type's zero value ({} for an
    object, "" for a string, 0, false), as decoding into a Go struct leaves it;
    free-form fields keep their nulls. Changes ``value`` in place.
    """
    if isinstance(value, list) and schema.is_list(type_):
        element = schema.element_type(type_)
        for index, item in enumerate(value):
            value[index] = _zero(element) if item is None else drop_nulls(item, element)
        return value
    if isinstance(value, dict) and schema.is_map(type_):
        element = schema.element_type(type_)
        for key, item in value.items():
            value[key] = _zero(element) if item is None else drop_nulls(item, element)
        return value
    if not isinstance(value, dict) or schema.is_scalar(type_) or schema.is_list(type_) \
            or schema.is_map(type_):
        return value
    fields = schema.fields(type_)
    for name in [name for name, item in value.items() if item is None and name in fields]:
        del value[name]
    for name, item in value.items():
        if name in fields:
            drop_nulls(item, fields[name])
    return value


def _zero(type_: str):
    """Return the JSON form of a Go zero value of a field type (None for free-form ones)."""
    if schema.is_list(type_) or schema.is_map(type_) or type_ == "object":
        return None
    zeros = {"string": "", "integer": 0, "number": 0, "boolean": False, "int-or-string": 0,
             "quantity": "0", "byte": "", "date-time": None, "date": None}
    if type_ in zeros:
        return zeros[type_]
    return {}


def _parses_as_time(value: str, type_: str) -> bool:
    if type_ == "date":
        return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None
    # Go's time.RFC3339 layout needs the 'T' and an offset (fromisoformat needs
    # neither); fromisoformat then checks the numbers.
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})", value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_base64(value: str) -> bool:
    # Go's decoder (what Kubernetes uses) skips line breaks and nothing else.
    data = value.replace("\r", "").replace("\n", "")
    try:
        binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        return False
    return True


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk(value, type_: str, path: str, unknown, errors) -> None:
    """Check value against type_, appending to unknown and errors (either may be None)."""
    if value is None:
        return
    if schema.is_list(type_):
        if not isinstance(value, list):
            if errors is not None:
                errors.append((path, f"must be of type array, got {_json_type(value)}"))
            return
        element = schema.element_type(type_)
        for index, item in enumerate(value):
            _walk(item, element, f"{path}[{index}]", unknown, errors)
        return
    if schema.is_map(type_):
        if not isinstance(value, dict):
            if errors is not None:
                errors.append((path, f"must be of type object, got {_json_type(value)}"))
            return
        element = schema.element_type(type_)
        for key, item in value.items():
            _walk(item, element, f"{path}[{key}]", unknown, errors)
        return
    if schema.is_scalar(type_):
        if errors is not None:
            message = _scalar_error(value, type_)
            if message is None and type_ == "integer":
                message = _int_range_error(value, path)
            if message:
                errors.append((path, message))
        return
    if not isinstance(value, dict):
        if errors is not None:
            errors.append((path, f"must be of type object, got {_json_type(value)}"))
        return
    fields = schema.fields(type_)
    for name, item in value.items():
        field_type = fields.get(name)
        if field_type is None:
            if unknown is not None:
                unknown.append(_child(path, name))
            continue
        _walk(item, field_type, _child(path, name), unknown, errors)


# -- names -------------------------------------------------------------------

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
DNS1035_LABEL_MAX_LENGTH = 63

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
    "or '-', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
    "start with an alphabetic character, and end with an alphanumeric character"
)

# Go's regexp with ^...$ equals Python's fullmatch (no trailing-newline leniency).
_DNS1123_LABEL = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = re.compile(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = re.compile(DNS1035_LABEL_FMT)


def max_len_error(length: int) -> str:
    """Return Kubernetes' message for a value longer than length."""
    return f"must be no more than {length} characters"


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """Return Kubernetes' message for a value that does not match fmt (as RegexError words it)."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    # Go builds "'a', " then " or 'b', ": hence the double space Kubernetes prints.
    parts = "".join((" or " if i else "") + f"'{e}', " for i, e in enumerate(examples))
    return f"{message} (e.g. {parts}regex used for validation is '{fmt}')"


def validate_dns1123_subdomain(name: str) -> list[str]:
    """Return the errors of name as an RFC 1123 subdomain (most object names); [] if valid."""
    errs = []
    if len(name) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def validate_dns1123_label(name: str) -> list[str]:
    """Return the errors of name as an RFC 1123 label (namespace names); [] if valid."""
    errs = []
    if len(name) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL.fullmatch(name):
        if _DNS1123_SUBDOMAIN.fullmatch(name):
            # A valid subdomain but not a label: the length is checked, so it is the dots.
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def validate_dns1035_label(name: str) -> list[str]:
    """Return the errors of name as an RFC 1035 label (service names); [] if valid."""
    errs = []
    if len(name) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL.fullmatch(name):
        errs.append(regex_error(_DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs
