"""autoscaling/v1 HorizontalPodAutoscalers served from the v2 storage, on a real API server.

Written through one version and read through the other, watched through v1 (each
event converted), and `kubectl autoscale` (a protobuf POST to autoscaling/v1) then
`kubectl get hpa` with the real kubectl 1.32.
"""

import json
import threading

import pytest

from control.client.errors import BadRequest
from control.objects import autoscaling_v1, kinds

V1 = kinds.lookup("autoscaling", "v1", "horizontalpodautoscalers")
V2 = kinds.lookup("autoscaling", "v2", "horizontalpodautoscalers")
NS = "default"
TIMEOUT = 30


def v1_hpa(name, percent=None, annotations=None):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4}
    if percent is not None:
        spec["targetCPUUtilizationPercentage"] = percent
    metadata = {"name": name, **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata, "spec": spec}


def test_created_through_v1_reads_through_v2_and_back(rest):
    created = rest.create(V1, NS, v1_hpa("one", percent=60))
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"]["targetCPUUtilizationPercentage"] == 60

    stored = rest.get(V2, NS, "one")
    assert stored["apiVersion"] == "autoscaling/v2"
    assert stored["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    assert "annotations" not in stored["metadata"]

    # v2-only fields set through v2 survive a v1 read-modify-write.
    stored["spec"]["metrics"].append({"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}})
    stored["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    rest.update(V2, NS, stored)
    as_v1 = rest.get(V1, NS, "one")
    annotations = as_v1["metadata"]["annotations"]
    assert json.loads(annotations[autoscaling_v1.METRICS]) == [
        {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}]
    assert json.loads(annotations[autoscaling_v1.BEHAVIOR])["ScaleDown"][
        "StabilizationWindowSeconds"] == 30
    as_v1["spec"]["maxReplicas"] = 6
    rest.update(V1, NS, as_v1)
    again = rest.get(V2, NS, "one")
    assert again["spec"]["maxReplicas"] == 6
    assert [m["resource"]["name"] for m in again["spec"]["metrics"]] == ["memory", "cpu"]
    assert again["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
    assert "annotations" not in again["metadata"]


def test_status_through_v1_and_list(rest):
    rest.create(V1, NS, v1_hpa("two"))
    hpa = rest.get(V1, NS, "two")
    hpa["status"] = {"currentReplicas": 2, "desiredReplicas": 3,
                     "currentCPUUtilizationPercentage": 91}
    rest.update_status(V1, NS, hpa)
    stored = rest.get(V2, NS, "two")
    assert stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    assert stored["status"]["desiredReplicas"] == 3
    assert stored["status"]["currentMetrics"][0]["resource"]["current"] == {
        "averageUtilization": 91}
    listed = rest.list(V1, NS)
    assert listed["apiVersion"] == "autoscaling/v1"
    items = listed["items"]
    assert {i["apiVersion"] for i in items} == {"autoscaling/v1"}
    assert "two" in {i["metadata"]["name"] for i in items}


def test_a_v1_body_sent_to_v2_is_refused(rest):
    with pytest.raises(BadRequest) as refused:
        rest.create(V2, NS, v1_hpa("wrong", percent=50))
    assert "the apiVersion of the object (autoscaling/v1) does not match" in str(refused.value)
    assert rest.get(V2, NS, "one")["metadata"]["name"] == "one"      # still serving


def test_watch_on_v1_sees_converted_events(rest):
    revision = rest.get(V2, NS, "one")["metadata"]["resourceVersion"]
    watch = rest.watch(V1, NS, resource_version=revision, timeout_seconds=TIMEOUT,
                       field_selector="metadata.name=one")
    seen = []

    def read():
        for event_type, obj in watch:
            seen.append((event_type, obj))
            if event_type == "MODIFIED":
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stored = rest.get(V2, NS, "one")
        stored["spec"]["metrics"][-1]["resource"]["target"]["averageUtilization"] = 75
        rest.update(V2, NS, stored)
        reader.join(TIMEOUT)
    finally:
        watch.close()
    event_type, obj = seen[-1]
    assert event_type == "MODIFIED"
    assert obj["apiVersion"] == "autoscaling/v1"
    assert obj["spec"]["targetCPUUtilizationPercentage"] == 75
    assert "metrics" not in obj["spec"]


@pytest.mark.kubectl
def test_kubectl_autoscale_then_get_hpa(server):
    server.kubectl("create", "deployment", "web", "--image=nginx:1.27")
    made = server.kubectl("autoscale", "deployment", "web", "--cpu-percent=50", "--min=1",
                          "--max=5")
    assert "horizontalpodautoscaler.autoscaling/web autoscaled" in made.stdout
    table = server.kubectl("get", "hpa", "web").stdout
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                              "REPLICAS", "AGE"]
    assert row.split()[:6] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "5"]
    v1_target = server.kubectl("get", "horizontalpodautoscalers.v1.autoscaling", "web", "-o",
                             "jsonpath={.spec.targetCPUUtilizationPercentage}").stdout
    assert v1_target == "50"
    v2_metric = server.kubectl("get", "horizontalpodautoscalers.v2.autoscaling", "web", "-o",
                               "jsonpath={.spec.metrics[0].resource.target.averageUtilization}")
    assert v2_metric.stdout == "50"


@pytest.mark.kubectl
def test_kubectl_server_side_apply_and_patch_on_v1(server):
    manifest = ("apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\n"
                "metadata: {name: applied}\n"
                "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n"
                "  maxReplicas: 3\n  targetCPUUtilizationPercentage: PERCENT\n")
    server.kubectl("apply", "--server-side", "-f", "-", input=manifest.replace("PERCENT", "40"))
    server.kubectl("apply", "--server-side", "-f", "-", input=manifest.replace("PERCENT", "45"))
    server.kubectl("patch", "hpa", "applied", "-p", '{"spec": {"maxReplicas": 9}}')
    stored = server.kubectl("get", "horizontalpodautoscalers.v2.autoscaling", "applied", "-o",
                            "jsonpath={.spec.maxReplicas} {.spec.metrics[0].resource.target."
                            "averageUtilization}").stdout
    assert stored == "9 45"
