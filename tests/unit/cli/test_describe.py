"""describe's page layout: kubectl's blocks, labels, resources and events."""

from datetime import datetime, timedelta, timezone

from cli import describe_kinds, describe_page, describe_pods
from control.objects.quantity import parse_quantity

POD = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web", "b": "2"},
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc",
                                      "controller": True}]},
    "spec": {"nodeName": "n1", "containers": [
        {"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
         "env": [{"name": "A", "value": "1"},
                 {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}]},
    "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.1.0.5",
               "podIPs": [{"ip": "10.1.0.5"}],
               "conditions": [{"type": "Ready", "status": "True"}],
               "containerStatuses": [{"name": "c", "ready": True, "restartCount": 2,
                                      "state": {"running": {
                                          "startedAt": "2026-11-22T04:53:20Z"}}}]},
}


def test_pod_page():
    page = describe_page.Page()
    describe_pods.describe_pod(None, page, POD)
    text = page.text().splitlines()
    # "IPs:" has no value, so (as in Go's tabwriter) it ends the first aligned block.
    assert text[:3] == ["Name:         web-1", "Namespace:    default",
                        "Node:         n1/10.0.0.1"]
    assert "Labels:       app=web" in text and "              b=2" in text
    assert "Controlled By:  ReplicaSet/web-abc" in text
    assert "    Port:           80/TCP" in text
    assert "    State:          Running" in text
    assert "      Started:      Sun, 22 Nov 2026 04:53:20 +0000" in text
    assert "    Restart Count:  2" in text
    assert "      IP:    (v1:status.podIP)" in text
    assert "QoS Class:       BestEffort" in text
    assert any(line.split() == ["Ready", "True"] for line in text)


def test_configmap_page():
    page = describe_page.Page()
    describe_kinds.describe_configmap(None, page, {"metadata": {"name": "cfg", "namespace": "default"},
                                      "data": {"a": "1"}})
    assert page.text().splitlines()[4:] == ["", "Data", "====", "a:", "----", "1", "", "",
                                            "BinaryData", "===="]


def test_events_section_counts_and_ages():
    now = datetime.now(timezone.utc)
    stamp = (now - timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = describe_page.Page()
    describe_page.events_section(page, [{"type": "Warning", "reason": "BackOff", "count": 4,
                             "firstTimestamp": first, "lastTimestamp": stamp,
                             "source": {"component": "kubelet"}, "message": "restarting "}])
    lines = page.text().splitlines()
    assert lines[0] == "Events:"
    assert lines[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert lines[3].split()[:2] == ["Warning", "BackOff"]
    assert "(x4 over 5m" in lines[3] and lines[3].endswith("kubelet  restarting")
    empty = describe_page.Page()
    describe_page.events_section(empty, [])
    assert empty.text() == "Events:  <none>"


def test_labels_resources_and_amounts():
    assert describe_kinds.smart_label("holderIdentity") == "Holder Identity"
    assert describe_kinds.smart_label("uid") == "UID"
    assert describe_kinds.smart_label("podIP") == "Pod IP"
    pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "100m",
                                                               "memory": "64Mi"}}},
                                   {"resources": {"requests": {"cpu": "150m"},
                                                  "limits": {"memory": "1Gi"}}}],
                    "initContainers": [{"resources": {"requests": {"cpu": "1"}}}]}}
    requests, limits = describe_kinds.pod_resources(pod)
    allocatable = {"cpu": "4", "memory": "8Gi"}
    assert describe_kinds.share("cpu", requests, allocatable) == "1 (25%)"
    assert describe_kinds.share("memory", requests, allocatable) == "64Mi (0%)"
    assert describe_kinds.share("memory", limits, allocatable) == "1Gi (12%)"
    assert describe_kinds.share("ephemeral-storage", limits, allocatable) == "0 (0%)"
    assert describe_kinds.format_amount("cpu", parse_quantity("250m")) == "250m"
    assert describe_kinds.format_amount("memory", parse_quantity("1536Mi")) == "1536Mi"
    assert describe_kinds.format_amount("memory", parse_quantity("2Gi")) == "2Gi"


def test_qos_class():
    def spec(*resources):
        return {"containers": [{"resources": r} for r in resources]}
    assert describe_pods.qos_class(spec({})) == "BestEffort"
    both = {"cpu": "1", "memory": "1Gi"}
    assert describe_pods.qos_class(spec({"limits": both})) == "Guaranteed"
    assert describe_pods.qos_class(spec({"limits": both, "requests": both})) == "Guaranteed"
    assert describe_pods.qos_class(spec({"limits": both}, {})) == "Burstable"
    assert describe_pods.qos_class(spec({"requests": {"cpu": "1"}})) == "Burstable"


def test_secret_page_shows_sizes_not_values():
    page = describe_page.Page()
    describe_kinds.describe_secret(None, page, {
        "metadata": {"name": "s", "namespace": "default"}, "type": "Opaque",
        "data": {"password": "aHVudGVyMg=="}})
    text = page.text()
    assert "password:  7 bytes" in text and "hunter2" not in text and "aHVud" not in text
