"""Read pods' resource usage from metrics.k8s.io, as the HPA's resource metrics client.

The API server serves PodMetrics (control/api/metrics_api.py, from the agents' stats).
``pod_samples`` lists them for a namespace and label selector and keeps, per pod,
the usage of one resource summed over its containers (or of one container, for a
ContainerResource metric) in milli-units. A pod whose containers do not all report
the resource is left out, so it counts as missing.
"""

import datetime

from control.client import ApiException
from control.controllers.podautoscaler.replicas import MetricsError, Sample
from control.objects import meta
from control.objects.quantity import QuantityError, milli_value

PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"


def parse_window(text):
    """Seconds of a metrics window ("10s", "1m30s"); 0 if unreadable."""
    seconds, number = 0.0, ""
    for char in text or "":
        if char.isdigit() or char == ".":
            number += char
            continue
        unit = {"h": 3600, "m": 60, "s": 1}.get(char)
        if unit is None or not number:
            return 0.0
        seconds, number = seconds + float(number) * unit, ""
    return seconds


def _stamp(text):
    when = meta.parse_time(text)
    return when.timestamp() if when else datetime.datetime.now(datetime.timezone.utc).timestamp()


def samples_from(items, resource, container=None):
    """Per-pod Samples of ``resource`` from PodMetrics items (see the module's rules)."""
    samples = {}
    for item in items:
        containers = item.get("containers") or []
        if container is not None:
            containers = [c for c in containers if c.get("name") == container]
            if not containers:
                continue
        try:
            values = [milli_value((c.get("usage") or {})[resource]) for c in containers]
        except (KeyError, QuantityError):
            continue
        if not values:
            continue
        samples[item["metadata"]["name"]] = Sample(sum(values), _stamp(item.get("timestamp")),
                                                   parse_window(item.get("window")))
    return samples


def pod_samples(rest, namespace, selector, resource, container=None):
    """GetResourceMetric: this namespace's pods matching ``selector``, by name."""
    try:
        answer = rest.request("GET", PATH.format(namespace=namespace),
                              query={"labelSelector": selector})
    except ApiException as exc:
        raise MetricsError(f"unable to get metrics for resource {resource}: unable to fetch "
                           f"metrics from resource metrics API: {exc}") from None
    items = (answer or {}).get("items") or []
    if not items:
        raise MetricsError(f"unable to get metrics for resource {resource}: no metrics "
                           "returned from resource metrics API")
    return samples_from(items, resource, container)
