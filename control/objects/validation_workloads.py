"""Validate workload kinds as pkg/apis/apps validation (1.32) does.

Deployments, ReplicaSets, ReplicationControllers, StatefulSets and DaemonSets:
replica counts and limits never negative, a selector that is set, not empty and
matches the template's labels, the restart policies the kind can run, strategies
Kubernetes knows; on update the selector stays as it was. The helpers here serve
Jobs and CronJobs too (validation_batch.py). Pod specs themselves are checked by
validation_podspec.
"""

import json

from control.objects import selectors
from control.objects.validation_common import (
    forbidden,
    go_value,
    immutable,
    invalid,
    invalid_raw,
    label_errors,
    non_negative,
    not_supported,
    required,
)

_SELECTOR_MISMATCH = "`selector` does not match template `labels`"
_STATEFULSET_UPDATE = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
    "forbidden")
_STATEFULSET_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                        "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def selector_string(selector):
    """Render a LabelSelector as field.Error prints it: the struct, in Go's %#v."""
    if not isinstance(selector, dict):
        return "null"
    exprs = selector.get("matchExpressions")
    if exprs is None:
        shown = "[]v1.LabelSelectorRequirement(nil)"
    else:
        shown = "[]v1.LabelSelectorRequirement{" + ", ".join(
            f"v1.LabelSelectorRequirement{{Key:{json.dumps(e.get('key', ''))}, "
            f"Operator:{json.dumps(e.get('operator', ''))}, "
            f"Values:{go_value(e['values']) if e.get('values') is not None else '[]string(nil)'}}}"
            for e in exprs if isinstance(e, dict)) + "}"
    return (f"v1.LabelSelector{{MatchLabels:{go_value(selector.get('matchLabels'))}, "
            f"MatchExpressions:{shown}}}")


def int_or_string(value):
    """Render an intstr.IntOrString as Go's %#v prints it."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{json.dumps(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _strategy_string(go_type, rolling_type, strategy):
    rolling = "nil" if strategy.get("rollingUpdate") is None else "0xc000000000"
    return (f"{go_type}{{Type:{json.dumps(strategy.get('type') or '')}, "
            f"RollingUpdate:(*{rolling_type})({rolling})}}")


def _template_labels(spec):
    """Return the template's labels (None when it has none, shown as Go's nil map)."""
    template = spec.get("template")
    metadata = template.get("metadata") if isinstance(template, dict) else None
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return labels if isinstance(labels, dict) else None


def workload_selector(spec, kind_word, required_selector=True):
    """The selector of a workload: set, valid, not empty, matching the template's labels."""
    selector = spec.get("selector")
    if selector is None:
        return [required("spec.selector", "")] if required_selector else []
    errs = [e.cause() for e in selectors.validate_label_selector(selector, "spec.selector")]
    if errs or not isinstance(selector, dict):
        return errs
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return [invalid_raw("spec.selector", selector_string(selector),
                            f"empty selector is invalid for {kind_word}")]
    labels = _template_labels(spec)
    try:
        matches = selectors.LabelSelector.from_object(selector).matches(labels or {})
    except (selectors.SelectorError, ValueError, TypeError, AttributeError):
        return []
    if not matches:
        return [invalid_raw("spec.template.metadata.labels", go_value(labels),
                            _SELECTOR_MISMATCH)]
    return []


def template_errors(spec, path="spec.template", restart_policies=("Always",),
                    owner="ReplicaSet"):
    """ValidatePodTemplateSpecForReplicaSet (or a Job's): labels, restart policy, deadline.

    A missing template reads as Go's zero template: its empty pod spec is reported
    by the pod spec checks, its missing restartPolicy defaulted as Kubernetes does.
    """
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required(path, "")] if owner == "ReplicationController" else []
    metadata = template.get("metadata") or {}
    errs = label_errors(metadata.get("labels"), f"{path}.metadata.labels")
    pod_spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    # Kubernetes defaults every pod spec's restartPolicy to Always, templates' too.
    policy = pod_spec.get("restartPolicy") or "Always"
    if policy not in restart_policies:
        errs.append(not_supported(f"{path}.spec.restartPolicy", policy, restart_policies))
    if owner and pod_spec.get("activeDeadlineSeconds") is not None:
        message = f"activeDeadlineSeconds in {owner} is not Supported"
        if owner == "DaemonSet":
            errs.append(invalid(f"{path}.spec.activeDeadlineSeconds",
                                pod_spec["activeDeadlineSeconds"], message))
        else:
            errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds", message))
    return errs


def counts(spec, fields, path="spec"):
    errs = []
    for field in fields:
        errs += non_negative(spec.get(field), f"{path}.{field}")
    return errs


def _int_or_percent(value, path):
    """ValidatePositiveIntOrPercent and IsNotMoreThan100Percent, as a rolling update's."""
    if isinstance(value, int) and not isinstance(value, bool):
        return non_negative(value, path)
    if isinstance(value, str):
        text = value[:-1] if value.endswith("%") else None
        if text is None or not text.isdigit():
            return [invalid_raw(path, int_or_string(value), "a valid percent string must be a "
                                "numeric string followed by an ending '%' (e.g. '1%',  or "
                                "'93%', regex used for validation is '[0-9]+%')")]
        if int(text) > 100:
            return [invalid_raw(path, int_or_string(value), "must not be greater than 100%")]
    return []


def not_supported_raw(path, shown, supported):
    """field.NotSupported for a value already rendered (a struct)."""
    choices = ", ".join(f'"{s}"' for s in supported)
    return (path, "FieldValueNotSupported",
            f"Unsupported value: {shown}: supported values: {choices}")


def _is_zero(value):
    return value in (0, "0%", "0")


def _deployment_strategy(strategy):
    if not isinstance(strategy, dict):
        return []
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        shown = _strategy_string("apps.DeploymentStrategy", "apps.RollingUpdateDeployment",
                                 strategy)
        return [not_supported_raw("spec.strategy", shown, ("Recreate", "RollingUpdate"))]
    if not isinstance(rolling, dict):
        return []
    path = "spec.strategy.rollingUpdate"
    errs = (_int_or_percent(rolling.get("maxUnavailable"), f"{path}.maxUnavailable") +
            _int_or_percent(rolling.get("maxSurge"), f"{path}.maxSurge"))
    if _is_zero(rolling.get("maxUnavailable")) and _is_zero(rolling.get("maxSurge")):
        errs.append(invalid_raw(f"{path}.maxUnavailable",
                                int_or_string(rolling.get("maxUnavailable")),
                                "may not be 0 when `maxSurge` is 0"))
    return errs


def spec_of(obj):
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else None


def deployment_errors(obj):
    """ValidateDeploymentSpec."""
    spec = spec_of(obj)
    if spec is None:
        return [required("spec.selector", ""), required("spec.template", "")]
    errs = counts(spec, ("replicas", "minReadySeconds", "revisionHistoryLimit",
                         "progressDeadlineSeconds"))
    errs += workload_selector(spec, "deployment") + template_errors(spec)
    errs += _deployment_strategy(spec.get("strategy"))
    deadline, ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and deadline >= 0 and deadline <= ready:
        errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                            "must be greater than minReadySeconds"))
    return errs


def replicaset_errors(obj):
    """ValidateReplicaSetSpec (its 'empty selector' message says deployment, as Kubernetes')."""
    spec = spec_of(obj)
    if spec is None:
        return [required("spec.selector", ""), required("spec.template", "")]
    return (counts(spec, ("replicas", "minReadySeconds")) +
            workload_selector(spec, "deployment") + template_errors(spec))


def replication_controller_errors(obj):
    """ValidateReplicationControllerSpec: a map selector the template's labels match."""
    spec = spec_of(obj) or {}
    errs = counts(spec, ("minReadySeconds", "replicas"))
    selector = spec.get("selector") or {}
    errs += label_errors(selector, "spec.selector")
    if not selector:
        errs.append(required("spec.selector", ""))
    labels = _template_labels(spec)
    if selector and isinstance(spec.get("template"), dict) and \
            any((labels or {}).get(k) != v for k, v in selector.items()):
        errs.append(invalid_raw("spec.template.metadata.labels", go_value(labels),
                                _SELECTOR_MISMATCH))
    return errs + template_errors(spec, owner="ReplicationController")


def statefulset_errors(obj):
    """ValidateStatefulSetSpec."""
    spec = spec_of(obj)
    if spec is None:
        return [required("spec.selector", ""), required("spec.template", "")]
    errs = counts(spec, ("replicas", "minReadySeconds", "revisionHistoryLimit"))
    policy = spec.get("podManagementPolicy")
    if policy not in (None, "OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", policy,
                            "must be 'OrderedReady' or 'Parallel'"))
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") not in (None, "RollingUpdate", "OnDelete"):
        errs.append(invalid_raw("spec.updateStrategy", _strategy_string(
            "apps.StatefulSetUpdateStrategy", "apps.RollingUpdateStatefulSetStrategy", strategy),
            "must be 'RollingUpdate' or 'OnDelete'"))
    return (errs + workload_selector(spec, "statefulset") +
            template_errors(spec, owner="StatefulSet"))


def daemonset_errors(obj):
    """ValidateDaemonSetSpec."""
    spec = spec_of(obj)
    if spec is None:
        return [required("spec.selector", ""), required("spec.template", "")]
    errs = counts(spec, ("minReadySeconds", "revisionHistoryLimit"))
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type") not in (None, "RollingUpdate", "OnDelete"):
        errs.append(not_supported_raw("spec.updateStrategy", _strategy_string(
            "apps.DaemonSetUpdateStrategy", "apps.RollingUpdateDaemonSet", strategy),
            ("RollingUpdate", "OnDelete")))
    return (errs + workload_selector(spec, "daemonset") +
            template_errors(spec, owner="DaemonSet"))


# -- updates --------------------------------------------------------------------------


def selector_update_errors(new, old):
    """The selector of a Deployment, ReplicaSet, DaemonSet or StatefulSet never changes."""
    new_sel, old_sel = (spec_of(new) or {}).get("selector"), (spec_of(old) or {}).get("selector")
    return immutable(new_sel, old_sel, "spec.selector", selector_string(new_sel))


def statefulset_update_errors(new, old):
    """ValidateStatefulSetUpdate: only the fields Kubernetes lists may change."""
    new_spec, old_spec = spec_of(new) or {}, spec_of(old) or {}
    fixed = {k for k in set(new_spec) | set(old_spec) if k not in _STATEFULSET_MUTABLE}
    if any(new_spec.get(k) != old_spec.get(k) for k in fixed):
        return [forbidden("spec", _STATEFULSET_UPDATE)]
    return []
