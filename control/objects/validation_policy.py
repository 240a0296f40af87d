"""Validate PodDisruptionBudgets as pkg/apis/policy/validation (1.32) does.

The spec: minAvailable or maxUnavailable, not both, each an integer >= 0 or a
percentage no greater than 100%; a valid label selector; an unhealthy pod
eviction policy Kubernetes knows. The status (written by the disruption
controller and the eviction subresource): counts never negative, conditions
with a type, a status True/False/Unknown, a reason and a transition time.
"""

import json

from control.objects import selectors
from control.objects.validation_common import invalid_raw, non_negative, not_supported, required
from control.objects.validation_workloads import _int_or_percent, int_or_string

UNHEALTHY_POLICIES = ("AlwaysAllow", "IfHealthyBudget")
STATUS_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")
CONDITION_STATUSES = ("False", "True", "Unknown")


def _spec_string(spec):
    """Render the spec roughly as Go's %#v names it in the 'both set' error."""
    shown = {k: spec.get(k) for k in ("minAvailable", "maxUnavailable")}
    parts = ", ".join(f"{k[0].upper()}{k[1:]}:{int_or_string(v)}" for k, v in shown.items())
    return f"policy.PodDisruptionBudgetSpec{{{parts}}}"


def _int_or_percent_type(value, path):
    """An IntOrString that is neither an int nor a string cannot be decoded."""
    if value is None or isinstance(value, str) or (isinstance(value, int)
                                                   and not isinstance(value, bool)):
        return []
    return [invalid_raw(path, json.dumps(value), "must be an integer or a percentage (e.g. "
                        "'5%')")]


def pdb_spec_errors(spec, path="spec"):
    """Return the errors of a PodDisruptionBudgetSpec."""
    if not isinstance(spec, dict):
        return []
    errs = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        errs.append(invalid_raw(path, _spec_string(spec),
                                "minAvailable and maxUnavailable cannot be both set"))
    for field, value in (("minAvailable", min_available), ("maxUnavailable", max_unavailable)):
        typed = _int_or_percent_type(value, f"{path}.{field}")
        errs += typed or _int_or_percent(value, f"{path}.{field}")
    errs += [e.cause() for e in selectors.validate_label_selector(spec.get("selector"),
                                                                  f"{path}.selector")]
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POLICIES:
        errs.append(not_supported(f"{path}.unhealthyPodEvictionPolicy", policy,
                                  UNHEALTHY_POLICIES))
    return errs


def _condition_errors(conditions, path):
    errs = []
    for i, condition in enumerate(conditions or ()):
        at = f"{path}[{i}]"
        if not isinstance(condition, dict):
            continue
        for field in ("type", "reason", "lastTransitionTime"):
            if not condition.get(field):
                errs.append(required(f"{at}.{field}"))
        if condition.get("status") not in CONDITION_STATUSES:
            errs.append(not_supported(f"{at}.status", condition.get("status"),
                                      CONDITION_STATUSES))
        errs += non_negative(condition.get("observedGeneration"), f"{at}.observedGeneration")
    return errs


def pdb_status_errors(status, path="status"):
    """Return the errors of a PodDisruptionBudgetStatus (ValidatePodDisruptionBudgetStatusUpdate)."""
    if not isinstance(status, dict):
        return []
    errs = _condition_errors(status.get("conditions"), f"{path}.conditions")
    for field in STATUS_COUNTS:
        errs += non_negative(status.get(field), f"{path}.{field}")
    return errs


def pdb_errors(obj):
    """Return every spec and status error of a PodDisruptionBudget."""
    return pdb_spec_errors(obj.get("spec")) + pdb_status_errors(obj.get("status"))
