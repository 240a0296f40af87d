"""Work out a Deployment's replica numbers: maxSurge, maxUnavailable, totals (pure).

The arithmetic of Kubernetes' deployment/util apart from revisions and
conditions, on plain dicts and never mutating them, so each rule can be
tested by a table.
"""

import math


class SpecError(ValueError):
    """The Deployment's spec cannot be acted on (a bad maxSurge, say); retrying won't help."""


def replicas_of(obj):
    """spec.replicas (1 when unset, as the API server defaults it)."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_of(obj, field):
    return int((obj.get("status") or {}).get(field) or 0)


def scaled_value(value, total, round_up):
    """GetScaledValueFromIntOrPercent: an int as is, "25%" of ``total`` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SpecError(f"invalid value {value!r}: want an integer or a percentage")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            raise SpecError(f"invalid value for IntOrString: {value!r}") from None
        exact = percent * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    if isinstance(value, str) and value.isdigit():
        raise SpecError(f"invalid value for IntOrString: invalid type: string is not a "
                        f"percentage: {value!r}")
    raise SpecError(f"invalid value for IntOrString: {value!r}")


def strategy_type(d):
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate"


def is_rolling_update(d):
    return strategy_type(d) == "RollingUpdate"


def resolve_fenceposts(max_surge, max_unavailable, desired):
    """(surge, unavailable): surge rounds up, unavailable down; both 0 makes unavailable 1."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired,
                               False)
    if surge == 0 and unavailable == 0:
        # Rounding may have made both 0; with no surge there is nothing to surge.
        unavailable = 1
    return surge, unavailable


def _rolling_params(d):
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%")


def max_surge(d):
    """MaxSurge: 0 unless RollingUpdate."""
    if not is_rolling_update(d):
        return 0
    return resolve_fenceposts(*_rolling_params(d), replicas_of(d))[0]


def max_unavailable(d):
    """MaxUnavailable: 0 unless RollingUpdate or with 0 replicas; never above replicas."""
    replicas = replicas_of(d)
    if not is_rolling_update(d) or replicas == 0:
        return 0
    return min(resolve_fenceposts(*_rolling_params(d), replicas)[1], replicas)


def total_replicas(rss):
    """GetReplicaCountForReplicaSets: the sum of spec.replicas."""
    return sum(replicas_of(rs) for rs in rss if rs is not None)


def total_status(rss, field):
    """The sum of status.<field> (replicas, readyReplicas, availableReplicas)."""
    return sum(status_of(rs, field) for rs in rss if rs is not None)


def available_of(rs):
    """Available replicas of ``rs`` that it will keep: at most spec.replicas.

    Kubernetes reads status.availableReplicas as is. Just after a scale-down that
    status still counts the pods being deleted, and trusting it lets a second
    scale-down take availability below maxUnavailable; capping it at spec.replicas
    never counts a pod that is on its way out.
    """
    if rs is None:
        return 0
    return min(status_of(rs, "availableReplicas"), replicas_of(rs))


def new_rs_new_replicas(d, all_rss, new_rs):
    """NewRSNewReplicas: how big the new ReplicaSet may be now."""
    replicas = replicas_of(d)
    if not is_rolling_update(d):
        return replicas
    surge = scaled_value(_rolling_params(d)[0], replicas, True)
    # Kubernetes counts spec.replicas only. A ReplicaSet just scaled down still runs
    # its old pods until its controller deletes them (status.replicas says so), and
    # counting those keeps the pods, not only the specs, within maxSurge.
    current = sum(max(replicas_of(rs), status_of(rs, "replicas")) for rs in all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return replicas_of(new_rs)      # cannot scale up now
    up = min(max_total - current, replicas - replicas_of(new_rs))
    return replicas_of(new_rs) + up

