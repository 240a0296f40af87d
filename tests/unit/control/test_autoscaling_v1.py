"""autoscaling/v1 <-> v2 HorizontalPodAutoscaler conversion, as Kubernetes converts it."""

import copy
import json

from control.objects.autoscaling_v1 import (
    BEHAVIOR,
    CONDITIONS,
    CURRENT_METRICS,
    METRICS,
    behavior_from_annotation,
    from_v1,
    to_v1,
)

REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
CONDITION = {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
             "message": "recommended size matches current size",
             "lastTransitionTime": "2026-11-22T10:00:00Z"}


def cpu(percent):
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": percent}}}


def full_v2():
    """A v2 HPA using every field v1 cannot express."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"team": "a"}},
        "spec": {
            "scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "memory", "target": {
                    "type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "ContainerResource", "containerResource": {
                    "name": "cpu", "container": "app",
                    "target": {"type": "Utilization", "averageUtilization": 70}}},
                {"type": "Pods", "pods": {
                    "metric": {"name": "rps", "selector": {"matchLabels": {"a": "b"}}},
                    "target": {"type": "AverageValue", "averageValue": "10"}}},
                {"type": "Object", "object": {
                    "describedObject": {"apiVersion": "networking.k8s.io/v1",
                                        "kind": "Ingress", "name": "main"},
                    "metric": {"name": "hits"},
                    "target": {"type": "Value", "value": "2k"}}},
                {"type": "External", "external": {
                    "metric": {"name": "queue", "selector": {"matchLabels": {"q": "jobs"}}},
                    "target": {"type": "AverageValue", "averageValue": "30"}}},
                cpu(55),
            ],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                "scaleDown": {"selectPolicy": "Min",
                              "policies": [{"type": "Percent", "value": 50,
                                            "periodSeconds": 60}]}},
        },
        "status": {
            "observedGeneration": 3, "lastScaleTime": "2026-11-22T09:00:00Z",
            "currentReplicas": 4, "desiredReplicas": 5,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {
                    "averageValue": "120m", "averageUtilization": 61}}},
                {"type": "Pods", "pods": {"metric": {"name": "rps"},
                                          "current": {"averageValue": "12"}}},
                {"type": "Object", "object": {
                    "describedObject": {"kind": "Ingress", "name": "main"},
                    "metric": {"name": "hits"}, "current": {"value": "3k"}}},
                {"type": "External", "external": {"metric": {"name": "queue"},
                                                  "current": {"value": "0",
                                                              "averageValue": "25"}}},
            ],
            "conditions": [CONDITION],
        },
    }


def test_the_cpu_percentage_is_a_resource_cpu_utilization_metric():
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5,
                   "targetCPUUtilizationPercentage": 50},
          "status": {"currentReplicas": 2, "desiredReplicas": 3,
                     "currentCPUUtilizationPercentage": 42}}
    v2 = from_v1(v1)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"] == {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5,
                          "metrics": [cpu(50)]}
    assert v2["status"]["currentMetrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 42}}}]
    back = to_v1(v2)
    assert back["spec"] == v1["spec"]
    assert back["status"]["currentCPUUtilizationPercentage"] == 42
    assert back["status"]["currentReplicas"] == 2 and back["status"]["desiredReplicas"] == 3
    # The raw current metric is kept too (upstream saves it even when it maps to cpu).
    assert json.loads(back["metadata"]["annotations"][CURRENT_METRICS]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 42,
                                          "currentAverageValue": "0"}}]
    assert set(back["metadata"]["annotations"]) == {CURRENT_METRICS}


def test_no_metric_at_all_gets_the_v1_default_of_80_percent_cpu():
    v2 = from_v1({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                  "metadata": {"name": "web"},
                  "spec": {"scaleTargetRef": REF, "maxReplicas": 3}})
    assert v2["spec"]["metrics"] == [cpu(80)]
    assert to_v1(v2)["spec"]["targetCPUUtilizationPercentage"] == 80


def test_v2_to_v1_and_back_loses_nothing():
    original = full_v2()
    v1 = to_v1(copy.deepcopy(original))
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 10,
                          "targetCPUUtilizationPercentage": 55}
    assert v1["status"]["currentCPUUtilizationPercentage"] == 61
    annotations = v1["metadata"]["annotations"]
    assert set(annotations) == {"team", METRICS, CURRENT_METRICS, BEHAVIOR, CONDITIONS}
    back = from_v1(v1)
    # The cpu metric comes back last (after the annotation's), as upstream orders it.
    assert back == original


def test_v1_to_v2_and_back_loses_nothing():
    v1 = to_v1(full_v2())
    assert to_v1(from_v1(copy.deepcopy(v1))) == v1


def test_the_annotations_hold_v1_metric_shapes():
    annotations = to_v1(full_v2())["metadata"]["annotations"]
    metrics = json.loads(annotations[METRICS])
    assert metrics[0] == {"type": "Resource", "resource": {"name": "memory",
                                                           "targetAverageValue": "100Mi"}}
    assert metrics[1]["containerResource"] == {"name": "cpu", "targetAverageUtilization": 70,
                                               "container": "app"}
    assert metrics[2]["pods"] == {"metricName": "rps", "targetAverageValue": "10",
                                  "selector": {"matchLabels": {"a": "b"}}}
    assert metrics[3]["object"] == {"target": {"kind": "Ingress", "name": "main",
                                               "apiVersion": "networking.k8s.io/v1"},
                                    "metricName": "hits", "targetValue": "2k"}
    assert metrics[4]["external"] == {"metricName": "queue",
                                      "metricSelector": {"matchLabels": {"q": "jobs"}},
                                      "targetAverageValue": "30"}
    assert len(metrics) == 5        # the cpu utilization metric is the v1 field instead
    assert json.loads(annotations[CONDITIONS]) == [CONDITION]


def test_the_behavior_annotation_has_go_field_names_and_reads_back_ignoring_case():
    behavior = json.loads(to_v1(full_v2())["metadata"]["annotations"][BEHAVIOR])
    assert behavior["ScaleDown"] == {"StabilizationWindowSeconds": None, "SelectPolicy": "Min",
                                     "Policies": [{"Type": "Percent", "Value": 50,
                                                   "PeriodSeconds": 60}]}
    assert behavior_from_annotation('{"scaleup": {"selectpolicy": "Disabled"}}') == {
        "scaleUp": {"selectPolicy": "Disabled"}}
    assert behavior_from_annotation('{"ScaleUp": null, "ScaleDown": null}') is None


def test_round_trip_annotations_on_a_v2_object_are_replaced_not_kept():
    v2 = full_v2()
    v2["metadata"]["annotations"][METRICS] = "[]"
    v2["metadata"]["annotations"][BEHAVIOR] = "stale"
    v1 = to_v1(v2)
    assert len(json.loads(v1["metadata"]["annotations"][METRICS])) == 5
    assert from_v1(v1)["metadata"]["annotations"] == {"team": "a"}


def test_unreadable_annotations_are_ignored():
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web", "annotations": {
              METRICS: "{not json", BEHAVIOR: "[1, 2]", CURRENT_METRICS: "7",
              CONDITIONS: '"a string"'}},
          "spec": {"scaleTargetRef": REF, "maxReplicas": 3,
                   "targetCPUUtilizationPercentage": 20}}
    v2 = from_v1(v1)
    assert v2["spec"]["metrics"] == [cpu(20)] and "behavior" not in v2["spec"]
    assert v2["status"] == {"desiredReplicas": 0}
    assert "annotations" not in v2["metadata"]


def test_the_last_cpu_reading_sets_the_current_percentage():
    v2 = full_v2()
    v2["status"]["currentMetrics"].append({"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 99}}})
    assert to_v1(v2)["status"]["currentCPUUtilizationPercentage"] == 99
