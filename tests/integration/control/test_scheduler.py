"""steer-scheduler against a real store and API server: binding, failures, handover."""


import pytest

from control.client import NotFound
from control.objects.kinds import EVENTS, LEASES, NODES, PODS
from tests.support.apiproc import eventually
from tests.support.controlplane import create_namespace

TAINT = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def rest(server):
    client = server.rest_client(timeout=10)
    for i in range(3):
        make_node(client, f"node-{i}", taints=[TAINT] if i == 2 else None)
    yield client
    client.close()


def make_node(rest, name, cpu="2", taints=None):
    """Create a Ready node, as an agent would register one (object, then status)."""
    rest.create(NODES, None, {"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": name,
                                           "labels": {"kubernetes.io/hostname": name}},
                              "spec": {"taints": taints} if taints else {}})
    node = rest.get(NODES, None, name)
    resources = {"cpu": cpu, "memory": "4Gi", "pods": "110"}
    node["status"] = {"allocatable": resources, "capacity": resources,
                      "conditions": [{"type": "Ready", "status": "True",
                                      "reason": "KubeletReady"}]}
    rest.update_status(NODES, None, node)


def make_pod(rest, ns, name, cpu="100m"):
    return rest.create(PODS, ns, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox",
                                 "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}})


def bound(rest, ns):
    pods = rest.list(PODS, ns)["items"]
    return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}


def lease_holder(rest):
    try:
        return rest.get(LEASES, "kube-system", "steer-scheduler")["spec"].get("holderIdentity")
    except NotFound:
        return None


def test_pods_are_bound_spread_and_kept_off_tainted_nodes(rest, schedulers):
    ns = create_namespace(rest, "spread")
    schedulers.start("only")
    for i in range(10):
        make_pod(rest, ns, f"web-{i}")
    placed = eventually(lambda: (lambda b: b if all(b.values()) and len(b) == 10 else None)(
        bound(rest, ns)), message="10 bound pods", logs=schedulers.logs)
    nodes = list(placed.values())
    assert "node-2" not in nodes
    assert sorted(nodes.count(n) for n in ("node-0", "node-1")) == [5, 5]
    pod = rest.get(PODS, ns, "web-0")
    assert any(c["type"] == "PodScheduled" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions", []))


def test_a_pod_that_fits_nowhere_gets_failed_scheduling(rest, schedulers):
    ns = create_namespace(rest, "toobig")
    schedulers.start("only")
    make_pod(rest, ns, "huge", cpu="100")

    def failed_event():
        events = [e for e in rest.list(EVENTS, ns)["items"]
                  if e.get("reason") == "FailedScheduling"
                  and e["involvedObject"]["name"] == "huge"]
        return events[0] if events else None

    event = eventually(failed_event, message="a FailedScheduling event", logs=schedulers.logs)
    assert event["type"] == "Warning" and event["count"] >= 1
    assert event["involvedObject"]["kind"] == "Pod"
    assert event["message"] == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                                "{dedicated: infra}, 2 Insufficient cpu.")
    assert event["firstTimestamp"] and event["lastTimestamp"]

    def condition():
        pod = rest.get(PODS, ns, "huge")
        return next((c for c in (pod.get("status") or {}).get("conditions", [])
                     if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    found = eventually(condition, message="PodScheduled=False", logs=schedulers.logs)
    assert found["reason"] == "Unschedulable" and found["message"] == event["message"]
    assert not rest.get(PODS, ns, "huge")["spec"].get("nodeName")
    # Retried with backoff: the same event is counted again, not duplicated.
    eventually(lambda: (failed_event() or {}).get("count", 0) >= 2, message="count 2",
               logs=schedulers.logs)
    assert len([e for e in rest.list(EVENTS, ns)["items"]
                if e.get("reason") == "FailedScheduling"]) == 1
    # A node big enough appears: the node event requeues the unschedulable pod.
    make_node(rest, "node-big", cpu="128")
    try:
        eventually(lambda: rest.get(PODS, ns, "huge")["spec"].get("nodeName") == "node-big",
                   message="huge bound to node-big", logs=schedulers.logs)
    finally:
        rest.delete(NODES, None, "node-big")


@pytest.mark.fault
def test_killing_the_leader_hands_over(rest, schedulers):
    ns = create_namespace(rest, "handover")
    schedulers.start("first")
    eventually(lambda: lease_holder(rest) == "first", message="first leads",
               logs=schedulers.logs)
    schedulers.start("second")
    for i in range(3):
        make_pod(rest, ns, f"before-{i}")
    eventually(lambda: len(bound(rest, ns)) == 3 and all(bound(rest, ns).values()),
               message="pods bound by the first leader", logs=schedulers.logs)
    schedulers.kill("first")
    for i in range(5):
        make_pod(rest, ns, f"after-{i}")
    eventually(lambda: len(bound(rest, ns)) == 8 and all(bound(rest, ns).values()),
               message="pods bound after the handover", logs=schedulers.logs)
    assert lease_holder(rest) == "second"
    assert "node-2" not in bound(rest, ns).values()
