"""HPA validation, defaults and `kubectl get hpa` columns, as Kubernetes words them."""

import copy

import pytest

from control.api import printers_autoscaling as printers
from control.objects import defaults, validation_kinds

VALID = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
         "metadata": {"name": "web", "namespace": "default"},
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "web"},
                  "minReplicas": 1, "maxReplicas": 5,
                  "metrics": [{"type": "Resource", "resource": {
                      "name": "cpu", "target": {"type": "Utilization",
                                                "averageUtilization": 50}}}]}}


def errors(change):
    obj = copy.deepcopy(VALID)
    change(obj["spec"])
    return [(path, message) for path, _, message in
            validation_kinds.errors_for("HorizontalPodAutoscaler", obj, True)]


def _set(**fields):
    return lambda spec: spec.update(fields)


def _metric(metric):
    return lambda spec: spec.update(metrics=[metric])


def _rules(rules):
    return lambda spec: spec.update(behavior={"scaleUp": rules})


CASES = [
    ("valid", lambda spec: None, []),
    ("min 0", _set(minReplicas=0),
     [("spec.minReplicas", "Invalid value: 0: must be greater than or equal to 1")]),
    ("max 0", _set(maxReplicas=0), [
        ("spec.maxReplicas", "Invalid value: 0: must be greater than 0"),
        ("spec.maxReplicas", "Invalid value: 0: must be greater than or equal to `minReplicas`")]),
    ("max below min", _set(minReplicas=4, maxReplicas=3),
     [("spec.maxReplicas", "Invalid value: 3: must be greater than or equal to `minReplicas`")]),
    ("no target", _set(scaleTargetRef={"apiVersion": "apps/v1"}),
     [("spec.scaleTargetRef.kind", "Required value"),
      ("spec.scaleTargetRef.name", "Required value")]),
    ("target name with slash", _set(scaleTargetRef={"kind": "Deployment", "name": "a/b"}),
     [("spec.scaleTargetRef.name", "Invalid value: \"a/b\": may not contain '/'")]),
    ("unknown metric type", _metric({"type": "Magic"}),
     [("spec.metrics[0].type", 'Unsupported value: "Magic": supported values: '
       '"ContainerResource", "External", "Object", "Pods", "Resource"')]),
    ("resource missing", _metric({"type": "Resource"}),
     [("spec.metrics[0].resource",
       "Required value: must populate information for the given metric source")]),
    ("two sources", _metric({"type": "Resource", "pods": {"metric": {"name": "x"},
                             "target": {"type": "AverageValue", "averageValue": "1"}},
                             "resource": VALID["spec"]["metrics"][0]["resource"]}),
     [("spec.metrics[0].pods", "Forbidden: must populate the given metric source only")]),
    ("no target value", _metric({"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization"}}}),
     [("spec.metrics[0].resource.target.averageUtilization",
       "Required value: must set either a target raw value or a target utilization")]),
    ("both target values", _metric({"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 5,
                                  "averageValue": "100m"}}}),
     [("spec.metrics[0].resource.target.averageValue",
       "Forbidden: may not set both a target raw value and a target utilization")]),
    ("utilization 0", _metric({"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}),
     [("spec.metrics[0].resource.target.averageUtilization",
       "Invalid value: 0: must be greater than 0")]),
    ("negative average value", _metric({"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "AverageValue", "averageValue": "-1Mi"}}}),
     [("spec.metrics[0].resource.target.averageValue",
       'Invalid value: "-1Mi": must be positive')]),
    ("bad target type", _metric({"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Most", "averageUtilization": 5}}}),
     [("spec.metrics[0].resource.target.type",
       'Invalid value: "Most": must be either Utilization, Value, or AverageValue')]),
    ("container resource without container", _metric({"type": "ContainerResource",
                                                      "containerResource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 5}}}),
     [("spec.metrics[0].containerResource.container",
       "Required value: must specify a container")]),
    ("window too long", _rules({"stabilizationWindowSeconds": 3601, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 15}]}),
     [("spec.behavior.scaleUp.stabilizationWindowSeconds",
       "Invalid value: 3601: must be less than or equal to 3600")]),
    ("negative window", _rules({"stabilizationWindowSeconds": -1, "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 15}]}),
     [("spec.behavior.scaleUp.stabilizationWindowSeconds",
       "Invalid value: -1: must be greater than or equal to zero")]),
    ("bad select policy", _rules({"selectPolicy": "Most", "policies": [
        {"type": "Pods", "value": 1, "periodSeconds": 15}]}),
     [("spec.behavior.scaleUp.selectPolicy",
       'Unsupported value: "Most": supported values: "Disabled", "Max", "Min"')]),
    ("no policies", _rules({"policies": []}),
     [("spec.behavior.scaleUp.policies", "Required value: must specify at least one Policy")]),
    ("bad policy", _rules({"policies": [{"type": "Nodes", "value": 0, "periodSeconds": 1801}]}),
     [("spec.behavior.scaleUp.policies[0].type",
       'Unsupported value: "Nodes": supported values: "Percent", "Pods"'),
      ("spec.behavior.scaleUp.policies[0].value", "Invalid value: 0: must be greater than zero"),
      ("spec.behavior.scaleUp.policies[0].periodSeconds",
       "Invalid value: 1801: must be less than or equal to 1800")]),
]


@pytest.mark.parametrize("case,change,expected", CASES, ids=[c[0] for c in CASES])
def test_validation(case, change, expected):
    assert errors(change) == expected


def test_defaults_fill_min_metrics_and_partial_behavior():
    obj = copy.deepcopy(VALID)
    del obj["spec"]["minReplicas"], obj["spec"]["metrics"]
    obj["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    spec = defaults.apply_defaults(obj)["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert spec["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 30, "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert spec["behavior"]["scaleUp"]["policies"][0] == {"type": "Pods", "value": 4,
                                                          "periodSeconds": 15}
    # No behavior stays no behavior (the controller applies the defaults).
    assert "behavior" not in defaults.apply_defaults(VALID)["spec"]


@pytest.mark.parametrize("metrics,current,expected", [
    ([], [], "<none>"),
    (VALID["spec"]["metrics"], [], "cpu: <unknown>/50%"),
    (VALID["spec"]["metrics"], [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 40, "averageValue": "20m"}}}],
     "cpu: 40%/50%"),
    ([{"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "100Mi"}}}],
     [{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "12Mi"}}}],
     "memory: 12Mi/100Mi"),
    (VALID["spec"]["metrics"] * 3, [], "cpu: <unknown>/50%, cpu: <unknown>/50% + 1 more..."),
])
def test_targets_column(metrics, current, expected):
    assert printers.format_targets(metrics, current) == expected


def test_hpa_row():
    obj = {**VALID, "status": {"currentReplicas": 2}}
    row = printers.print_hpa(obj, now=None)
    assert row[:6] == ["web", "Deployment/web", "cpu: <unknown>/50%", 1, 5, 2]
    assert [c["name"] for c in printers.HPA_COLUMNS] == [
        "Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
