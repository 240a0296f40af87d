"""Convert HorizontalPodAutoscalers between autoscaling/v1 and the stored autoscaling/v2.

As pkg/apis/autoscaling/v1/conversion.go (1.32) does: v1 has one metric,
``targetCPUUtilizationPercentage`` (a Resource cpu Utilization metric in v2) and
reports ``currentCPUUtilizationPercentage``; everything else v2 holds travels in
annotations on the v1 form, so a client that reads v1 and writes it back loses
nothing:

- ``autoscaling.alpha.kubernetes.io/metrics``: the other metrics, in v1's
  MetricSpec form (``targetAverageUtilization``, ``metricName``, ...);
- ``.../current-metrics``: every current metric, in v1's MetricStatus form;
- ``.../behavior``: the behavior as Go marshals the internal type (no json tags:
  ``ScaleUp``, ``StabilizationWindowSeconds``, ...; read back ignoring case);
- ``.../conditions``: the status conditions.

An object without any metric gets the v1 default, cpu at 80% utilisation.
"""

import copy
import json

from control.objects.autoscaling_v1_metrics import (
    as_dict,
    metric_spec_from_v1,
    metric_spec_to_v1,
    metric_status_from_v1,
    metric_status_to_v1,
    reference,
    set_if,
)

PREFIX = "autoscaling.alpha.kubernetes.io/"
METRICS = PREFIX + "metrics"
CURRENT_METRICS = PREFIX + "current-metrics"
CONDITIONS = PREFIX + "conditions"
BEHAVIOR = PREFIX + "behavior"
ROUND_TRIP_ANNOTATIONS = (METRICS, BEHAVIOR, CURRENT_METRICS, CONDITIONS)
DEFAULT_CPU_UTILIZATION = 80
V1, V2 = "autoscaling/v1", "autoscaling/v2"


# ---------------------------------------------------------------- small helpers

def _list(value):
    return value if isinstance(value, list) else []


def _is_cpu_utilization(metric):
    resource = as_dict(as_dict(metric).get("resource"))
    return (metric.get("type") == "Resource" and resource.get("name") == "cpu"
            and as_dict(resource.get("target")).get("averageUtilization") is not None)


def _cpu_metric(percent):
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": percent}}}


# ---------------------------------------------------------------- behavior

_RULE_FIELDS = (("StabilizationWindowSeconds", "stabilizationWindowSeconds"),
                ("SelectPolicy", "selectPolicy"))
_POLICY_FIELDS = (("Type", "type", ""), ("Value", "value", 0),
                  ("PeriodSeconds", "periodSeconds", 0))
_DIRECTIONS = (("ScaleUp", "scaleUp"), ("ScaleDown", "scaleDown"))


def behavior_to_annotation(behavior):
    """The behavior as Go marshals the internal struct: field names, null for unset."""
    def rules(value):
        if not isinstance(value, dict):
            return None
        out = {go: value.get(name) for go, name in _RULE_FIELDS}
        policies = value.get("policies")
        out["Policies"] = None if not isinstance(policies, list) else [
            {go: as_dict(p).get(name, zero) for go, name, zero in _POLICY_FIELDS}
            for p in policies]
        return out
    return json.dumps({go: rules(behavior.get(name)) for go, name in _DIRECTIONS},
                      separators=(",", ":"))


def _or(value, zero):
    return zero if value is None else value


def _field(obj, go_name):
    """``obj[go_name]`` matched as encoding/json matches keys: exactly, else ignoring case."""
    if go_name in obj:
        return obj[go_name]
    return next((v for k, v in obj.items() if k.lower() == go_name.lower()), None)


def behavior_from_annotation(text):
    """The v2 behavior the annotation holds; None when it is unreadable or empty."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    behavior = {}
    for go, name in _DIRECTIONS:
        rules = _field(value, go)
        if not isinstance(rules, dict):
            continue
        converted = {}
        for go_field, field in _RULE_FIELDS:
            set_if(converted, field, _field(rules, go_field))
        policies = _field(rules, "Policies")
        if isinstance(policies, list):
            converted["policies"] = [{field: _or(_field(as_dict(p), go_field), zero)
                                      for go_field, field, zero in _POLICY_FIELDS}
                                     for p in policies]
        behavior[name] = converted
    return behavior or None


# ---------------------------------------------------------------- the objects

def _annotations_without_round_trip(metadata):
    """The annotations minus those this conversion writes (no key left: None)."""
    annotations = {k: v for k, v in as_dict(metadata.get("annotations")).items()
                   if k not in ROUND_TRIP_ANNOTATIONS}
    return annotations or None


def _with_annotations(metadata, annotations):
    metadata = {k: v for k, v in metadata.items() if k != "annotations"}
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _decoded(annotations, key):
    """The JSON value of an annotation, or None when it is missing or unreadable."""
    try:
        return json.loads(annotations[key]) if key in annotations else None
    except (TypeError, ValueError):
        return None


def to_v1(hpa):
    """The autoscaling/v1 form of a stored (autoscaling/v2) HorizontalPodAutoscaler."""
    hpa = copy.deepcopy(hpa)
    spec, status = as_dict(hpa.get("spec")), as_dict(hpa.get("status"))
    metrics = [m for m in _list(spec.get("metrics")) if isinstance(m, dict)]
    current = [m for m in _list(status.get("currentMetrics")) if isinstance(m, dict)]
    v1_spec = {"scaleTargetRef": reference(spec.get("scaleTargetRef"))}
    set_if(v1_spec, "minReplicas", spec.get("minReplicas"))
    v1_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    if cpu is not None:
        v1_spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"][
            "averageUtilization"]
    v1_status = {}
    set_if(v1_status, "observedGeneration", status.get("observedGeneration"))
    set_if(v1_status, "lastScaleTime", status.get("lastScaleTime"))
    v1_status["currentReplicas"] = status.get("currentReplicas", 0)
    v1_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    for metric in current:      # as upstream: no break, the last cpu reading wins
        resource = as_dict(metric.get("resource"))
        if metric.get("type") == "Resource" and resource.get("name") == "cpu":
            set_if(v1_status, "currentCPUUtilizationPercentage",
                 as_dict(resource.get("current")).get("averageUtilization"))

    metadata = as_dict(hpa.get("metadata"))
    annotations = _annotations_without_round_trip(metadata) or {}
    others = [metric_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        annotations[METRICS] = json.dumps(others, separators=(",", ":"))
    if current:
        annotations[CURRENT_METRICS] = json.dumps([metric_status_to_v1(m) for m in current],
                                                  separators=(",", ":"))
    if isinstance(spec.get("behavior"), dict):
        annotations[BEHAVIOR] = behavior_to_annotation(spec["behavior"])
    if _list(status.get("conditions")):
        annotations[CONDITIONS] = json.dumps(status["conditions"], separators=(",", ":"))
    hpa.update(apiVersion=V1, metadata=_with_annotations(metadata, annotations),
               spec=v1_spec, status=v1_status)
    return hpa


def from_v1(hpa):
    """The stored (autoscaling/v2) form of an autoscaling/v1 HorizontalPodAutoscaler."""
    hpa = copy.deepcopy(hpa)
    spec, status = as_dict(hpa.get("spec")), as_dict(hpa.get("status"))
    metadata = as_dict(hpa.get("metadata"))
    annotations = as_dict(metadata.get("annotations"))

    v2_spec = {"scaleTargetRef": reference(spec.get("scaleTargetRef"))}
    set_if(v2_spec, "minReplicas", spec.get("minReplicas"))
    v2_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    metrics = [metric_spec_from_v1(m) for m in _list(_decoded(annotations, METRICS))]
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append(_cpu_metric(spec["targetCPUUtilizationPercentage"]))   # goes last
    v2_spec["metrics"] = metrics or [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    behavior = (behavior_from_annotation(annotations[BEHAVIOR])
                if isinstance(annotations.get(BEHAVIOR), str) else None)
    set_if(v2_spec, "behavior", behavior)

    v2_status = {}
    set_if(v2_status, "observedGeneration", status.get("observedGeneration"))
    set_if(v2_status, "lastScaleTime", status.get("lastScaleTime"))
    if status.get("currentReplicas"):
        v2_status["currentReplicas"] = status["currentReplicas"]
    v2_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    current = _decoded(annotations, CURRENT_METRICS)
    if isinstance(current, list):   # the annotation has more than the cpu percentage
        v2_status["currentMetrics"] = [metric_status_from_v1(m) for m in current]
    elif status.get("currentCPUUtilizationPercentage") is not None:
        v2_status["currentMetrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "current": {
                "averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
    conditions = _decoded(annotations, CONDITIONS)
    if isinstance(conditions, list) and conditions:
        v2_status["conditions"] = conditions

    hpa.update(apiVersion=V2, spec=v2_spec, status=v2_status,
               metadata=_with_annotations(metadata, _annotations_without_round_trip(metadata)))
    return hpa
