"""Scores, tie-breaking, the FailedScheduling summary, and batch placement."""

import random

import pytest

from control.scheduler.placement import (
    failure_message,
    schedule,
    schedule_batch,
    score_least_allocated,
    score_spread,
    score_taint_toleration,
)
from control.scheduler.snapshot import Snapshot
from tests.unit.control.scheduler.test_placement import node, pod


def infos(snapshot):
    return list(snapshot.infos.values())


@pytest.mark.parametrize("on_a, wanted, scores", [
    # cpu (2000-1000)*100/2000 = 50, memory (4Gi-1Gi)*100/4Gi = 75: mean 62 (integer maths)
    ([], ("1", "1Gi"), {"a": 62, "b": 62}),
    # a: cpu (2000-1500)*100/2000 = 25, memory (4-2)*100/4 = 50 -> 37; b: 75, 75 -> 75
    ([("1", "1Gi")], ("500m", "1Gi"), {"a": 37, "b": 75}),
])
def test_least_allocated(on_a, wanted, scores):
    pods = [pod(f"a{i}", cpu=c, memory=m, node_name="a") for i, (c, m) in enumerate(on_a)]
    snapshot = Snapshot.from_objects([node("a"), node("b")], pods)
    assert score_least_allocated(infos(snapshot), pod(cpu=wanted[0], memory=wanted[1])) == scores


def test_least_allocated_counts_best_effort_pods_with_defaults():
    # A pod without requests counts as 100m / 200Mi when scoring, so empty pods spread.
    snapshot = Snapshot.from_objects([node("a"), node("b")], [pod("x", node_name="a")])
    got = score_least_allocated(infos(snapshot), pod())
    assert got["b"] > got["a"]


def test_least_allocated_over_capacity_scores_zero():
    snapshot = Snapshot.from_objects([node("a", cpu="0", memory="0")])
    assert score_least_allocated(infos(snapshot), pod(cpu="1")) == {"a": 0}


@pytest.mark.parametrize("counts, owner, scores", [
    ({"a": 2, "b": 1, "c": 0}, "rs1", {"a": 0, "b": 50, "c": 100}),
    ({"a": 0, "b": 0, "c": 0}, "rs1", {"a": 100, "b": 100, "c": 100}),
    ({"a": 3, "b": 1, "c": 0}, None, {"a": 100, "b": 100, "c": 100}),    # no owner: no-op
    ({"a": 3, "b": 1, "c": 0}, "other", {"a": 100, "b": 100, "c": 100}),
])
def test_spread(counts, owner, scores):
    pods = [pod(f"{name}{i}", node_name=name, owner="rs1")
            for name, n in counts.items() for i in range(n)]
    snapshot = Snapshot.from_objects([node(n) for n in counts], pods)
    assert score_spread(infos(snapshot), pod(owner=owner)) == scores


def test_prefer_no_schedule_lowers_the_score():
    soft = [{"key": "k", "effect": "PreferNoSchedule"}]
    snapshot = Snapshot.from_objects([node("a", taints=soft), node("b")])
    assert score_taint_toleration(infos(snapshot), pod()) == {"a": 0, "b": 100}
    tolerant = pod(tolerations=[{"key": "k", "operator": "Exists"}])
    assert score_taint_toleration(infos(snapshot), tolerant) == {"a": 100, "b": 100}
    # "a" would win the name tie-break; the soft taint sends the pod to "b".
    assert schedule(snapshot, pod()).node_name == "b"


def test_ties_go_to_the_first_name_or_the_rng():
    snapshot = Snapshot.from_objects([node("c"), node("a"), node("b")])
    assert schedule(snapshot, pod()).node_name == "a"
    chosen = {schedule(snapshot, pod(), rng=random.Random(seed)).node_name for seed in range(30)}
    assert chosen == {"a", "b", "c"}


def test_scores_are_reported_for_feasible_nodes():
    snapshot = Snapshot.from_objects([node("a"), node("b", ready="False")])
    placement = schedule(snapshot, pod())
    assert set(placement.scores) == {"a"} and set(placement.reasons) == {"b"}


@pytest.mark.parametrize("reasons, message", [
    ({"a": ["Insufficient cpu"], "b": ["node(s) didn't match Pod's node affinity/selector"],
      "c": ["node(s) didn't match Pod's node affinity/selector"]},
     "0/3 nodes are available: 1 Insufficient cpu, "
     "2 node(s) didn't match Pod's node affinity/selector."),
    ({"a": ["Insufficient cpu", "Insufficient memory"], "b": ["Insufficient cpu"]},
     "0/2 nodes are available: 1 Insufficient memory, 2 Insufficient cpu."),
    ({"a": ["node(s) had untolerated taint {k: v}"]},
     "0/1 nodes are available: 1 node(s) had untolerated taint {k: v}."),
    ({}, "no nodes available to schedule pods"),
])
def test_failure_message(reasons, message):
    assert failure_message(reasons) == message


def test_failure_message_from_schedule():
    snapshot = Snapshot.from_objects([
        node("a", cpu="1", labels={"x": "y"}), node("b"),
        node("c", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])])
    placement = schedule(snapshot, pod(cpu="2", node_selector={"x": "y"}))
    assert placement.message == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: db}.")


def test_batch_does_not_overfill_a_node():
    snapshot = Snapshot.from_objects([node("a", cpu="1"), node("b", cpu="1")])
    placements = schedule_batch(snapshot, [pod(f"p{i}", cpu="400m") for i in range(5)])
    placed = [p.node_name for p in placements]
    assert placed[:4].count("a") == 2 and placed[:4].count("b") == 2
    assert placements[4].message == "0/2 nodes are available: 2 Insufficient cpu."
    # The snapshot itself is unchanged: it is immutable.
    assert all(not pods for pods in snapshot.pods_by_node.values())


def test_batch_respects_pod_count_and_ports():
    snapshot = Snapshot.from_objects([node("a", pods="2")])
    placements = schedule_batch(snapshot, [pod(f"p{i}") for i in range(3)])
    assert [p.scheduled for p in placements] == [True, True, False]
    placements = schedule_batch(Snapshot.from_objects([node("a")]),
                                [pod("x", host_port=80), pod("y", host_port=80)])
    assert [p.scheduled for p in placements] == [True, False]


def test_batch_spreads_an_owners_pods():
    snapshot = Snapshot.from_objects([node("a"), node("b"), node("c")])
    placements = schedule_batch(snapshot, [pod(f"p{i}", owner="rs") for i in range(9)])
    names = [p.node_name for p in placements]
    assert sorted(names.count(n) for n in "abc") == [3, 3, 3]
