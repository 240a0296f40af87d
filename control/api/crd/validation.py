"""Validate a CustomResourceDefinition as kube-apiserver does (apiextensions validation).

Names (plural, singular, kind, listKind, shortNames, categories), the CRD's name
being ``<plural>.<group>``, scope, versions (exactly one storage version, at least
one served, unique names), each version's structural schema (schemacheck.py),
subresources and printer columns. Returns (field, reason, message) errors.
"""

from control.api.crd import jsonpath, schemacheck
from control.objects import validation

SCOPES = ("Cluster", "Namespaced")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
COLUMN_FORMATS = ("int32", "int64", "float", "double", "byte", "date", "date-time", "password",
                  "")
#: Groups Kubernetes owns: a CRD there needs the api-approved.kubernetes.io annotation.
PROTECTED_SUFFIXES = (".k8s.io", ".kubernetes.io")
APPROVAL = "api-approved.kubernetes.io"


def _q(value):
    return schemacheck._q(value)


def _invalid(path, value, message):
    return (path, "FieldValueInvalid", f"Invalid value: {_q(value)}: {message}")


def _required(path, message=""):
    return (path, "FieldValueRequired", "Required value" + (f": {message}" if message else ""))


def validate(crd, builtin_group=lambda group: False):
    """Return the errors of a CRD; ``builtin_group(group)`` says a group is served already."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    errors = []
    group = spec.get("group")
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    errors += _check_group(group, crd.get("metadata") or {}, builtin_group)
    errors += _check_names(names)
    plural = names.get("plural")
    name = (crd.get("metadata") or {}).get("name")
    if plural and group and name != f"{plural}.{group}":
        errors.append(_invalid("metadata.name", name,
                               'must be spec.names.plural+"."+spec.group'))
    scope = spec.get("scope")
    if not scope:
        errors.append(_required("spec.scope"))
    elif scope not in SCOPES:
        errors.append(("spec.scope", "FieldValueNotSupported", f"Unsupported value: {_q(scope)}: "
                       "supported values: " + ", ".join(_q(s) for s in SCOPES)))
    errors += _check_versions(spec.get("versions"))
    conversion = spec.get("conversion") or {}
    strategy = conversion.get("strategy", "None") if isinstance(conversion, dict) else None
    if strategy != "None":
        errors.append(("spec.conversion.strategy", "FieldValueNotSupported",
                       f"Unsupported value: {_q(strategy)}: supported values: \"None\" "
                       "(conversion webhooks are not served by Steersman)"))
    return errors


def _check_group(group, metadata, builtin_group):
    if not group:
        return [_required("spec.group")]
    if not isinstance(group, str) or validation.validate_dns1123_subdomain(group):
        return [_invalid("spec.group", group, "a DNS-1123 subdomain must consist of lower case "
                         "alphanumeric characters, '-' or '.'")]
    if "." not in group:
        return [_invalid("spec.group", group, "should be a domain with at least one dot")]
    if builtin_group(group):
        return [_invalid("spec.group", group, "is served by the API server itself; pick a "
                         "group of your own domain")]
    annotations = metadata.get("annotations") or {}
    if group.endswith(PROTECTED_SUFFIXES) and not annotations.get(APPROVAL):
        return [_required(f"metadata.annotations[{APPROVAL}]",
                          "protected groups must have approval annotation "
                          f'"{APPROVAL}", see https://github.com/kubernetes/enhancements/pull/1111')]
    return []


def _label_errors(path, value):
    if not isinstance(value, str):
        return [_invalid(path, value, "must be a string")]
    return [_invalid(path, value, message) for message in validation.validate_dns1035_label(value)]


def _check_names(names):
    errors = []
    for field in ("plural", "kind"):
        if not names.get(field):
            errors.append(_required(f"spec.names.{field}"))
    if names.get("plural"):
        errors += _label_errors("spec.names.plural", names["plural"])
    if names.get("singular"):
        errors += _label_errors("spec.names.singular", names["singular"])
    for field in ("kind", "listKind"):
        value = names.get(field)
        if value:
            errors += [_invalid(f"spec.names.{field}", value, message) for message in
                       validation.validate_dns1035_label(str(value).lower())]
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errors.append(_invalid("spec.names.listKind", names["listKind"],
                               "kind and listKind may not be the same"))
    for field in ("shortNames", "categories"):
        values = names.get(field) or []
        if not isinstance(values, list):
            errors.append(_invalid(f"spec.names.{field}", values, "must be a list"))
            continue
        for index, value in enumerate(values):
            errors += _label_errors(f"spec.names.{field}[{index}]", value)
    return errors


def _check_versions(versions):
    if not versions or not isinstance(versions, list):
        return [_required("spec.versions", "must have exactly one version marked as storage "
                          "version")]
    errors, seen = [], set()
    storage = served = 0
    for index, version in enumerate(versions):
        path = f"spec.versions[{index}]"
        if not isinstance(version, dict):
            errors.append(_invalid(path, version, "must be an object"))
            continue
        name = version.get("name")
        if not name:
            errors.append(_required(f"{path}.name"))
        else:
            errors += _label_errors(f"{path}.name", name)
            if name in seen:
                errors.append((f"{path}.name", "FieldValueDuplicate", f"Duplicate value: {_q(name)}"))
            seen.add(name)
        storage += bool(version.get("storage"))
        served += bool(version.get("served"))
        schema = (version.get("schema") or {}).get("openAPIV3Schema") \
            if isinstance(version.get("schema"), dict) else None
        if schema is None:
            errors.append(_required(f"{path}.schema.openAPIV3Schema", "schemas are required"))
        else:
            errors += schemacheck.check(schema, f"{path}.schema.openAPIV3Schema")
        errors += _check_subresources(version.get("subresources"), f"{path}.subresources")
        errors += _check_columns(version.get("additionalPrinterColumns"),
                                 f"{path}.additionalPrinterColumns")
    if storage != 1:
        errors.append(_invalid("spec.versions", [v.get("name") for v in versions
                                                 if isinstance(v, dict)],
                               "must have exactly one version marked as storage version"))
    if not served:
        errors.append(_invalid("spec.versions", [v.get("name") for v in versions
                                                 if isinstance(v, dict)],
                               "must have at least one version marked as served"))
    return errors


def _check_subresources(subresources, path):
    if subresources is None:
        return []
    if not isinstance(subresources, dict):
        return [_invalid(path, subresources, "must be an object")]
    errors = []
    unknown = set(subresources) - {"status", "scale"}
    errors += [(f"{path}.{name}", "FieldValueNotSupported",
                f'Unsupported value: {_q(name)}: supported values: "status", "scale"')
               for name in sorted(unknown)]
    scale = subresources.get("scale")
    if scale is not None:
        if not isinstance(scale, dict):
            return errors + [_invalid(f"{path}.scale", scale, "must be an object")]
        for field, under in (("specReplicasPath", ".spec."), ("statusReplicasPath", ".status."),
                             ("labelSelectorPath", None)):
            value = scale.get(field)
            if value is None:
                if field != "labelSelectorPath":
                    errors.append(_required(f"{path}.scale.{field}"))
                continue
            if not isinstance(value, str) or not value.startswith(under or ".") or \
                    not jsonpath.is_simple(value):
                where = f"under {under.rstrip('.')}" if under else "under .spec or .status"
                errors.append(_invalid(f"{path}.scale.{field}", value,
                                       f"should be a json path {where}"))
    return errors


def _check_columns(columns, path):
    if columns is None:
        return []
    if not isinstance(columns, list):
        return [_invalid(path, columns, "must be a list")]
    errors = []
    for index, column in enumerate(columns):
        where = f"{path}[{index}]"
        if not isinstance(column, dict):
            errors.append(_invalid(where, column, "must be an object"))
            continue
        if not column.get("name"):
            errors.append(_required(f"{where}.name"))
        kind = column.get("type")
        if not kind:
            errors.append(_required(f"{where}.type"))
        elif kind not in COLUMN_TYPES:
            errors.append((f"{where}.type", "FieldValueNotSupported",
                           f"Unsupported value: {_q(kind)}: supported values: " +
                           ", ".join(_q(t) for t in COLUMN_TYPES)))
        if column.get("format", "") not in COLUMN_FORMATS:
            errors.append((f"{where}.format", "FieldValueNotSupported",
                           f"Unsupported value: {_q(column.get('format'))}: supported values: "
                           + ", ".join(_q(f) for f in COLUMN_FORMATS if f)))
        path_text = column.get("jsonPath")
        if not path_text:
            errors.append(_required(f"{where}.jsonPath"))
        else:
            problem = jsonpath.problem(path_text)
            if problem:
                errors.append(_invalid(f"{where}.jsonPath", path_text, problem))
        priority = column.get("priority", 0)
        if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
            errors.append(_invalid(f"{where}.priority", priority, "must be a non-negative "
                                   "integer"))
    return errors


def immutable_errors(old, new):
    """Return the errors of changing what a CRD may not change (scope, group)."""
    errors = []
    for field in ("scope", "group"):
        before, after = old["spec"].get(field), (new.get("spec") or {}).get(field)
        if before != after:
            errors.append(_invalid(f"spec.{field}", after, "field is immutable"))
    return errors
