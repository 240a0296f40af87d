"""Validate ResourceQuotas and LimitRanges as pkg/apis/core/validation (1.32) does.

ResourceQuota: spec.hard (and status.hard/used) name standard quota resources or
qualified ones, with non-negative values, whole numbers for object counts;
scopes are known, do not conflict and apply to the resources limited; the
scopeSelector's operators fit their scopes; scopes are immutable. LimitRange:
known types, once each; resource names per type; Pod items have no defaults;
min <= defaultRequest <= default <= max; maxLimitRequestRatio >= 1 and <= max/min.
Beyond Kubernetes, a map holds at most MAX_RESOURCES names (a hostile body of
thousands of resources is a 422). Returns error triples.
"""

import json

from control.objects.quota import SCOPES
from control.objects.quota_amounts import Amount
from control.objects.selectors import _key_errors
from control.objects.validation_common import (
    IMMUTABLE,
    duplicate,
    forbidden,
    invalid,
    invalid_raw,
    required,
)

#: The most resource names one map of a quota or limit range may hold (Steersman's bound).
MAX_RESOURCES = 256
QUOTA_RESOURCES = frozenset((
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.storage",
    "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage",
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
    "persistentvolumeclaims", "configmaps", "services.nodeports", "services.loadbalancers"))
INTEGER_RESOURCES = frozenset((
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers"))
POD_RESOURCES = frozenset(("pods", "cpu", "memory", "limits.cpu", "limits.memory",
                           "requests.cpu", "requests.memory"))
CONFLICTING_SCOPES = (("Terminating", "NotTerminating"), ("BestEffort", "NotBestEffort"))
EXISTS_ONLY_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
STANDARD_RESOURCES = frozenset((*CONTAINER_RESOURCES, "storage", "pods", *QUOTA_RESOURCES))


def _dict(value):
    return value if isinstance(value, dict) else {}


def _name_errors(name, path, standard, message):
    """validateResourceName: a standard name (or hugepages), else a qualified one."""
    if name in standard or name.startswith(("hugepages-", "requests.hugepages-")):
        return []
    if "/" not in name:
        return [invalid(path, name, message)]
    return [invalid(path, name, msg) for msg in _key_errors(name)]


def _amounts(section, path, standard, message, integers=frozenset()):
    """Return (errors, {name: Amount}) of one resource map."""
    section = _dict(section)
    if len(section) > MAX_RESOURCES:
        return [(path, "FieldValueTooMany", f"Too many: {len(section)}: must have at most "
                 f"{MAX_RESOURCES} items")], {}
    errs, values = [], {}
    for name, raw in sorted(section.items()):
        at = f"{path}[{name}]"
        errs += _name_errors(name, at, standard, message)
        try:
            values[name] = Amount.parse(raw)
        except ValueError as exc:
            errs.append(invalid(at, str(raw)[:64], str(exc)))
            continue
        if values[name].value < 0:
            errs.append(invalid(at, str(raw), "must be greater than or equal to 0"))
        elif name in integers and values[name].value.denominator != 1:
            errs.append(invalid(at, str(raw), "must be an integer"))
    return errs, values


def _quota_list(section, path):
    return _amounts(section, path, QUOTA_RESOURCES, "must be a standard resource for quota",
                    INTEGER_RESOURCES)[0]


def _go_scopes(scopes):
    return "[]core.ResourceQuotaScope{" + ", ".join(json.dumps(s) for s in scopes) + "}"


def _scope_errors(spec, hard):
    scopes = spec.get("scopes") or []
    if not isinstance(scopes, list):
        return []
    errs, shown = [], _go_scopes(scopes)
    for scope in scopes:
        if scope not in SCOPES:
            errs.append(invalid_raw("spec.scopes", shown, "unsupported scope"))
        allowed = {"pods"} if scope == "BestEffort" else POD_RESOURCES
        for name in sorted(hard):
            if name in QUOTA_RESOURCES and name not in allowed:
                errs.append(invalid_raw("spec.scopes", shown,
                                        "unsupported scope applied to resource"))
    for pair in CONFLICTING_SCOPES:
        if all(scope in scopes for scope in pair):
            errs.append(invalid_raw("spec.scopes", shown, "conflicting scopes"))
    return errs


def _selector_errors(spec):
    selector = _dict(spec.get("scopeSelector"))
    errs = []
    for index, expr in enumerate(selector.get("matchExpressions") or []):
        expr, at = _dict(expr), f"spec.scopeSelector.matchExpressions[{index}]"
        scope, operator, values = expr.get("scopeName"), expr.get("operator"), expr.get("values")
        if scope not in SCOPES:
            errs.append(invalid(f"{at}.scopeName", scope, "unsupported scope"))
        if operator not in OPERATORS:
            errs.append(invalid(f"{at}.operator", operator, "not a valid selector operator"))
        elif scope in EXISTS_ONLY_SCOPES and operator not in ("Exists", "DoesNotExist"):
            errs.append(invalid(f"{at}.operator", operator, (
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, "
                "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort or "
                "ResourceQuotaScopeNotBestEffort")))
        if operator in ("In", "NotIn") and not values:
            errs.append(required(f"{at}.values", "must be at least one value when `operator` "
                                                 "is 'In' or 'NotIn' for scope selector"))
        elif operator in ("Exists", "DoesNotExist") and values:
            errs.append(invalid_raw(f"{at}.values", json.dumps(values), (
                "must be no value when `operator` is 'Exist' or 'DoesNotExist' for scope "
                "selector")))
    return errs


def resourcequota_errors(obj):
    """Return the errors of a ResourceQuota's spec and status."""
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    errs = _quota_list(spec.get("hard"), "spec.hard")
    errs += _scope_errors(spec, _dict(spec.get("hard")))
    errs += _selector_errors(spec)
    errs += _quota_list(status.get("hard"), "status.hard")
    errs += _quota_list(status.get("used"), "status.used")
    return errs


def resourcequota_update_errors(new, old):
    """Return what a ResourceQuota update changes that it may not (its scopes)."""
    new_spec, old_spec = _dict(new.get("spec")), _dict(old.get("spec"))
    errs = []
    if (new_spec.get("scopes") or []) != (old_spec.get("scopes") or []):
        errs.append(invalid_raw("spec.scopes", _go_scopes(new_spec.get("scopes") or []),
                                IMMUTABLE))
    if (new_spec.get("scopeSelector") or None) != (old_spec.get("scopeSelector") or None):
        errs.append(invalid_raw("spec.scopeSelector", "{}", IMMUTABLE))
    return errs


# -- LimitRange ---------------------------------------------------------------------------------
def _limit_maps(item, at, kind):
    if kind in ("Pod", "Container"):
        standard, message = CONTAINER_RESOURCES, "must be a standard resource for containers"
    else:
        standard, message = STANDARD_RESOURCES, "must be a standard resource type or fully " \
                                                "qualified"
    errs, maps = [], {}
    for field in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        found, maps[field] = _amounts(item.get(field), f"{at}.{field}", standard, message)
        errs += found
    return errs, maps


def _order_errors(at, name, maps):
    low, high = maps["min"].get(name), maps["max"].get(name)
    default, request = maps["default"].get(name), maps["defaultRequest"].get(name)
    ratio = maps["maxLimitRequestRatio"].get(name)
    errs = []

    def check(cond, field, shown, message):
        if cond:
            errs.append(invalid(f"{at}.{field}[{name}]", str(shown), message))

    check(low and high and low.value > high.value, "min", low,
          f"min value {low} is greater than max value {high}")
    check(request and low and low.value > request.value, "defaultRequest", request,
          f"min value {low} is greater than default request value {request}")
    check(request and high and request.value > high.value, "defaultRequest", request,
          f"default request value {request} is greater than max value {high}")
    check(request and default and request.value > default.value, "defaultRequest", request,
          f"default request value {request} is greater than default limit value {default}")
    check(default and low and low.value > default.value, "default", low,
          f"min value {low} is greater than default value {default}")
    check(default and high and default.value > high.value, "default", high,
          f"default value {default} is greater than max value {high}")
    check(ratio and ratio.value < 1, "maxLimitRequestRatio", ratio,
          f"ratio {ratio} is less than 1")
    if ratio and low and high and low.value > 0 and ratio.value > high.value / low.value:
        check(True, "maxLimitRequestRatio", ratio,
              f"ratio {ratio} is greater than max/min = {float(high.value / low.value):f}")
    return errs


def limitrange_errors(obj):
    """Return the errors of a LimitRange's spec.limits."""
    limits = _dict(obj.get("spec")).get("limits") or []
    errs, seen = [], set()
    for index, item in enumerate(limits if isinstance(limits, list) else []):
        item, at = _dict(item), f"spec.limits[{index}]"
        kind = item.get("type") or ""
        if "/" in kind:
            errs += [invalid(f"{at}.type", kind, msg) for msg in _key_errors(kind)]
        elif kind not in LIMIT_TYPES:
            errs.append(invalid(f"{at}.type", kind,
                                "must be a standard limit type or fully qualified"))
        if kind in seen:
            errs.append(duplicate(f"{at}.type", kind))
        seen.add(kind)
        found, maps = _limit_maps(item, at, kind)
        errs += found
        if kind == "Pod":
            for field in ("default", "defaultRequest"):
                if maps[field]:
                    errs.append(forbidden(f"{at}.{field}",
                                          "may not be specified when `type` is 'Pod'"))
        if kind == "PersistentVolumeClaim" and "storage" not in maps["min"] and \
                "storage" not in maps["max"]:
            errs.append(required(f"{at}.limits", "either minimum or maximum storage value is "
                                                 "required, but neither was provided"))
        for name in sorted(set().union(*maps.values())):
            errs += _order_errors(at, name, maps)
    return errs


def default_limit_range(limit_range):
    """SetDefaults_LimitRangeItem: Container items' default from max, defaultRequest from
    default, then from min (in place)."""
    for item in _dict(limit_range.get("spec")).get("limits") or []:
        if not isinstance(item, dict) or item.get("type") != "Container":
            continue
        default = {**_dict(item.get("max")), **_dict(item.get("default"))}
        request = {**_dict(item.get("min")), **default, **_dict(item.get("defaultRequest"))}
        if default:
            item["default"] = default
        if request:
            item["defaultRequest"] = request
