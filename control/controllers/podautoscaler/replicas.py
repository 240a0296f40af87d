"""Compute a replica count from pods' resource usage: Kubernetes' HPA replica calculator.

Pure functions over plain data, so every rule is unit-tested without a cluster:

* pods are grouped first (groupPods): deleted or Failed pods are ignored; Pending
  pods, and for cpu pods still in their initialization period (5 min) that are not
  Ready or whose sample predates readiness, or that turned Ready late (beyond 30 s
  after start, never before), count as not ready; pods with no sample are missing;
* the usage ratio is total usage over total requests (Utilization) or mean usage
  over the target (AverageValue), from the ready pods with samples only;
* within the tolerance (0.1) nothing changes; otherwise ceil(ratio * ready pods);
* missing pods count as using 100% (or the target, if above) on a scale-down and 0 on a
  scale-up; not-ready pods count as 0 on a scale-up; if that reverses the direction
  or lands within the tolerance, the count stays as it is.

Usage and requests are in milli-units (millicores, milli-bytes), as the Go code's
MilliValue. ``pods`` are Pod dicts; ``samples`` maps a pod name to a ``Sample``.
"""

import math
from dataclasses import dataclass

from control.objects import conditions, meta
from control.objects.quantity import milli_value

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0


class MetricsError(Exception):
    """The metrics cannot give a replica count (the message says why, as Kubernetes)."""


@dataclass(frozen=True)
class Sample:
    """One pod's usage (milli-units) at ``timestamp`` (epoch seconds) over ``window`` s."""

    value: int
    timestamp: float = 0.0
    window: float = 0.0


def _seconds(text):
    when = meta.parse_time(text) if text else None
    return when.timestamp() if when is not None else None


def _unready_for_cpu(pod, sample, now, initialization_period, readiness_delay):
    """Whether a Running pod's cpu sample should not count yet (groupPods' cpu rule)."""
    ready = conditions.find(pod, "Ready")
    started = _seconds((pod.get("status") or {}).get("startTime"))
    if ready is None or started is None:
        return True
    transition = _seconds(ready.get("lastTransitionTime")) or started
    if started + initialization_period > now:
        return ready.get("status") == "False" or sample.timestamp < transition + sample.window
    return ready.get("status") == "False" and started + readiness_delay > transition


def group_pods(pods, samples, resource, now, initialization_period=CPU_INITIALIZATION_PERIOD,
               readiness_delay=INITIAL_READINESS_DELAY):
    """Return (ready count, unready names, missing names, ignored names)."""
    ready, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        name = pod["metadata"]["name"]
        phase = (pod.get("status") or {}).get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
            ignored.add(name)
        elif phase == "Pending":
            unready.add(name)
        elif name not in samples:
            missing.add(name)
        elif resource == "cpu" and _unready_for_cpu(pod, samples[name], now,
                                                     initialization_period, readiness_delay):
            unready.add(name)
        else:
            ready += 1
    return ready, unready, missing, ignored


def pod_requests(pods, resource, container=None):
    """Each pod's request of ``resource`` in milli-units (summed over its containers)."""
    requests = {}
    for pod in pods:
        total = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container is not None and c.get("name") != container:
                continue
            wanted = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if wanted is None:
                raise MetricsError(f"missing request for {resource} in container "
                                   f"{c.get('name')} of Pod {pod['metadata']['name']}")
            total += milli_value(wanted)
        requests[pod["metadata"]["name"]] = total
    return requests


def utilization_ratio(values, requests, target_utilization):
    """GetResourceUtilizationRatio: (ratio, utilization %, mean raw usage)."""
    used = requested = count = 0
    for name, value in values.items():
        if name not in requests:
            continue
        used, requested, count = used + value, requested + requests[name], count + 1
    if requested == 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = int(used * 100 / requested)
    return utilization / target_utilization, utilization, used // count


def usage_ratio(values, target):
    """GetMetricUsageRatio: (ratio, mean usage) against a per-pod target."""
    mean = sum(values.values()) // len(values)
    return mean / target, mean


def _prepare(pods, samples, resource, now, **periods):
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    ready, unready, missing, ignored = group_pods(pods, samples, resource, now, **periods)
    values = {name: s.value for name, s in samples.items()
              if name not in unready and name not in ignored}
    values = {name: v for name, v in values.items()
              if name in {p["metadata"]["name"] for p in pods}}
    if not values:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    return ready, unready, missing, values


def _settle(current, ratio, new_ratio, count, tolerance):
    """The count after filling in the missing and unready pods (the second pass)."""
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or \
            (ratio > 1.0 > new_ratio):
        return current
    proposed = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return current
    return proposed


def utilization_replicas(current, target_utilization, pods, samples, resource, now,
                         container=None, tolerance=TOLERANCE, **periods):
    """GetResourceReplicas: (replicas, utilization %, mean raw usage in milli-units)."""
    ready, unready, missing, values = _prepare(pods, samples, resource, now, **periods)
    requests = pod_requests(pods, resource, container)
    ratio, utilization, raw = utilization_ratio(values, requests, target_utilization)
    with_unready = bool(unready) and ratio > 1.0
    if not with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current, utilization, raw
        return math.ceil(ratio * ready), utilization, raw
    fallback = max(100, target_utilization)
    for name in missing:
        values[name] = requests[name] * fallback // 100 if ratio < 1.0 else 0
    if with_unready:
        values.update({name: 0 for name in unready})
    new_ratio, _, _ = utilization_ratio(values, requests, target_utilization)
    return _settle(current, ratio, new_ratio, len(values), tolerance), utilization, raw


def average_value_replicas(current, target, pods, samples, resource, now,
                           tolerance=TOLERANCE, **periods):
    """GetRawResourceReplicas (calcPlainMetricReplicas): (replicas, mean usage)."""
    ready, unready, missing, values = _prepare(pods, samples, resource, now, **periods)
    ratio, mean = usage_ratio(values, target)
    with_unready = bool(unready) and ratio > 1.0
    if not with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current, mean
        return math.ceil(ratio * ready), mean
    for name in missing:
        values[name] = target if ratio < 1.0 else 0
    if with_unready:
        values.update({name: 0 for name in unready})
    new_ratio, _ = usage_ratio(values, target)
    return _settle(current, ratio, new_ratio, len(values), tolerance), mean
