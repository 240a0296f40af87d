"""Build an HPA's status: conditions AbleToScale, ScalingActive, ScalingLimited and metrics.

Conditions keep their lastTransitionTime while their status stays the same, as
Kubernetes' setConditionInList does. Quantities written into currentMetrics are
canonical DecimalSI text from milli-units ("250m", "4194304").
"""

ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED = "AbleToScale", "ScalingActive", "ScalingLimited"
CONDITION_ORDER = (ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED)


def milli_quantity(milli):
    """Canonical DecimalSI text of ``milli`` thousandths (resource.NewMilliQuantity)."""
    milli = int(milli)
    if milli == 0:
        return "0"
    mantissa, exponent = milli, -3
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    while exponent % 3:
        mantissa, exponent = mantissa * 10, exponent - 1
    suffixes = {-3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
    while exponent > 18:
        mantissa, exponent = mantissa * 1000, exponent - 3
    return f"{mantissa}{suffixes[exponent]}"


class Conditions:
    """The conditions of one status being built, from the previous ones."""

    def __init__(self, previous, now):
        self.now = now
        self._by_type = {c.get("type"): dict(c) for c in previous or () if isinstance(c, dict)}

    def set(self, kind, is_true, reason, message):
        """setCondition: a new transition time only when the status flips."""
        status = "True" if is_true else "False"
        old = self._by_type.get(kind)
        since = old.get("lastTransitionTime") if old and old.get("status") == status else None
        self._by_type[kind] = {"type": kind, "status": status,
                               "lastTransitionTime": since or self.now,
                               "reason": reason, "message": message}

    def get(self, kind):
        return self._by_type.get(kind)

    def as_list(self):
        known = [self._by_type[k] for k in CONDITION_ORDER if k in self._by_type]
        return known + [c for k, c in self._by_type.items() if k not in CONDITION_ORDER]


def resource_metric_status(metric, utilization, raw_milli):
    """A Resource or ContainerResource MetricStatus with its current average."""
    kind = metric["type"]
    field = "resource" if kind == "Resource" else "containerResource"
    source = metric[field]
    current = {"averageValue": milli_quantity(raw_milli)}
    if utilization is not None:
        current["averageUtilization"] = utilization
    entry = {"name": source["name"], "current": current}
    if kind == "ContainerResource":
        entry["container"] = source.get("container", "")
    return {"type": kind, field: entry}


def empty_metric_status(metric):
    """What Kubernetes reports for a metric it could not read: the type, nothing current."""
    kind = metric.get("type") or ""
    field = {"Resource": "resource", "ContainerResource": "containerResource"}.get(kind)
    if field is None:
        return {"type": kind}
    source = metric.get(field) or {}
    entry = {"name": source.get("name", ""), "current": {}}
    if kind == "ContainerResource":
        entry["container"] = source.get("container", "")
    return {"type": kind, field: entry}
