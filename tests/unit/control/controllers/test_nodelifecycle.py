"""Node lifecycle controller: health from lease observations, conditions, taints, zones."""

import datetime

import pytest

from control.controllers.nodelifecycle import NodeLifecycleController
from control.controllers.nodetaints import (
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    no_schedule_taints,
    swap_taints,
)
from control.controllers.zoneeviction import (
    EXCLUDE_DISRUPTION_LABEL,
    STATE_FULL,
    STATE_NORMAL,
    STATE_PARTIAL,
    ZONE_LABEL,
    TokenBucket,
    compute_zone_state,
)
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

T0 = "2026-01-01T00:00:00Z"
WALL = datetime.datetime(2026, 1, 1, 0, 10, tzinfo=datetime.timezone.utc)


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((obj["metadata"]["name"], event_type, reason, message))

    def reasons(self):
        return [e[2] for e in self.events]


def node(name, ready="True", heartbeat=T0, taints=None, zone=None, labels=None,
         conditions=None, unschedulable=False):
    labels = dict(labels or {})
    if zone is not None:
        labels[ZONE_LABEL] = zone
    if conditions is None:
        conditions = [] if ready is None else [
            {"type": kind, "status": ready if kind == "Ready" else "False",
             "lastHeartbeatTime": heartbeat, "lastTransitionTime": T0}
            for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")]
    spec = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "5",
                         "labels": labels, "creationTimestamp": T0},
            "spec": spec, "status": {"conditions": conditions}}


def lease(name, renew):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "renewTime": renew}}


def pod(name, node_name, ready="True"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                         "resourceVersion": "3"},
            "spec": {"nodeName": node_name},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}}


def make(nodes=(), leases=(), pods=(), **kwargs):
    clock = FakeClock()
    rest, recorder = FakeRest(nodes), Recorder()
    informers = FakeInformer(nodes), FakeInformer(leases), FakeInformer(pods)
    controller = NodeLifecycleController(rest, *informers, clock=clock, wall_clock=lambda: WALL,
                                         recorder=recorder, **kwargs)
    return controller, rest, clock, informers, recorder


def status_writes(rest, name=None):
    return [a[3] for a in rest.of("update_status")
            if name is None or a[3]["metadata"]["name"] == name]


def taint_patches(rest, name=None):
    """The taint lists written, per patch, as sets of (key, effect)."""
    return [{(t["key"], t["effect"]) for t in a[4]["spec"]["taints"] or ()}
            for a in rest.of("patch") if a[1] == "nodes" and "spec" in a[4]
            and (name is None or a[3] == name)]


# -- health from lease observations over time -------------------------------------------
# Each step: (seconds to advance first, renewTime the lease shows or None to leave it),
# then whether the node's status is written Unknown after the last step's monitor pass.
HEALTH_CASES = {
    "renewing every 10 s stays healthy": ([(0, "r0"), (10, "r1"), (10, "r2"), (10, "r3"),
                                           (10, "r4"), (10, "r5")], False),
    "silent for exactly the grace period is still healthy": ([(0, "r0"), (40, None)], False),
    "silent past the grace period is Unknown": ([(0, "r0"), (41, None)], True),
    "grace counts from the last observed change": ([(0, "r0"), (30, "r1"), (40, None)], False),
    "and runs out 40 s after it": ([(0, "r0"), (30, "r1"), (41, None)], True),
    # renewTime written on another machine: any change is a sign of life, even backwards.
    "a renewTime moving backwards still counts": ([(0, "r9"), (30, "r1"), (35, None)], False),
    "an unchanged renewTime is no news": ([(0, "r0"), (30, "r0"), (11, "r0")], True),
}


@pytest.mark.parametrize("steps, unknown", HEALTH_CASES.values(), ids=HEALTH_CASES)
def test_health_from_lease_observations(steps, unknown):
    controller, rest, clock, (_, leases, _), _ = make([node("n1")])
    for advance, renew in steps:
        clock.advance(advance)
        if renew is not None:
            leases.put(lease("n1", renew))
        controller.monitor()
    assert bool(status_writes(rest)) == unknown


def test_a_changing_heartbeat_without_a_lease_counts_as_life():
    controller, rest, clock, (nodes, _, _), _ = make([node("n1", heartbeat="h0")])
    controller.monitor()
    for i in range(1, 6):
        clock.advance(20)
        nodes.put(node("n1", heartbeat=f"h{i}"))
        controller.monitor()
    assert status_writes(rest) == []
    clock.advance(41)
    controller.monitor()
    assert len(status_writes(rest)) == 1


def test_a_node_that_never_posted_status_gets_the_startup_grace_period():
    controller, rest, clock, _, _ = make([node("n1", ready=None)])
    controller.monitor()
    clock.advance(59)
    controller.monitor()
    assert status_writes(rest) == []
    clock.advance(2)
    controller.monitor()
    [written] = status_writes(rest)
    conds = {c["type"]: c for c in written["status"]["conditions"]}
    assert set(conds) == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert conds["Ready"]["reason"] == "NodeStatusNeverUpdated"
    assert conds["Ready"]["message"] == "Kubelet never posted node status."
    assert conds["Ready"]["lastHeartbeatTime"] == T0     # the node's creation


def test_stale_node_conditions_are_unknown_with_kubernetes_reason_and_message():
    extra = {"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated"}
    n = node("n1")
    n["status"]["conditions"].append(extra)
    controller, rest, clock, _, recorder = make([n], [lease("n1", "r0")])
    controller.monitor()
    clock.advance(41)
    controller.monitor()
    [written] = status_writes(rest)
    conds = {c["type"]: c for c in written["status"]["conditions"]}
    for kind in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        assert conds[kind]["status"] == "Unknown"
        assert conds[kind]["reason"] == "NodeStatusUnknown"
        assert conds[kind]["message"] == "Kubelet stopped posting node status."
        assert conds[kind]["lastHeartbeatTime"] == T0        # kept: the last real heartbeat
        assert conds[kind]["lastTransitionTime"] == "2026-01-01T00:10:00Z"
    assert conds["NetworkUnavailable"] == extra              # not the kubelet's to report
    assert written["metadata"]["resourceVersion"] == "5"     # optimistic concurrency
    assert recorder.reasons() == ["RegisteredNode", "NodeNotReady"]


def test_an_unknown_node_is_not_written_again():
    controller, rest, clock, (nodes, _, _), _ = make([node("n1")])
    controller.monitor()
    clock.advance(41)
    controller.monitor()
    nodes.put(status_writes(rest)[0])       # the informer shows our write
    clock.advance(10)
    controller.monitor()
    assert len(status_writes(rest)) == 1


# -- taints ------------------------------------------------------------------------------
NO_SCHEDULE_CASES = {
    "ready": (node("n", "True"), set()),
    "not ready": (node("n", "False"), {NOT_READY}),
    "unknown": (node("n", "Unknown"), {UNREACHABLE}),
    "memory pressure": (node("n", conditions=[
        {"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "True"}]),
        {"node.kubernetes.io/memory-pressure"}),
    "disk and pid pressure": (node("n", conditions=[
        {"type": "DiskPressure", "status": "True"}, {"type": "PIDPressure", "status": "True"},
        {"type": "Ready", "status": "True"}]),
        {"node.kubernetes.io/disk-pressure", "node.kubernetes.io/pid-pressure"}),
    "network unavailable": (node("n", conditions=[
        {"type": "Ready", "status": "True"}, {"type": "NetworkUnavailable", "status": "True"}]),
        {"node.kubernetes.io/network-unavailable"}),
    "cordoned": (node("n", unschedulable=True), {UNSCHEDULABLE}),
}


@pytest.mark.parametrize("n, keys", NO_SCHEDULE_CASES.values(), ids=NO_SCHEDULE_CASES)
def test_no_schedule_taints_follow_conditions(n, keys):
    assert no_schedule_taints(n) == keys
    controller, rest, *_ = make([n])
    controller.sync("n")
    if keys:
        assert taint_patches(rest) == [{(k, "NoSchedule") for k in keys}]
    else:
        assert rest.actions == []


def test_no_schedule_sync_removes_only_its_own_stale_taints():
    admin = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    n = node("n", "True", taints=[admin, {"key": UNREACHABLE, "effect": "NoSchedule"}])
    controller, rest, *_ = make([n])
    controller.sync("n")
    [patch] = [a[4] for a in rest.of("patch")]
    assert patch["spec"]["taints"] == [admin]
    assert patch["metadata"]["resourceVersion"] == "5"


def test_swap_taints_keeps_existing_time_added_and_stamps_new_no_execute():
    old = {"key": NOT_READY, "effect": "NoExecute", "timeAdded": T0}
    assert swap_taints([old], [(NOT_READY, "NoExecute")], set(), WALL) == [old]
    assert swap_taints([old], [(UNREACHABLE, "NoExecute")], {(NOT_READY, "NoExecute")}, WALL) \
        == [{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:10:00Z"}]
    assert swap_taints([], [(UNREACHABLE, "NoSchedule")], set(), WALL) == \
        [{"key": UNREACHABLE, "effect": "NoSchedule"}]


def go_stale(controller, clock, seconds=41):
    controller.monitor()
    clock.advance(seconds)
    controller.monitor()


@pytest.mark.parametrize("ready, taint", [("Unknown", UNREACHABLE), ("False", NOT_READY)])
def test_failing_node_gets_the_matching_no_execute_taint(ready, taint):
    controller, rest, clock, *_ = make([node("n1", ready), node("n2"), node("n3")])
    controller.monitor()
    assert taint_patches(rest) == []       # queued: the rate limiter decides
    controller.tainting_pass()
    assert taint_patches(rest) == [{(taint, "NoExecute")}]
    [patch] = [a[4] for a in rest.of("patch")]
    assert patch["spec"]["taints"][0]["timeAdded"] == "2026-01-01T00:10:00Z"


def test_stale_node_is_tainted_unreachable_after_its_status_is_written():
    controller, rest, clock, (nodes, leases, _), _ = make(
        [node("n1"), node("n2"), node("n3")], [lease(n, "r0") for n in ("n1", "n2", "n3")])
    controller.monitor()
    clock.advance(41)
    for name in ("n2", "n3"):
        leases.put(lease(name, "r1"))
    controller.monitor()
    assert [w["metadata"]["name"] for w in status_writes(rest)] == ["n1"]
    controller.tainting_pass()
    assert taint_patches(rest) == []        # Ready was True when this pass began
    nodes.put(status_writes(rest)[0])       # the informer shows the Unknown status
    controller.monitor()
    controller.tainting_pass()
    assert taint_patches(rest, "n1") == [{(UNREACHABLE, "NoExecute")}]


def test_an_unreachable_node_reporting_not_ready_swaps_its_taint_at_once():
    tainted = node("n1", "False", taints=[{"key": UNREACHABLE, "effect": "NoExecute",
                                           "timeAdded": T0}])
    controller, rest, *_ = make([tainted, node("n2"), node("n3")])
    controller.monitor()
    assert taint_patches(rest) == [{(NOT_READY, "NoExecute")}]


def test_a_returning_node_is_untainted_and_dequeued():
    back = node("n1", "True", taints=[{"key": UNREACHABLE, "effect": "NoExecute",
                                       "timeAdded": T0},
                                      {"key": "dedicated", "effect": "NoExecute"}])
    controller, rest, *_ = make([back, node("n2")])
    controller.tainting[""] = {"n1": None}
    controller.zone_states[""] = STATE_NORMAL
    controller.limiters[""] = TokenBucket(1.0)
    controller.monitor()
    assert taint_patches(rest) == [{("dedicated", "NoExecute")}]
    assert controller.tainting[""] == {}


def test_pods_on_a_failing_node_are_marked_not_ready_once():
    pods = [pod("a", "n1"), pod("b", "n1", ready="False"), pod("c", "n2")]
    controller, rest, clock, _, recorder = make([node("n1"), node("n2")], pods=pods)
    controller.monitor()
    clock.advance(41)
    controller.health["n2"].probe = clock()       # n2 keeps renewing
    controller.monitor()
    patches = [a for a in rest.of("patch") if a[1] == "pods"]
    assert [(a[3], a[4]["status"]["conditions"][0]["status"]) for a in patches] == \
        [("a", "False")]
    assert ("a", "Warning", "NodeNotReady", "Node is not ready") in recorder.events
    assert ("n1", "Normal", "NodeNotReady", "Node n1 status is now: NodeNotReady") \
        in recorder.events


def test_a_deleted_node_is_forgotten():
    controller, rest, clock, (nodes, _, _), recorder = make([node("n1"), node("n2")])
    controller.monitor()
    nodes.remove(node("n1"))
    controller.monitor()
    assert "n1" not in controller.health and "n1" not in controller.known
    assert recorder.events[-1] == ("n1", "Normal", "RemovingNode",
                                   "Node n1 event: Removing Node n1 from Controller")


# -- zones and the rate limiter ------------------------------------------------------------
ZONE_CASES = {
    "all ready": (["True"] * 5, STATE_NORMAL),
    "two of three down is normal (needs more than 2)": (["True", "False", "Unknown"],
                                                        STATE_NORMAL),
    "3 of 5 down is partial": (["True", "True", "False", "False", "Unknown"], STATE_PARTIAL),
    "3 of 6 down is below 0.55": (["True"] * 3 + ["False"] * 3, STATE_NORMAL),
    "everything down is full": (["Unknown"] * 4, STATE_FULL),
    "a single node down is full": (["Unknown"], STATE_FULL),
    "no Ready condition counts as not ready": ([None, None, None, "True"], STATE_PARTIAL),
}


@pytest.mark.parametrize("statuses, state", ZONE_CASES.values(), ids=ZONE_CASES)
def test_zone_state(statuses, state):
    conditions = [None if s is None else {"type": "Ready", "status": s} for s in statuses]
    assert compute_zone_state(conditions, 0.55)[1] == state


def test_token_bucket_rates():
    clock = FakeClock()
    bucket = TokenBucket(0.1, 1, clock)
    assert bucket.try_accept() and not bucket.try_accept()
    clock.advance(9.9)
    assert not bucket.try_accept()
    clock.advance(0.2)
    assert bucket.try_accept()
    assert not TokenBucket(0.0, 1, clock).try_accept()


def cluster(zones):
    """Nodes per zone: {zone: (ready count, unknown count)}."""
    nodes = []
    for zone, (ready, unknown) in zones.items():
        nodes += [node(f"{zone}-ok-{i}", "True", zone=zone) for i in range(ready)]
        nodes += [node(f"{zone}-down-{i}", "Unknown", zone=zone) for i in range(unknown)]
    return nodes


def tainted_over(controller, clock, rest, seconds, step=1.0):
    """Run the tainting pass every ``step`` s for ``seconds``; the nodes tainted."""
    for _ in range(int(seconds / step)):
        controller.tainting_pass()
        clock.advance(step)
    return [a[3] for a in rest.of("patch") if a[1] == "nodes"]


# (zones, seconds of tainting passes) -> nodes tainted. Default rates: 0.1/s, 0.01/s.
RATE_CASES = {
    "normal zone: 0.1 nodes/s (burst 1)": ({"a": (10, 3)}, 25, 3),
    "normal zone, slower": ({"a": (10, 3)}, 15, 2),
    "small zone partly down: no tainting": ({"a": (4, 6)}, 60, 0),
    "large zone partly down: 0.01 nodes/s": ({"a": (20, 40)}, 150, 2),
    "one zone fully down, another fine: normal rate": ({"a": (0, 3), "b": (5, 0)}, 25, 3),
    "every zone fully down: nothing": ({"a": (0, 3), "b": (0, 2)}, 60, 0),
}


@pytest.mark.parametrize("zones, seconds, count", RATE_CASES.values(), ids=RATE_CASES)
def test_tainting_rate_by_zone_state(zones, seconds, count):
    controller, rest, clock, *_ = make(cluster(zones))
    controller.monitor()
    assert len(tainted_over(controller, clock, rest, seconds)) == count


def test_entering_full_disruption_untaints_everyone_and_leaving_resumes():
    down = [{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": T0}]
    nodes = [node("a", "Unknown", taints=down), node("b", "True"), node("c", "True")]
    controller, rest, clock, (informer, _, _), _ = make(nodes)
    controller.monitor()
    assert controller.zone_states[""] == STATE_NORMAL
    for name in ("b", "c"):
        informer.put(node(name, "Unknown"))
    controller.monitor()
    assert controller.zone_states[""] == STATE_FULL
    assert taint_patches(rest, "a") == [set()]          # "a"'s NoExecute taint removed
    assert tainted_over(controller, clock, rest, 30) == ["a"]       # and nothing more
    informer.put(node("a", "Unknown"))      # the informer shows the untainted node
    informer.put(node("b", "True"))
    controller.monitor()
    assert controller.zone_states[""] == STATE_NORMAL
    assert tainted_over(controller, clock, rest, 25) == ["a", "a", "c"]


def test_nodes_excluded_from_disruption_do_not_count():
    nodes = [node("a", "Unknown"), node("b", "True",
                                        labels={EXCLUDE_DISRUPTION_LABEL: ""})]
    controller, *_ = make(nodes)
    controller.monitor()
    assert controller.zone_states[""] == STATE_FULL


# -- the controller manager's flags -----------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [("4s", 4.0), ("40s", 40.0), ("5m", 300.0),
                                           ("1m30s", 90.0), ("500ms", 0.5), ("7", 7.0),
                                           ("2.5", 2.5), ("1h", 3600.0)])
def test_durations_as_kube_controller_manager_takes_them(text, seconds):
    from control.controllers.manager import duration
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "4x", "s", "4s5", "-"])
def test_bad_durations_are_refused(text):
    import argparse

    from control.controllers.manager import duration
    with pytest.raises(argparse.ArgumentTypeError):
        duration(text)


def test_manager_builds_the_node_controllers_from_flags():
    from control.controllers import manager
    args = manager.parse_args(["--api-server", "http://127.0.0.1:1", "--controllers",
                               "nodelifecycle,taint-eviction-controller,nodeipam",
                               "--node-monitor-grace-period", "4s", "--node-eviction-rate",
                               "0.5", "--cluster-cidr", "10.9.0.0/16",
                               "--node-cidr-mask-size", "20"])
    lifecycle, eviction, ipam = manager.Manager(None, args.controllers, 1, args).controllers
    assert (lifecycle.grace_period, lifecycle.monitor_period, lifecycle.eviction_rate) == \
        (4.0, 5.0, 0.5)
    assert eviction.name == "taint-eviction-controller"
    assert (str(ipam.cidrs.network), ipam.cidrs.mask_size) == ("10.9.0.0/16", 20)
    off = manager.parse_args(["--api-server", "http://127.0.0.1:1", "--controllers", "nodeipam",
                              "--no-allocate-node-cidrs"])
    [disabled] = manager.Manager(None, off.controllers, 1, off).controllers
    assert not hasattr(disabled, "cidrs")


def test_run_monitors_and_taints_in_the_background_until_stopped():
    import threading
    import time

    controller, rest, clock, (nodes, _, _), _ = make([node("n1"), node("n2"), node("n3")],
                                                     monitor_period=0.01)
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(1, stop), daemon=True)
    thread.start()

    def wait_for(predicate):
        deadline = time.monotonic() + 10
        while not predicate():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    try:
        wait_for(lambda: "n3" in controller.health)
        clock.advance(41)
        controller.health["n2"].probe = controller.health["n3"].probe = clock()
        wait_for(lambda: status_writes(rest))
        nodes.put(status_writes(rest)[0])
        wait_for(lambda: any((UNREACHABLE, "NoExecute") in taints
                             for taints in taint_patches(rest, "n1")))
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
