"""DaemonSet controller: eligibility, per-node actions, rolling update steps, status, sync."""

import datetime

import pytest

from control.client import RateLimitingQueue
from control.client.events import NullRecorder
from control.controllers import daemonplan, daemonpods, history
from control.controllers import daemonset as dsc
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def ts(seconds_ago):
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def node(name, labels=None, taints=(), unschedulable=False):
    spec = {"taints": list(taints)}
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}, "resourceVersion": "1"},
            "spec": spec}


def taint(key, effect, value=""):
    return {"key": key, "effect": effect, "value": value}


def make_ds(image="nginx", node_selector=None, tolerations=None, max_unavailable=None,
            max_surge=None, strategy="RollingUpdate", min_ready=0, host_network=False, history_limit=10):
    spec = {"containers": [{"name": "c", "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if host_network:
        spec["hostNetwork"] = True
    update = {"type": strategy}
    if max_unavailable is not None or max_surge is not None:
        update["rollingUpdate"] = {k: v for k, v in (("maxUnavailable", max_unavailable),
                                                     ("maxSurge", max_surge)) if v is not None}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid",
                         "generation": 2, "resourceVersion": "9"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "minReadySeconds": min_ready,
                     "updateStrategy": update, "revisionHistoryLimit": history_limit,
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec}},
            "status": {}}


def current_hash(ds):
    return history.hash_data(history.template_patch(ds))


def make_pod(name, node_name, hash_="h1", ready_for=100, phase="Running", created=10,
             deleting=False, bound=True):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "3",
            "labels": {"app": "agent", history.HASH_LABEL: hash_},
            "creationTimestamp": ts(created),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                 "uid": "ds-uid", "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    spec = daemonpods.with_node_affinity({"containers": []}, node_name)
    if bound:
        spec["nodeName"] = node_name
    conditions = [{"type": "Ready", "status": "True", "lastTransitionTime": ts(ready_for)}] \
        if ready_for is not None else []
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": phase, "conditions": conditions}}


def daemon_spec(**kwargs):
    return daemonpods.with_daemon_tolerations(make_ds(**kwargs)["spec"]["template"]["spec"])


# -- eligibility ---------------------------------------------------------------------------
@pytest.mark.parametrize("the_node, ds_kwargs, want", [
    (node("n"), {}, (True, True)),
    (node("n", {"role": "db"}), {"node_selector": {"role": "web"}}, (False, False)),
    (node("n", {"role": "web"}), {"node_selector": {"role": "web"}}, (True, True)),
    # A NoSchedule taint keeps new pods off but lets a running one stay.
    (node("n", taints=[taint("gpu", "NoSchedule")]), {}, (False, True)),
    (node("n", taints=[taint("gpu", "NoExecute")]), {}, (False, False)),
    (node("n", taints=[taint("gpu", "NoExecute")]),
     {"tolerations": [{"key": "gpu", "operator": "Exists"}]}, (True, True)),
    (node("n", taints=[taint("gpu", "PreferNoSchedule")]), {}, (True, True)),
    # The automatic daemon tolerations.
    (node("n", taints=[taint("node.kubernetes.io/not-ready", "NoExecute")]), {}, (True, True)),
    (node("n", taints=[taint("node.kubernetes.io/unreachable", "NoExecute")]), {},
     (True, True)),
    (node("n", taints=[taint("node.kubernetes.io/disk-pressure", "NoSchedule")]), {},
     (True, True)),
    (node("n", taints=[taint("node.kubernetes.io/memory-pressure", "NoSchedule")]), {},
     (True, True)),
    (node("n", taints=[taint("node.kubernetes.io/pid-pressure", "NoSchedule")]), {},
     (True, True)),
    (node("n", taints=[taint("node.kubernetes.io/unschedulable", "NoSchedule")]), {},
     (True, True)),
    (node("n", unschedulable=True), {}, (True, True)),
    (node("n", taints=[taint("node.kubernetes.io/network-unavailable", "NoSchedule")]), {},
     (False, True)),
    (node("n", taints=[taint("node.kubernetes.io/network-unavailable", "NoSchedule")]),
     {"host_network": True}, (True, True)),
])
def test_node_eligibility(the_node, ds_kwargs, want):
    assert daemonpods.node_should_run(the_node, daemon_spec(**ds_kwargs)) == want


def test_daemon_tolerations_replace_the_same_toleration_with_seconds():
    spec = daemonpods.with_daemon_tolerations({"tolerations": [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 10},
        {"key": "gpu", "operator": "Exists"}]})
    unreachable = [t for t in spec["tolerations"]
                   if t["key"] == "node.kubernetes.io/unreachable"]
    assert unreachable == [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                            "effect": "NoExecute"}]
    assert {"key": "gpu", "operator": "Exists"} in spec["tolerations"]
    assert len(spec["tolerations"]) == 7


def test_required_node_affinity_is_honoured():
    spec = daemon_spec()
    spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["a"]}]}]}}}
    assert daemonpods.node_should_run(node("n", {"zone": "a"}), spec) == (True, True)
    assert daemonpods.node_should_run(node("n", {"zone": "b"}), spec) == (False, False)


def test_new_pod_is_unbound_with_node_affinity_tolerations_and_revision_labels():
    ds = make_ds(node_selector={"role": "web"})
    pod = daemonpods.new_pod(ds, "n7", "abc")
    assert "nodeName" not in pod["spec"]
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": "abc",
                                         "pod-template-generation": "2"}
    assert pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}
    assert pod["spec"]["nodeSelector"] == {"role": "web"}
    keys = {t["key"] for t in pod["spec"]["tolerations"]}
    assert keys == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable",
                    "node.kubernetes.io/disk-pressure", "node.kubernetes.io/memory-pressure",
                    "node.kubernetes.io/pid-pressure", "node.kubernetes.io/unschedulable"}
    assert daemonpods.target_node(pod) == "n7"


# -- which nodes need a pod created or deleted ------------------------------------------------
NODES = [node("n1", {"role": "web"}), node("n2", {"role": "web"}), node("n3", {"role": "db"})]


@pytest.mark.parametrize("pods, want_create, want_delete, want_failed", [
    ([], ["n1", "n2"], [], []),
    ([make_pod("a", "n1")], ["n2"], [], []),
    ([make_pod("a", "n1"), make_pod("b", "n2")], [], [], []),
    # An unbound pod counts for the node its affinity names.
    ([make_pod("a", "n1", bound=False), make_pod("b", "n2")], [], [], []),
    # A pod on a node that no longer matches goes.
    ([make_pod("a", "n1"), make_pod("b", "n2"), make_pod("c", "n3")], [], ["c"], []),
    # A pod on a node that is gone goes.
    ([make_pod("a", "n1"), make_pod("b", "n2"), make_pod("d", "n9")], [], ["d"], []),
    # A failed pod goes; its replacement comes once it is gone.
    ([make_pod("a", "n1", phase="Failed"), make_pod("b", "n2")], [], [], ["a"]),
    # Duplicates: all but the oldest go.
    ([make_pod("old", "n1", created=50), make_pod("new", "n1", created=5), make_pod("b", "n2")],
     [], ["new"], []),
    # A pod being deleted: wait for it before creating.
    ([make_pod("a", "n1", deleting=True), make_pod("b", "n2")], [], [], []),
])
def test_node_actions(pods, want_create, want_delete, want_failed):
    by_node = {}
    for pod in pods:
        by_node.setdefault(daemonpods.target_node(pod), []).append(pod)
    create, delete, failed = daemonplan.node_actions(NODES, daemon_spec(node_selector={"role": "web"}),
                                              by_node)
    assert (create, [p["metadata"]["name"] for p in delete],
            [p["metadata"]["name"] for p in failed]) == (want_create, want_delete, want_failed)


# -- rolling update --------------------------------------------------------------------------
@pytest.mark.parametrize("unavailable, surge, desired, want", [
    (None, None, 10, (0, 1)), (3, None, 10, (0, 3)), ("25%", None, 10, (0, 3)),
    ("10%", None, 3, (0, 1)),                   # percents round up
    (0, None, 5, (0, 1)), ("0%", "0%", 5, (0, 1)),  # never both zero
    (0, 1, 5, (1, 0)), (0, "30%", 5, (2, 0)),
])
def test_rolling_limits(unavailable, surge, desired, want):
    ds = make_ds(max_unavailable=unavailable, max_surge=surge)
    assert daemonplan.rolling_limits(ds, desired) == want


@pytest.mark.parametrize("pods, limit, want", [
    # All old and available: one at a time (maxUnavailable 1), in node order.
    ({"n1": [make_pod("a", "n1", "old")], "n2": [make_pod("b", "n2", "old")],
      "n3": [make_pod("c", "n3", "old")]}, 1, ["a"]),
    ({"n1": [make_pod("a", "n1", "old")], "n2": [make_pod("b", "n2", "old")],
      "n3": [make_pod("c", "n3", "old")]}, 2, ["a", "b"]),
    # One node is already without an available pod: the budget is spent.
    ({"n1": [make_pod("a", "n1", "new", ready_for=None)], "n2": [make_pod("b", "n2", "old")],
      "n3": [make_pod("c", "n3", "old")]}, 1, []),
    # An old pod that is not available is replaced at once, on top of the budget.
    ({"n1": [make_pod("a", "n1", "old", ready_for=None)], "n2": [make_pod("b", "n2", "old")],
      "n3": [make_pod("c", "n3", "new")]}, 2, ["a", "b"]),
    ({"n1": [make_pod("a", "n1", "new")], "n2": [make_pod("b", "n2", "new")]}, 1, []),
    # A node with no pod yet counts as unavailable.
    ({"n1": [], "n2": [make_pod("b", "n2", "old")]}, 1, []),
])
def test_rolling_update_victims(pods, limit, want):
    got = daemonplan.rolling_update_victims(pods, "new", 0, NOW, limit)
    assert [p["metadata"]["name"] for p in got] == want


def test_rolling_update_respects_min_ready_seconds():
    pods = {"n1": [make_pod("a", "n1", "new", ready_for=5)], "n2": [make_pod("b", "n2", "old")]}
    assert daemonplan.rolling_update_victims(pods, "new", 10, NOW, 1) == []     # a: not yet available
    assert [p["metadata"]["name"] for p in daemonplan.rolling_update_victims(pods, "new", 3, NOW, 1)] \
        == ["b"]


# -- status ------------------------------------------------------------------------------------
def test_status_counts():
    ds = make_ds(node_selector={"role": "web"}, min_ready=30)
    h = current_hash(ds)
    by_node = {"n1": [make_pod("a", "n1", h, ready_for=100)],
               "n2": [make_pod("b", "n2", "old", ready_for=10)],
               "n3": [make_pod("c", "n3", h)]}        # n3 is not eligible
    status = daemonplan.daemon_set_status(ds, NODES + [node("n4", {"role": "web"})],
                                   daemon_spec(node_selector={"role": "web"}), by_node, h, NOW)
    assert status == {"desiredNumberScheduled": 3, "currentNumberScheduled": 2,
                      "numberMisscheduled": 1, "numberReady": 2, "numberAvailable": 1,
                      "updatedNumberScheduled": 1, "numberUnavailable": 2,
                      "observedGeneration": 2}


# -- sync against fakes --------------------------------------------------------------------------
class Rest(FakeRest):
    def update(self, resource, namespace, body, subresource=None):
        self.actions.append(("update", resource.plural, namespace, body))
        return body


class Harness:
    def __init__(self, ds, nodes, pods=(), revisions=()):
        self.clock = FakeClock()
        self.rest = Rest([ds])
        self.ds_inf, self.pod_inf = FakeInformer([ds]), FakeInformer(pods)
        self.node_inf, self.rev_inf = FakeInformer(nodes), FakeInformer(revisions)
        self.controller = dsc.DaemonSetController(
            self.rest, self.ds_inf, self.pod_inf, self.node_inf, self.rev_inf,
            queue=RateLimitingQueue(clock=self.clock), clock=self.clock,
            wall_clock=lambda: NOW, recorder=NullRecorder())

    def sync(self):
        self.rest.actions.clear()
        self.controller.sync("default/agent")
        return self.rest


def revision_of(ds, number=1):
    r = history.new_revision(ds, "apps/v1", "DaemonSet", number)
    r["metadata"].update(uid="uid-r", resourceVersion="1")
    return r


def test_sync_creates_a_revision_and_one_pod_per_eligible_node():
    ds = make_ds(node_selector={"role": "web"})
    h = Harness(ds, NODES)
    rest = h.sync()
    creates = rest.of("create")
    assert [c[1] for c in creates] == ["controllerrevisions", "pods", "pods"]
    targets = sorted(daemonpods.target_node(c[3]) for c in creates[1:])
    assert targets == ["n1", "n2"]
    assert h.controller.expectations.pending("default/agent") == (2, 0)
    # Before the informer shows the pods, another sync creates nothing more.
    h.rev_inf.put(creates[0][3])
    assert h.sync().of("create") == []
    for c in creates[1:]:
        h.pod_inf.put(c[3])
    assert h.controller.expectations.satisfied("default/agent")
    assert h.sync().of("create") == []


def test_sync_rolls_one_old_pod_at_a_time_and_truncates_history():
    old_ds = make_ds(image="v1")
    ds = make_ds(image="v2", history_limit=0)
    revisions = [revision_of(old_ds, 1), revision_of(ds, 2)]
    old = revisions[0]["metadata"]["labels"][history.HASH_LABEL]
    pods = [make_pod(f"p{i}", f"n{i}", old) for i in (1, 2, 3)]
    h = Harness(ds, NODES, pods, revisions)
    rest = h.sync()
    assert [a[3] for a in rest.of("delete") if a[1] == "pods"] == ["p1"]
    # The old revision is still in use by pods: it stays.
    assert [a for a in rest.of("delete") if a[1] == "controllerrevisions"] == []


def test_sync_deletes_unused_revisions_beyond_the_limit():
    ds = make_ds(image="v3", history_limit=1)
    revisions = [revision_of(make_ds(image="v1"), 1), revision_of(make_ds(image="v2"), 2),
                 revision_of(ds, 3)]
    for i, r in enumerate(revisions):
        r["metadata"]["uid"] = f"r{i}"
    new = revisions[2]["metadata"]["labels"][history.HASH_LABEL]
    pods = [make_pod(f"p{i}", f"n{i}", new) for i in (1, 2, 3)]
    h = Harness(ds, NODES, pods, revisions)
    deleted = [a[3] for a in h.sync().of("delete")]
    assert deleted == [revisions[0]["metadata"]["name"]]


def test_on_delete_strategy_leaves_old_pods_alone():
    old_ds, ds = make_ds(image="v1"), make_ds(image="v2", strategy="OnDelete")
    revisions = [revision_of(old_ds, 1), revision_of(ds, 2)]
    old = revisions[0]["metadata"]["labels"][history.HASH_LABEL]
    h = Harness(ds, NODES, [make_pod(f"p{i}", f"n{i}", old) for i in (1, 2, 3)], revisions)
    assert h.sync().of("delete") == []


def test_invalid_selector_warns_and_does_nothing():
    ds = make_ds()
    ds["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}
    events = []

    class Recorder:
        def event(self, obj, kind, reason, message):
            events.append((kind, reason))

    h = Harness(ds, NODES)
    h.controller.recorder = Recorder()
    assert h.sync().actions == []
    assert events == [("Warning", "InvalidSelector")]


def test_duplicate_revisions_are_folded_into_the_newest():
    ds = make_ds(image="v1")
    first = revision_of(ds, 1)
    second = history.new_revision({**ds, "status": {"collisionCount": 1}}, "apps/v1",
                                  "DaemonSet", 2, 1)
    second["metadata"].update(uid="uid-r2", resourceVersion="1")
    old_hash = first["metadata"]["labels"][history.HASH_LABEL]
    new_hash = second["metadata"]["labels"][history.HASH_LABEL]
    pods = [make_pod("p1", "n1", old_hash), make_pod("p2", "n2", new_hash)]
    h = Harness(ds, NODES[:2], pods, [first, second])
    rest = h.sync()
    (patch,) = rest.of("patch")
    assert (patch[3], patch[4]["metadata"]["labels"]) == ("p1", {history.HASH_LABEL: new_hash})
    assert [a[3] for a in rest.of("delete")] == [first["metadata"]["name"]]
    assert rest.of("create") == []


def test_failed_pods_are_killed_with_a_growing_backoff_per_node():
    ds = make_ds()
    h = Harness(ds, NODES[:1], [make_pod("a", "n1", current_hash(ds), phase="Failed")],
                [revision_of(ds)])
    assert [a[3] for a in h.sync().of("delete")] == ["a"]
    h.controller.expectations.delete("default/agent")
    failed_again = make_pod("b", "n1", current_hash(ds), phase="Failed")
    h.pod_inf.remove(h.pod_inf.store.get("default/a"))
    h.pod_inf.put(failed_again)
    assert h.sync().of("delete") == []                    # within 1 s: wait
    h.clock.advance(1.5)
    assert [a[3] for a in h.sync().of("delete")] == ["b"]
    assert h.controller.failed_backoff.remaining(("default/agent", "n1")) == 2.0


def test_backoff_doubles_up_to_the_maximum_and_resets_after_calm():
    clock = FakeClock()
    backoff = dsc.FailedPodBackoff(clock, initial=1, maximum=4)
    delays = []
    for _ in range(5):
        backoff.next("k")
        delays.append(backoff.remaining("k"))
    assert delays == [1, 2, 4, 4, 4]
    clock.advance(9)
    backoff.next("k")
    assert backoff.remaining("k") == 1


# -- rolling update with maxSurge ----------------------------------------------------------------
@pytest.mark.parametrize("pods, surge, want_nodes, want_deleted", [
    # All old and available: start new pods beside them, maxSurge nodes at a time.
    ({"n1": [make_pod("a", "n1", "old")], "n2": [make_pod("b", "n2", "old")]}, 1, ["n1"], []),
    ({"n1": [make_pod("a", "n1", "old")], "n2": [make_pod("b", "n2", "old")]}, 2,
     ["n1", "n2"], []),
    # A new pod not yet available uses the surge budget.
    ({"n1": [make_pod("a", "n1", "old"), make_pod("a2", "n1", "new", ready_for=None)],
      "n2": [make_pod("b", "n2", "old")]}, 1, [], []),
    # The new pod is available: the old one goes, and another node may surge.
    ({"n1": [make_pod("a", "n1", "old"), make_pod("a2", "n1", "new")],
      "n2": [make_pod("b", "n2", "old")]}, 1, ["n2"], ["a"]),
    # An unavailable old pod gets its replacement at once, beyond the budget.
    ({"n1": [make_pod("a", "n1", "old", ready_for=None)],
      "n2": [make_pod("b", "n2", "old")]}, 1, ["n1", "n2"], []),
])
def test_rolling_update_surge(pods, surge, want_nodes, want_deleted):
    nodes, deleted = daemonplan.rolling_update_surge(pods, "new", 0, NOW, surge)
    assert (nodes, [p["metadata"]["name"] for p in deleted]) == (want_nodes, want_deleted)


@pytest.mark.parametrize("pods, want_deleted", [
    ([make_pod("o", "n1", "old", created=50), make_pod("n", "n1", "new", created=5)], ["o"]),
    ([make_pod("o", "n1", "old", created=50), make_pod("n", "n1", "new", ready_for=None)], []),
    ([make_pod("o", "n1", "old", ready_for=None), make_pod("n", "n1", "new", ready_for=None)],
     ["o"]),
    ([make_pod("n", "n1", "new", created=50), make_pod("n2", "n1", "new", created=5)], ["n2"]),
])
def test_surge_duplicates_on_a_node(pods, want_deleted):
    _, delete, _ = daemonplan.node_actions(NODES[:1], daemon_spec(), {"n1": pods}, "new", 0, NOW)
    assert [p["metadata"]["name"] for p in delete] == want_deleted


def test_sync_with_surge_creates_beside_the_old_pod():
    old_ds, ds = make_ds(image="v1"), make_ds(image="v2", max_unavailable=0, max_surge=1)
    revisions = [revision_of(old_ds, 1), revision_of(ds, 2)]
    revisions[0]["metadata"]["uid"] = "r-old"
    old = revisions[0]["metadata"]["labels"][history.HASH_LABEL]
    h = Harness(ds, NODES[:2], [make_pod(f"p{i}", f"n{i}", old) for i in (1, 2)], revisions)
    rest = h.sync()
    assert rest.of("delete") == []
    (create,) = rest.of("create")
    assert daemonpods.target_node(create[3]) == "n1"
    assert create[3]["metadata"]["labels"][history.HASH_LABEL] == current_hash(ds)


def test_a_pod_kept_on_a_node_tainted_no_schedule_counts_as_misscheduled():
    ds = make_ds()
    h = current_hash(ds)
    tainted = node("n1", taints=[taint("gpu", "NoSchedule")])
    status = daemonplan.daemon_set_status(ds, [tainted], daemon_spec(), {"n1": [make_pod("a", "n1", h)]},
                                   h, NOW)
    assert (status["desiredNumberScheduled"], status["numberMisscheduled"]) == (0, 1)
    # ...and it is not deleted.
    assert daemonplan.node_actions([tainted], daemon_spec(), {"n1": [make_pod("a", "n1", h)]}) == \
        ([], [], [])


def test_node_changes_that_matter_enqueue_every_daemon_set():
    h = Harness(make_ds(), NODES)
    n1 = NODES[0]
    heartbeat = {**n1, "metadata": {**n1["metadata"], "resourceVersion": "2"},
                 "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    h.node_inf.put(heartbeat)
    assert len(h.controller.queue) == 0           # status only: nothing to do
    relabelled = {**heartbeat, "metadata": {**heartbeat["metadata"], "labels": {"role": "x"}}}
    h.node_inf.put(relabelled)
    assert h.controller.queue.get(0) == "default/agent"


def test_pod_events_enqueue_the_owner_and_count_expectations():
    ds = make_ds()
    h = Harness(ds, NODES)
    h.controller.expectations.expect("default/agent", 1, ["default/old"])
    h.pod_inf.put(make_pod("new", "n1"))
    assert h.controller.expectations.pending("default/agent") == (0, 1)
    h.pod_inf.remove(make_pod("old", "n2"))
    assert h.controller.expectations.satisfied("default/agent")
    assert h.controller.queue.get(0) == "default/agent"
