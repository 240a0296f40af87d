"""The arithmetic of a PodDisruptionBudget's status, as Kubernetes' disruption controller.

Pure functions, no client: ``budget_status`` takes a PDB, the pods its selector
matches, a function giving each pod's controller and its scale, and the time; it
returns the status the controller writes. The eviction subresource
(control/api/eviction.py) reads that status and decrements ``disruptionsAllowed``;
the pods it evicts sit in ``disruptedPods`` until the controller sees them
deleted, or for ``DELETION_TIMEOUT`` (then the eviction is taken as never having
happened).
"""

import datetime
import math

from control.objects import conditions, meta

#: How long an eviction's entry in status.disruptedPods is believed (Kubernetes' DeletionTimeout).
DELETION_TIMEOUT = datetime.timedelta(minutes=2)
CONDITION = "DisruptionAllowed"
SUFFICIENT, INSUFFICIENT, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"
UNMANAGED_MESSAGE = (
    "Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be "
    "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may "
    "result in undefined behavior. To account for these pods please set \".spec.minAvailable\" "
    "field of the PDB to an integer value.")


class BudgetError(Exception):
    """The status cannot be computed (a controller is missing, a value is malformed)."""


def scaled_value(value, total, round_up=True):
    """An int-or-percent resolved against ``total`` (intstr.GetScaledValueFromIntOrPercent)."""
    if isinstance(value, bool):
        raise BudgetError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        exact = int(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise BudgetError(f"invalid value for IntOrString: invalid value {value!r}: must be an "
                      "integer or a percentage (e.g. '5%')")


def controller_ref(pod):
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def expected_scale(pods, find_scale):
    """Sum the scale of the controllers of ``pods``; return (expected, unmanaged pod names).

    ``find_scale(pod, ref)`` returns (controller uid, replicas) or None when no
    finder knows the controller; each controller counts once.
    """
    scales, unmanaged = {}, []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(pod["metadata"]["name"])
            continue
        if ref.get("uid") in scales:
            continue
        found = find_scale(pod, ref)
        if found is None:
            raise BudgetError(f"found no controllers for pod {pod['metadata']['name']!r}")
        uid, replicas = found
        scales[uid] = replicas
    return sum(scales.values()), unmanaged


def expected_and_desired(spec, pods, find_scale):
    """Return (expectedPods, desiredHealthy, unmanaged pod names) for a PDB's spec."""
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected, unmanaged = expected_scale(pods, find_scale)
        desired = max(0, expected - scaled_value(max_unavailable, expected, True))
        return expected, desired, unmanaged
    if isinstance(min_available, int) and not isinstance(min_available, bool):
        return len(pods), min_available, []
    if min_available is not None:
        expected, unmanaged = expected_scale(pods, find_scale)
        return expected, scaled_value(min_available, expected, True), unmanaged
    return 0, 0, []


def live_disruptions(pdb, pods, now):
    """Split status.disruptedPods: (entries still believed, names overdue, next expiry).

    An entry stays while its pod exists, is not yet being deleted, and the
    eviction is younger than DELETION_TIMEOUT; ``next expiry`` is when to look again.
    """
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept, overdue, recheck = {}, [], None
    for pod in pods:
        pod_meta = pod["metadata"]
        if pod_meta.get("deletionTimestamp") or pod_meta["name"] not in recorded:
            continue
        when = meta.parse_time(recorded[pod_meta["name"]])
        if when is None:
            continue
        deadline = when + DELETION_TIMEOUT
        if deadline < now:
            overdue.append(pod_meta["name"])
            continue
        kept[pod_meta["name"]] = recorded[pod_meta["name"]]
        recheck = deadline if recheck is None else min(recheck, deadline)
    return kept, overdue, recheck


def count_healthy(pods, disrupted):
    """Ready pods not being deleted and not awaiting an eviction (countHealthyPods)."""
    return sum(1 for pod in pods if not pod["metadata"].get("deletionTimestamp")
               and pod["metadata"]["name"] not in disrupted and conditions.is_ready(pod))


def set_condition(status, allowed_status, reason, message, now, observed_generation=None):
    """Set the DisruptionAllowed condition (apimeta.SetStatusCondition); keep its time if unchanged."""
    found = [c for c in status.get("conditions") or () if c.get("type") == CONDITION]
    old = found[0] if found else None
    condition = {"type": CONDITION, "status": allowed_status, "reason": reason,
                 "message": message,
                 "lastTransitionTime": old["lastTransitionTime"]
                 if old and old.get("status") == allowed_status and old.get("lastTransitionTime")
                 else meta.timestamp(now)}
    if observed_generation:
        condition["observedGeneration"] = observed_generation
    others = [c for c in status.get("conditions") or () if c.get("type") != CONDITION]
    status["conditions"] = [*others, condition]
    return status


def allowed_condition(status, now):
    """UpdateDisruptionAllowedCondition: True/SufficientPods while disruptions are allowed."""
    if status.get("disruptionsAllowed", 0) > 0:
        return set_condition(status, "True", SUFFICIENT, "", now)
    return set_condition(status, "False", INSUFFICIENT, "", now)


def budget_status(pdb, pods, find_scale, now):
    """Return (new status, unmanaged pod names, overdue evictions, next recheck time).

    Raises BudgetError when the expected count cannot be computed.
    """
    expected, desired, unmanaged = expected_and_desired(pdb.get("spec") or {}, pods, find_scale)
    disrupted, overdue, recheck = live_disruptions(pdb, pods, now)
    healthy = count_healthy(pods, disrupted)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0     # no pods expected yet: safe until the controller has seen them
    old = pdb.get("status") or {}
    status = {"observedGeneration": (pdb.get("metadata") or {}).get("generation", 1),
              "disruptionsAllowed": allowed, "currentHealthy": healthy,
              "desiredHealthy": desired, "expectedPods": expected,
              "conditions": list(old.get("conditions") or ())}
    if disrupted:
        status["disruptedPods"] = disrupted
    return allowed_condition(status, now), unmanaged, overdue, recheck


def failed_status(pdb, message, now):
    """The fail-safe status after a failed sync: nothing allowed, condition SyncFailed."""
    status = dict(pdb.get("status") or {})
    status["disruptionsAllowed"] = 0
    status.setdefault("currentHealthy", 0)
    status.setdefault("desiredHealthy", 0)
    status.setdefault("expectedPods", 0)
    return set_condition(status, "False", SYNC_FAILED, message, now,
                         status.get("observedGeneration"))


def status_unchanged(old, new):
    """Whether writing ``new`` would change nothing but condition timestamps."""
    def strip(status):
        return {**status, "conditions": [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                                         for c in status.get("conditions") or ()],
                "disruptedPods": status.get("disruptedPods") or {}}
    return strip(old or {}) == strip(new)
