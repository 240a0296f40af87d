"""On a process-runtime node every containerPort is a port of the node itself."""

import pytest

from control.scheduler.placement import schedule, schedule_batch
from control.scheduler.snapshot import Snapshot, host_ports, shares_host_network

PORTS = "node(s) didn't have free ports for the requested pod ports"


def node(name, runtime=None):
    labels = {"node.steersman.io/runtime": runtime} if runtime else {}
    return {"metadata": {"name": name, "labels": labels}, "spec": {},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def pod(name, *ports, node_name=None):
    """``ports``: (containerPort, protocol, hostPort) triples; protocol/hostPort may be None."""
    container_ports = []
    for container_port, protocol, host_port in ports:
        port = {"containerPort": container_port}
        if protocol:
            port["protocol"] = protocol
        if host_port:
            port["hostPort"] = host_port
        container_ports.append(port)
    obj = {"metadata": {"name": name, "namespace": "default", "uid": name},
           "spec": {"containers": [{"name": "c", "image": "i", "ports": container_ports}]},
           "status": {}}
    if node_name:
        obj["spec"]["nodeName"] = node_name
    return obj


@pytest.mark.parametrize("runtime,existing,incoming,fits", [
    # process runtime: containerPorts collide like host ports
    ("process", [(8080, None, None)], [(8080, None, None)], False),
    ("process", [(8080, None, None)], [(8081, None, None)], True),
    ("process", [(8080, "TCP", None)], [(8080, "UDP", None)], True),
    ("process", [(8080, None, None)], [(9000, None, 8080)], True),   # binds 9000, not 8080
    ("process", [(53, "UDP", None)], [(53, "UDP", None)], False),
    # other runtimes (and unlabelled nodes): only hostPorts count
    ("fake", [(8080, None, None)], [(8080, None, None)], True),
    (None, [(8080, None, None)], [(8080, None, None)], True),
    ("fake", [(80, None, 8080)], [(81, None, 8080)], False),
    (None, [(80, None, 8080)], [(80, None, 8081)], True),
])
def test_host_port_rule(runtime, existing, incoming, fits):
    snapshot = Snapshot.from_objects([node("n", runtime)],
                                     [pod("old", *existing, node_name="n")])
    placement = schedule(snapshot, pod("new", *incoming))
    assert placement.scheduled == fits
    if not fits:
        assert placement.reasons["n"] == (PORTS,)


def test_two_replicas_on_8080_spread_over_process_nodes():
    snapshot = Snapshot.from_objects([node("a", "process"), node("b", "process")])
    pods = [pod(f"r{i}", (8080, None, None)) for i in range(3)]
    results = schedule_batch(snapshot, pods)
    assert sorted(r.node_name for r in results[:2]) == ["a", "b"]
    assert not results[2].scheduled
    assert set(results[2].reasons.values()) == {(PORTS,)}


def test_helpers():
    assert shares_host_network(node("n", "process"))
    assert not shares_host_network(node("n", "fake")) and not shares_host_network(None)
    p = pod("p", (8080, None, None), (80, "UDP", 8081))
    assert host_ports(p) == {("UDP", "0.0.0.0", 8081)}
    assert host_ports(p, host_network=True) == {("TCP", "0.0.0.0", 8080), ("UDP", "0.0.0.0", 80)}
