"""Validate HorizontalPodAutoscalers (autoscaling/v2) as pkg/apis/autoscaling/validation (1.32).

Replica bounds (minReplicas >= 1, maxReplicas > 0 and >= minReplicas), the target
reference (kind and name as path segments), every metric spec (one source of its
type, a target Kubernetes understands) and the behavior's scaling rules (windows up
to an hour, policies Pods or Percent with periods up to 30 minutes, selectPolicy
Max, Min or Disabled). Returns ``(path, reason, message)`` triples.
"""

from control.objects.quantity import QuantityError, parse_quantity
from control.objects.validation_common import (
    forbidden,
    invalid,
    non_negative,
    not_supported,
    required,
)

MAX_STABILIZATION_WINDOW_SECONDS = 3600
MAX_PERIOD_SECONDS = 1800
SELECT_POLICIES = ("Disabled", "Max", "Min")
POLICY_TYPES = ("Percent", "Pods")
SOURCE_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
#: Each source type and the field that carries it.
SOURCE_FIELDS = {"Object": "object", "Pods": "pods", "Resource": "resource",
                 "External": "external", "ContainerResource": "containerResource"}
TARGET_TYPES = ("Utilization", "Value", "AverageValue")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _path_segment_errors(value, path):
    """ValidatePathSegmentName: a name used in a URL path."""
    if value in (".", ".."):
        return [invalid(path, value, f'may not be \'{value}\'')]
    for bad in ("/", "%"):
        if bad in value:
            return [invalid(path, value, f"may not contain '{bad}'")]
    return []


def object_reference_errors(ref, path):
    """ValidateCrossVersionObjectReference: kind and name required, usable in a path."""
    ref = ref if isinstance(ref, dict) else {}
    errs = []
    for key in ("kind", "name"):
        value = ref.get(key)
        if not value:
            errs.append(required(f"{path}.{key}", ""))
        else:
            errs += _path_segment_errors(value, f"{path}.{key}")
    return errs


def _positive_quantity(value, path):
    if value is None:
        return []
    try:
        positive = parse_quantity(value) > 0
    except QuantityError:
        return []               # the schema check already refused it
    return [] if positive else [invalid(path, value, "must be positive")]


def metric_target_errors(target, path):
    """validateMetricTarget."""
    target = target if isinstance(target, dict) else {}
    errs = []
    kind = target.get("type")
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in TARGET_TYPES:
        errs.append(invalid(f"{path}.type", kind or "",
                            "must be either Utilization, Value, or AverageValue"))
    errs += _positive_quantity(target.get("value"), f"{path}.value")
    errs += _positive_quantity(target.get("averageValue"), f"{path}.averageValue")
    utilization = target.get("averageUtilization")
    if _is_int(utilization) and utilization < 1:
        errs.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return errs


def _resource_source_errors(source, path, container=False):
    """validateResourceSource / validateContainerResourceSource."""
    errs = []
    if not source.get("name"):
        errs.append(required(f"{path}.name", "must specify a resource name"))
    if container and not source.get("container"):
        errs.append(required(f"{path}.container", "must specify a container"))
    target = source.get("target") if isinstance(source.get("target"), dict) else {}
    errs += metric_target_errors(target, f"{path}.target")
    if target.get("averageUtilization") is None and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageUtilization",
                             "must set either a target raw value or a target utilization"))
    if target.get("averageUtilization") is not None and target.get("averageValue") is not None:
        errs.append(forbidden(f"{path}.target.averageValue",
                              "may not set both a target raw value and a target utilization"))
    return errs


def _metric_identifier_errors(metric, path):
    metric = metric if isinstance(metric, dict) else {}
    return [] if metric.get("name") else [required(f"{path}.name", "must specify a metric name")]


def _custom_source_errors(kind, source, path):
    """validatePodsSource, validateObjectSource, validateExternalSource."""
    target = source.get("target") if isinstance(source.get("target"), dict) else {}
    errs = _metric_identifier_errors(source.get("metric"), f"{path}.metric")
    errs += metric_target_errors(target, f"{path}.target")
    value, average = target.get("value"), target.get("averageValue")
    if kind == "Pods" and average is None:
        errs.append(required(f"{path}.target.averageValue",
                             "must specify a positive target averageValue"))
    if kind == "Object":
        errs += object_reference_errors(source.get("describedObject"),
                                        f"{path}.describedObject")
        if value is None and average is None:
            errs.append(required(f"{path}.target.averageValue",
                                 "must set either a target value or averageValue"))
    if kind == "External":
        if value is not None and average is not None:
            errs.append(forbidden(f"{path}.target.value", "may not set both a target value "
                                  "for metric and a per-pod target"))
        if value is None and average is None:
            errs.append(required(f"{path}.target.averageValue", "must set either a target "
                                 "value for metric or a per-pod target"))
    return errs


def metric_spec_errors(metric, path):
    """validateMetricSpec: a known type, exactly its source, and that source's rules."""
    metric = metric if isinstance(metric, dict) else {}
    kind = metric.get("type")
    errs = []
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    elif kind not in SOURCE_TYPES:
        errs.append(not_supported(f"{path}.type", kind, SOURCE_TYPES))
    present = [name for name in SOURCE_FIELDS.values() if metric.get(name) is not None]
    expected = SOURCE_FIELDS.get(kind)
    if expected is not None and expected not in present:
        errs.append(required(f"{path}.{expected}",
                             "must populate information for the given metric source"))
    if len(present) > 1 or (expected is None and present):
        errs += [forbidden(f"{path}.{name}", "must populate the given metric source only")
                 for name in present if name != expected]
    if isinstance(metric.get("resource"), dict):
        errs += _resource_source_errors(metric["resource"], f"{path}.resource")
    if isinstance(metric.get("containerResource"), dict):
        errs += _resource_source_errors(metric["containerResource"],
                                        f"{path}.containerResource", container=True)
    for source_kind in ("Pods", "Object", "External"):
        field = SOURCE_FIELDS[source_kind]
        if isinstance(metric.get(field), dict):
            errs += _custom_source_errors(source_kind, metric[field], f"{path}.{field}")
    return errs


def scaling_rules_errors(rules, path):
    """validateScalingRules: window, selectPolicy and at least one valid policy."""
    if not isinstance(rules, dict):
        return []
    errs = []
    window = rules.get("stabilizationWindowSeconds")
    if _is_int(window) and window < 0:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window,
                            "must be greater than or equal to zero"))
    if _is_int(window) and window > MAX_STABILIZATION_WINDOW_SECONDS:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window,
                            f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        errs.append(not_supported(f"{path}.selectPolicy", select, SELECT_POLICIES))
    policies = rules.get("policies") or []
    if not policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for index, policy in enumerate(policies):
        errs += _policy_errors(policy if isinstance(policy, dict) else {},
                               f"{path}.policies[{index}]")
    return errs


def _policy_errors(policy, path):
    errs = []
    if policy.get("type") not in POLICY_TYPES:
        errs.append(not_supported(f"{path}.type", policy.get("type") or "", POLICY_TYPES))
    value, period = policy.get("value"), policy.get("periodSeconds")
    if not _is_int(value) or value <= 0:
        errs.append(invalid(f"{path}.value", value or 0, "must be greater than zero"))
    if not _is_int(period) or period <= 0:
        errs.append(invalid(f"{path}.periodSeconds", period or 0, "must be greater than zero"))
    elif period > MAX_PERIOD_SECONDS:
        errs.append(invalid(f"{path}.periodSeconds", period,
                            f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs


def hpa_spec_errors(spec, path="spec"):
    """validateHorizontalPodAutoscalerSpec (scale to zero is behind a gate: off)."""
    spec = spec if isinstance(spec, dict) else {}
    errs = []
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if _is_int(low) and low < 1:
        errs.append(invalid(f"{path}.minReplicas", low, "must be greater than or equal to 1"))
    if not _is_int(high) or high < 1:
        errs.append(invalid(f"{path}.maxReplicas", high or 0, "must be greater than 0"))
    if _is_int(low) and _is_int(high) and high < low:
        errs.append(invalid(f"{path}.maxReplicas", high,
                            "must be greater than or equal to `minReplicas`"))
    errs += object_reference_errors(spec.get("scaleTargetRef"), f"{path}.scaleTargetRef")
    for index, metric in enumerate(spec.get("metrics") or []):
        errs += metric_spec_errors(metric, f"{path}.metrics[{index}]")
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        errs += scaling_rules_errors(behavior.get("scaleUp"), f"{path}.behavior.scaleUp")
        errs += scaling_rules_errors(behavior.get("scaleDown"), f"{path}.behavior.scaleDown")
    return errs


def hpa_errors(obj):
    """ValidateHorizontalPodAutoscaler (spec) and its status counts."""
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    return (hpa_spec_errors(obj.get("spec"))
            + non_negative(status.get("currentReplicas"), "status.currentReplicas")
            + non_negative(status.get("desiredReplicas"), "status.desiredReplicas"))
