"""The hollow nodes other tests rely on: registration, leases, pods run and deleted."""

import pytest

from control.client import NotFound
from control.objects.kinds import LEASES, NODES, PODS
from tests.support.apiproc import eventually
from tests.support.hollow_nodes import HollowNodes


@pytest.fixture
def hollow(server):
    nodes = HollowNodes(server.url, ["hollow-a", "hollow-b"], cpu="2", renew_interval=0.3,
                        client_kwargs=server.client_kwargs)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


def bound_pod(rest, name, node):
    return rest.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})


def condition(obj, kind):
    return next((c["status"] for c in obj.get("status", {}).get("conditions", [])
                 if c["type"] == kind), None)


def test_nodes_register_renew_and_run_pods(rest, hollow):
    for name in ("hollow-a", "hollow-b"):
        node = rest.get(NODES, None, name)
        assert condition(node, "Ready") == "True"
        assert node["status"]["allocatable"]["cpu"] == "2"
    first = rest.get(LEASES, "kube-node-lease", "hollow-a")["spec"]["renewTime"]
    eventually(lambda: rest.get(LEASES, "kube-node-lease", "hollow-a")["spec"]["renewTime"]
               != first, message="a lease renewal")

    bound_pod(rest, "runs", "hollow-a")
    pod = eventually(lambda: (lambda p: p if condition(p, "Ready") == "True" else None)(
        rest.get(PODS, "default", "runs")), message="pod Running and Ready")
    assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"]
    assert pod["status"]["containerStatuses"][0]["ready"] is True

    hollow.set_ready("default", "runs", False)
    eventually(lambda: condition(rest.get(PODS, "default", "runs"), "Ready") == "False",
               message="pod made unready")

    rest.delete(PODS, "default", "runs")

    def gone():
        try:
            rest.get(PODS, "default", "runs")
        except NotFound:
            return True
        return False
    eventually(gone, message="a graceful delete confirmed by the hollow agent")


def test_a_stopped_node_leaves_its_pods_alone_until_it_returns(rest, hollow):
    hollow.stop_node("hollow-b")
    bound_pod(rest, "waits", "hollow-b")
    bound_pod(rest, "control", "hollow-a")
    eventually(lambda: condition(rest.get(PODS, "default", "control"), "Ready") == "True",
               message="the live node's pod ready")
    # The live node's pod was handled after the dead node's was created: still untouched.
    assert not rest.get(PODS, "default", "waits").get("status", {}).get("podIP")
    hollow.start_node("hollow-b")
    eventually(lambda: condition(rest.get(PODS, "default", "waits"), "Ready") == "True",
               message="the returning node runs its pod")
    for name in ("waits", "control"):
        rest.delete(PODS, "default", name, grace_period_seconds=0)
