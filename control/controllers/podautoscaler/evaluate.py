"""Turn an HPA's metric specs into one replica proposal (computeReplicasForMetrics).

Each metric proposes a count; the largest wins. A metric that cannot be read
proposes nothing, records a Warning event and an unable-to-compute condition; if
every metric failed, or some failed and the others would scale down, there is no
proposal at all (``Evaluation.replicas`` is None) and the first failure explains it.
``fetch(resource, container)`` returns the pods' Samples (metrics.pod_samples bound
to a namespace and selector; a fake in unit tests).
"""

from dataclasses import dataclass, field

from control.controllers.podautoscaler import replicas as calc
from control.controllers.podautoscaler.status import empty_metric_status, resource_metric_status
from control.objects.quantity import QuantityError, milli_value


@dataclass
class Evaluation:
    """The proposal of all metrics: the count, the metric behind it, statuses, problems."""

    replicas: int = None
    metric_name: str = ""
    statuses: list = field(default_factory=list)
    #: (reason, message) of the first metric that failed, or None.
    failure: tuple = None
    first_error: str = ""
    failed: int = 0
    #: Warning events to record: (reason, message).
    events: list = field(default_factory=list)


class _Unsupported(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def _resource_proposal(metric, current, pods, fetch, now, periods):
    """computeStatusForResourceMetric(Generic): (replicas, name, status)."""
    container_kind = metric["type"] == "ContainerResource"
    source = metric["containerResource" if container_kind else "resource"]
    resource, container = source.get("name"), source.get("container") if container_kind else None
    target = source.get("target") or {}
    reason = "FailedGetContainerResourceMetric" if container_kind else "FailedGetResourceMetric"
    noun = f"{resource} container resource" if container_kind else f"{resource} resource"
    if target.get("averageValue") is not None:
        try:
            wanted = milli_value(target["averageValue"])
            count, mean = calc.average_value_replicas(current, wanted, pods,
                                                      fetch(resource, container), resource,
                                                      now, **periods)
        except (calc.MetricsError, QuantityError) as exc:
            raise _Unsupported(reason, f"failed to get {resource} usage: {exc}") from None
        return count, noun, resource_metric_status(metric, None, mean)
    utilization = target.get("averageUtilization")
    if utilization is None:
        raise _Unsupported(reason, "invalid resource metric source: neither an average "
                                   "utilization target nor an average value (usage) target "
                                   "was set")
    try:
        count, percent, raw = calc.utilization_replicas(
            current, utilization, pods, fetch(resource, container), resource, now,
            container=container, **periods)
    except calc.MetricsError as exc:
        raise _Unsupported(reason, f"failed to get {resource} utilization: {exc}") from None
    return (count, f"{noun} utilization (percentage of request)",
            resource_metric_status(metric, percent, raw))


_CUSTOM = {"Pods": ("FailedGetPodsMetric", "custom.metrics.k8s.io"),
           "Object": ("FailedGetObjectMetric", "custom.metrics.k8s.io"),
           "External": ("FailedGetExternalMetric", "external.metrics.k8s.io")}


def _proposal(metric, current, pods, fetch, now, periods):
    kind = metric.get("type")
    if kind in ("Resource", "ContainerResource"):
        return _resource_proposal(metric, current, pods, fetch, now, periods)
    if kind in _CUSTOM:
        reason, group = _CUSTOM[kind]
        raise _Unsupported(reason, f"unable to get {kind} metric: the {group} API is not "
                                   "served in this cluster (only resource metrics are)")
    raise _Unsupported("InvalidMetricSourceType",
                       f"unknown metric source type {kind!r}")


def evaluate(metrics, current, pods, fetch, now, **periods):
    """Every metric's proposal, combined as Kubernetes combines them."""
    result = Evaluation()
    best = None
    for metric in metrics:
        try:
            count, name, status = _proposal(metric, current, pods, fetch, now, periods)
        except _Unsupported as exc:
            result.statuses.append(empty_metric_status(metric))
            result.events.append((exc.reason, str(exc)))
            if result.failure is None:
                result.failure = (exc.reason, "the HPA was unable to compute the replica "
                                              f"count: {exc}")
                result.first_error = str(exc)
            result.failed += 1
            continue
        result.statuses.append(status)
        if best is None or count > best:
            best, result.metric_name = count, name
    if result.failed >= len(metrics) or (result.failed and best < current):
        result.replicas = None
    else:
        result.replicas = best
    return result


def failure_summary(result, total):
    """The FailedComputeMetricsReplicas text: how many metrics failed and the first error."""
    return (f"invalid metrics ({result.failed} invalid out of {total}), first error is: "
            f"{result.first_error}")
