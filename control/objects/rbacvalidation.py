"""Validate RBAC objects as Kubernetes' rbac validation does: rules, roleRefs, subjects.

Each function returns a list of (field path, reason, message), the form
``errors.Invalid`` takes, empty when the object is valid.
"""

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_KINDS = ("Role", "ClusterRole")
SUBJECT_KINDS = ("User", "Group", "ServiceAccount")


def name_errors(name):
    """Return the errors of an RBAC object's name: any path segment (``system:node`` is one)."""
    if not name:
        return [("metadata.name", "FieldValueRequired",
                 "Required value: name or generateName is required")]
    if name in (".", ".."):
        return [("metadata.name", "FieldValueInvalid",
                 f"Invalid value: {name!r}: may not be '{name}'")]
    bad = [c for c in "/%" if c in name]
    return [("metadata.name", "FieldValueInvalid",
             f"Invalid value: {name!r}: may not contain '{c}'") for c in bad]


def _required(path):
    return (path, "FieldValueRequired", "Required value")


def _not_supported(path, value, supported):
    quoted = ", ".join(f'"{s}"' for s in supported)
    return (path, "FieldValueNotSupported",
            f'Unsupported value: "{value}": supported values: {quoted}')


def validate_rules(rules, cluster_scoped, path="rules"):
    """Return the errors of a role's rules."""
    problems = []
    for index, rule in enumerate(rules or ()):
        at = f"{path}[{index}]"
        if not isinstance(rule, dict):
            problems.append((at, "FieldValueInvalid", "must be an object"))
            continue
        if not rule.get("verbs"):
            problems.append(_required(f"{at}.verbs"))
        if rule.get("nonResourceURLs"):
            if not cluster_scoped:
                problems.append((f"{at}.nonResourceURLs", "FieldValueInvalid",
                                 "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                problems.append((f"{at}.nonResourceURLs", "FieldValueInvalid",
                                 "rules cannot apply to both regular resources and "
                                 "non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            problems.append(_required(f"{at}.apiGroups"))
        if not rule.get("resources"):
            problems.append(_required(f"{at}.resources"))
    return problems


def validate_role(role, cluster_scoped):
    """Return the errors of a Role or ClusterRole."""
    problems = validate_rules(role.get("rules"), cluster_scoped)
    aggregation = role.get("aggregationRule")
    if aggregation is not None:
        if not cluster_scoped:
            problems.append(("aggregationRule", "FieldValueForbidden",
                             "Forbidden: only ClusterRoles may aggregate"))
        elif not aggregation.get("clusterRoleSelectors"):
            problems.append(_required("aggregationRule.clusterRoleSelectors"))
    return problems


def validate_binding(binding, cluster_scoped):
    """Return the errors of a RoleBinding or ClusterRoleBinding."""
    problems = []
    ref = binding.get("roleRef")
    if not isinstance(ref, dict):
        problems.append(_required("roleRef"))
    else:
        if ref.get("apiGroup") != RBAC_GROUP:
            problems.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""),
                                           [RBAC_GROUP]))
        allowed = ("ClusterRole",) if cluster_scoped else ROLE_KINDS
        if ref.get("kind") not in allowed:
            problems.append(_not_supported("roleRef.kind", ref.get("kind", ""), allowed))
        if not ref.get("name"):
            problems.append(_required("roleRef.name"))
    for index, subject in enumerate(binding.get("subjects") or ()):
        at = f"subjects[{index}]"
        kind = subject.get("kind")
        if kind not in SUBJECT_KINDS:
            problems.append(_not_supported(f"{at}.kind", kind or "", SUBJECT_KINDS))
            continue
        if not subject.get("name"):
            problems.append(_required(f"{at}.name"))
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                problems.append(_not_supported(f"{at}.apiGroup", subject["apiGroup"], [""]))
            if cluster_scoped and not subject.get("namespace"):
                problems.append(_required(f"{at}.namespace"))
        elif subject.get("apiGroup") != RBAC_GROUP:
            problems.append(_not_supported(f"{at}.apiGroup", subject.get("apiGroup", ""),
                                           [RBAC_GROUP]))
    return problems


def role_ref_changed(old, new):
    """Return the error of an update that changes a binding's roleRef (immutable), or None."""
    if (old.get("roleRef") or {}) != (new.get("roleRef") or {}):
        return ("roleRef", "FieldValueInvalid", "cannot change roleRef")
    return None
