"""The placement function: every filter, every score, the reason summary, batches."""


import pytest

from control.objects.taints import tolerates
from control.scheduler.placement import schedule
from control.scheduler.snapshot import Snapshot, pod_requests


def node(name, cpu="2", memory="4Gi", pods="110", ready="True", labels=None, taints=None,
         unschedulable=False):
    obj = {"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": labels or {}},
           "spec": {"taints": taints or [], "unschedulable": unschedulable},
           "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                      "conditions": [{"type": "Ready", "status": ready}] if ready else []}}
    return obj


def pod(name="p", cpu=None, memory=None, node_name=None, owner=None, init=(), host_port=None,
        node_selector=None, affinity=None, tolerations=None, phase=None, **spec):
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    container = {"name": "c", "image": "i", "resources": {"requests": requests}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"containers": [container], **spec}, "status": {}}
    if init:
        obj["spec"]["initContainers"] = [dict(c) for c in init]
    if node_name:
        obj["spec"]["nodeName"] = node_name
    if owner:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                               "name": owner, "uid": owner, "controller": True}]
    if node_selector:
        obj["spec"]["nodeSelector"] = node_selector
    if affinity is not None:
        obj["spec"]["affinity"] = {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": affinity}}}
    if tolerations is not None:
        obj["spec"]["tolerations"] = tolerations
    if phase:
        obj["status"]["phase"] = phase
    return obj


def snap(*nodes, pods=()):
    return Snapshot.from_objects(nodes, pods)


# -- filters -----------------------------------------------------------------------------
@pytest.mark.parametrize("the_node, the_pod, reasons", [
    (node("n"), pod(), []),
    (node("n", ready="False"), pod(), ["node(s) were not ready"]),
    (node("n", ready="Unknown"), pod(), ["node(s) were not ready"]),
    (node("n", ready=None), pod(), ["node(s) were not ready"]),
    (node("n", unschedulable=True), pod(), ["node(s) were unschedulable"]),
    (node("n", unschedulable=True),
     pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                       "effect": "NoSchedule"}]), []),
    (node("n"), pod(cpu="2"), []),
    (node("n"), pod(cpu="2001m"), ["Insufficient cpu"]),
    (node("n"), pod(memory="5Gi"), ["Insufficient memory"]),
    (node("n"), pod(cpu="3", memory="5Gi"), ["Insufficient cpu", "Insufficient memory"]),
    (node("n", pods="0"), pod(), ["Too many pods"]),
    (node("n", labels={"disk": "ssd"}), pod(node_selector={"disk": "ssd"}), []),
    (node("n", labels={"disk": "hdd"}), pod(node_selector={"disk": "ssd"}),
     ["node(s) didn't match Pod's node affinity/selector"]),
    (node("n", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]), pod(),
     ["node(s) had untolerated taint {k: v}"]),
    (node("n", taints=[{"key": "k", "effect": "NoExecute"}]), pod(),
     ["node(s) had untolerated taint {k: }"]),
    (node("n", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), pod(), []),
    (node("n", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
     pod(tolerations=[{"key": "k", "operator": "Equal", "value": "v"}]), []),
])
def test_filters(the_node, the_pod, reasons):
    placement = schedule(snap(the_node), the_pod)
    if reasons:
        assert not placement.scheduled
        assert list(placement.reasons["n"]) == reasons
    else:
        assert placement.node_name == "n"


@pytest.mark.parametrize("terms, fits", [
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}], True),
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}], False),
    ([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b"]}]}], True),
    ([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}], False),
    ([{"matchExpressions": [{"key": "gpu", "operator": "NotIn", "values": ["x"]}]}], True),
    ([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}], True),
    ([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}], False),
    ([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}], True),
    ([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}], False),
    ([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}], True),
    ([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}], False),
    ([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["9"]}]}], True),
    ([{"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["1"]}]}], False),
    # expressions in a term are ANDed
    ([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]},
                            {"key": "gpu", "operator": "Exists"}]}], False),
    # terms are ORed
    ([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
      {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}], True),
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}], True),
    ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["m"]}]}], False),
    ([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["m"]}]}], True),
    ([{}], False),      # an empty term matches nothing
    ([], False),
])
def test_required_node_affinity(terms, fits):
    the_node = node("n", labels={"zone": "a", "cores": "8"})
    placement = schedule(snap(the_node), pod(affinity=terms))
    assert placement.scheduled == fits
    if not fits:
        assert placement.reasons["n"] == ("node(s) didn't match Pod's node affinity/selector",)


@pytest.mark.parametrize("toleration, taint, result", [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "j", "operator": "Exists"}, {"key": "k", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
    ({"operator": "Exists", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"}, False),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"},
     {"key": "k", "effect": "NoExecute"}, True),
    ({"key": "k"}, {"key": "k", "effect": "NoSchedule"}, True),     # Equal, both values empty
])
def test_toleration_matching(toleration, taint, result):
    assert tolerates(toleration, taint) is result


def test_host_ports_conflict_with_pods_on_the_node():
    existing = pod("a", node_name="n", host_port=8080)
    assert schedule(snap(node("n"), pods=[existing]), pod(host_port=8081)).scheduled
    placement = schedule(snap(node("n"), pods=[existing]), pod(host_port=8080))
    assert placement.reasons["n"] == (
        "node(s) didn't have free ports for the requested pod ports",)


def test_resources_count_pods_already_on_the_node():
    on_node = [pod("a", cpu="1500m", node_name="n"),
               pod("done", cpu="2", node_name="n", phase="Succeeded")]
    assert schedule(snap(node("n"), pods=on_node), pod(cpu="500m")).scheduled
    assert schedule(snap(node("n"), pods=on_node), pod(cpu="501m")).reasons["n"] == (
        "Insufficient cpu",)
    assert schedule(snap(node("n", pods="1"), pods=on_node), pod()).reasons["n"] == (
        "Too many pods",)


@pytest.mark.parametrize("containers, init, cpu, memory", [
    ([("100m", "64Mi"), ("200m", "64Mi")], [], 300, 128 * 2**20),
    ([("100m", "64Mi")], [("1", "32Mi")], 1000, 64 * 2**20),
    ([("100m", None)], [("50m", "1Gi"), ("20m", "2Gi")], 100, 2 * 2**30),
    # a restartable (sidecar) init container keeps running beside the others
    ([("100m", None)], [("50m", None, "Always"), ("120m", None)], 170, 0),
])
def test_effective_requests(containers, init, cpu, memory):
    def container(spec):
        requests = {k: v for k, v in zip(("cpu", "memory"), spec[:2]) if v}
        c = {"name": "c", "resources": {"requests": requests}}
        if len(spec) > 2:
            c["restartPolicy"] = spec[2]
        return c
    the_pod = {"spec": {"containers": [container(c) for c in containers],
                        "initContainers": [container(c) for c in init]}}
    requests = pod_requests(the_pod)
    assert (requests.cpu, requests.memory, requests.pods) == (cpu, memory, 1)
