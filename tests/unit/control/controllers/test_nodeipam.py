"""Node IPAM: one free subnet per node, round-robin reuse, exhaustion, rebuild on restart."""

import pytest

from control.controllers.nodeipam import CidrExhausted, CidrSet, NodeIpamController
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((obj["metadata"]["name"], event_type, reason, message))


def node(name, cidr=None, conditions=None):
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "resourceVersion": "1"}, "spec": spec,
            "status": {"conditions": conditions or []}}


def make(nodes=(), cluster_cidr="10.244.0.0/16", mask=24):
    rest, recorder, informer = FakeRest(), Recorder(), FakeInformer(nodes)
    controller = NodeIpamController(rest, informer, cluster_cidr, mask, recorder=recorder)
    return controller, rest, informer, recorder


def given(rest):
    """node name -> podCIDR from the spec patches written."""
    return {a[3]: a[4]["spec"]["podCIDR"] for a in rest.of("patch") if "spec" in a[4]}


def test_cidr_set_hands_out_subnets_in_order_round_robin():
    cidrs = CidrSet("10.0.0.0/24", 26)
    assert [cidrs.allocate_next() for _ in range(3)] == \
        ["10.0.0.0/26", "10.0.0.64/26", "10.0.0.128/26"]
    cidrs.release("10.0.0.0/26")
    # The search continues after the last subnet given: the released one comes last.
    assert cidrs.allocate_next() == "10.0.0.192/26"
    assert cidrs.allocate_next() == "10.0.0.0/26"
    with pytest.raises(CidrExhausted):
        cidrs.allocate_next()


@pytest.mark.parametrize("cluster, mask", [("10.0.0.0/24", 16), ("10.0.0.0/8", 26),
                                           ("10.0.0.1/24", 26), ("nonsense", 24)])
def test_cidr_set_refuses_bad_flags(cluster, mask):
    with pytest.raises(ValueError):
        CidrSet(cluster, mask)


def test_cidr_set_ipv6():
    cidrs = CidrSet("fd00::/48", 64)
    assert cidrs.allocate_next() == "fd00::/64"
    assert cidrs.allocate_next() == "fd00:0:0:1::/64"


def test_cidr_set_occupy_ignores_foreign_subnets():
    cidrs = CidrSet("10.0.0.0/24", 26)
    assert cidrs.occupy("10.0.0.64/26") and cidrs.used() == 1
    assert not cidrs.occupy("192.168.0.0/26") and not cidrs.occupy("10.0.0.0/25")
    assert cidrs.allocate_next() == "10.0.0.0/26"
    assert cidrs.allocate_next() == "10.0.0.128/26"


def test_each_node_gets_a_distinct_subnet_in_both_fields():
    controller, rest, *_ = make([node("n1"), node("n2"), node("n3")])
    for name in ("n1", "n2", "n3"):
        controller.sync(name)
    assert given(rest) == {"n1": "10.244.0.0/24", "n2": "10.244.1.0/24", "n3": "10.244.2.0/24"}
    patch = rest.of("patch")[0][4]
    assert patch == {"spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]}}


def test_a_node_is_not_given_a_second_subnet_before_the_informer_shows_the_first():
    controller, rest, *_ = make([node("n1")])
    controller.sync("n1")
    controller.sync("n1")       # e.g. a status update arrived before our patch's event
    assert len(rest.of("patch")) == 1


def test_a_node_with_a_subnet_keeps_it():
    controller, rest, *_ = make([node("n1", "10.244.7.0/24")])
    controller.sync("n1")
    assert rest.actions == []


def test_restart_rebuilds_the_used_set_from_nodes():
    nodes = [node("a", "10.244.0.0/24"), node("b", "10.244.1.0/24"), node("c")]
    controller, rest, *_ = make(nodes)
    controller.sync("c")
    assert given(rest) == {"c": "10.244.2.0/24"}


def test_a_deleted_nodes_subnet_is_reused_and_waiting_nodes_retry():
    controller, rest, informer, recorder = make([node("a"), node("b"), node("c")],
                                                "10.0.0.0/24", 25)
    for name in ("a", "b", "c"):
        controller.sync(name)
    assert given(rest) == {"a": "10.0.0.0/25", "b": "10.0.0.128/25"}
    assert recorder.events == [("c", "Warning", "CIDRNotAvailable",
                                "Node c status is now: CIDRNotAvailable")]
    [status] = [a[4] for a in rest.of("patch") if "status" in a[4]]
    cond = status["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == \
        ("NetworkUnavailable", "True", "NoCIDRAvailable")
    assert len(controller.queue) == 0       # no retry loop while nothing is free
    informer.put(node("a", "10.0.0.0/25"))
    informer.put(node("b", "10.0.0.128/25"))
    informer.remove(node("b", "10.0.0.128/25"))
    while len(controller.queue):
        controller.process_next(timeout=0)
    assert given(rest)["c"] == "10.0.0.128/25"


def test_network_unavailable_set_for_want_of_a_subnet_is_cleared_once_given():
    mine = {"type": "NetworkUnavailable", "status": "True", "reason": "NoCIDRAvailable"}
    controller, rest, *_ = make([node("n1", "10.244.0.0/24", [mine])])
    controller.sync("n1")
    [patch] = [a[4] for a in rest.of("patch")]
    cond = patch["status"]["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "RouteCreated")


def test_someone_elses_network_unavailable_is_left_alone():
    theirs = {"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated"}
    controller, rest, *_ = make([node("n1", "10.244.0.0/24", [theirs])])
    controller.sync("n1")
    assert rest.actions == []
