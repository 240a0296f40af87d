"""ReplicaSet controller sync: given these cached objects, these API actions."""

import datetime
import threading

import pytest

from control.client import Conflict, Forbidden, RateLimitingQueue, ServerError
from control.controllers import pods as podutil
from control.controllers.batch import slow_start_batch
from control.controllers.replicaset import ReplicaSetController
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
KEY = "default/web"


def ts(seconds_ago):
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_rs(replicas=3, labels=None, status=None, min_ready=0, generation=1, deleting=False):
    labels = labels or {"app": "web"}
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid",
                       "resourceVersion": "10", "generation": generation},
          "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                   "selector": {"matchLabels": dict(labels)},
                   "template": {"metadata": {"labels": {**labels, "tier": "front"},
                                             "annotations": {"a": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
          "status": status or {}}
    if deleting:
        rs["metadata"]["deletionTimestamp"] = ts(0)
    return rs


def make_pod(name, labels=None, owner="rs-uid", node="n1", phase="Running", ready_for=100,
             created=1000, restarts=0, deleting=False, uid=None):
    meta = {"name": name, "namespace": "default", "uid": uid or f"uid-{name}",
            "resourceVersion": "5", "labels": labels if labels is not None else
            {"app": "web", "tier": "front"}, "creationTimestamp": ts(created)}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": "web", "uid": owner, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    conditions = []
    if ready_for is not None:
        conditions.append({"type": "Ready", "status": "True",
                           "lastTransitionTime": ts(ready_for)})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": "c", "restartCount": restarts}]}}


class Harness:
    def __init__(self, rs, pods=(), fail=None):
        self.clock = FakeClock()
        self.rest = FakeRest([rs], fail)
        self.rs_informer, self.pod_informer = FakeInformer([rs]), FakeInformer(pods)
        self.queue = RateLimitingQueue(clock=self.clock)
        self.controller = ReplicaSetController(self.rest, self.rs_informer, self.pod_informer,
                                               queue=self.queue, clock=self.clock,
                                               wall_clock=lambda: NOW)

    def sync(self):
        self.rest.actions.clear()
        self.controller.sync(KEY)
        return self.rest

    def observe_creates(self):
        for action in self.rest.of("create"):
            self.pod_informer.put(action[3])


@pytest.mark.parametrize("count, fail_at, successes, calls", [
    (10, None, 10, 10),
    (10, 1, 0, 1),       # the first batch (1) fails: nothing more is tried
    (10, 2, 2, 3),       # batch 2 fails: 1 + 2 calls, one of them succeeded
    (10, 4, 6, 7),       # batch 3 (4 calls) fails: 1 + 2 + 4 calls
    (5, None, 5, 5),     # batches 1, 2, 2
    (0, None, 0, 0),
])
def test_slow_start_batch(count, fail_at, successes, calls):
    made, lock = [], threading.Lock()

    def call():
        with lock:
            made.append(1)
            n = len(made)
        if n == fail_at:
            raise ServerError(500, "", "boom")

    got, error = slow_start_batch(count, 1, call)
    assert (got, len(made), error is not None) == (successes, calls, fail_at is not None)


def test_scale_up_from_zero_creates_owned_pods_from_the_template():
    h = Harness(make_rs(replicas=5))
    rest = h.sync()
    creates = rest.of("create")
    assert len(creates) == 5
    for _, plural, ns, body in creates:
        meta = body["metadata"]
        assert (plural, ns, meta["generateName"]) == ("pods", "default", "web-")
        assert meta["labels"] == {"app": "web", "tier": "front"}
        assert meta["annotations"] == {"a": "b"}
        assert meta["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                            "name": "web", "uid": "rs-uid", "controller": True,
                                            "blockOwnerDeletion": True}]
        assert body["spec"]["containers"][0]["image"] == "nginx"
    assert h.controller.expectations.pending(KEY) == (5, 0)
    # Status counts what the cache shows, not what was just asked for.
    (status_update,) = rest.of("update_status")
    assert status_update[3]["status"]["replicas"] == 0
    assert status_update[3]["status"]["observedGeneration"] == 1


def test_expectations_block_a_second_create_until_the_first_is_observed():
    h = Harness(make_rs(replicas=1))
    assert h.sync().verbs().count("create") == 1
    created = h.rest.of("create")[0][3]
    # The watch is slow: the cache does not show the pod yet; a second sync waits.
    assert "create" not in h.sync().verbs()
    h.pod_informer.put(created)
    assert h.controller.expectations.satisfied(KEY)
    assert "create" not in h.sync().verbs()


def test_expectations_expire_after_five_minutes():
    h = Harness(make_rs(replicas=1))
    h.sync()
    h.clock.advance(299)
    assert "create" not in h.sync().verbs()
    h.clock.advance(2)
    assert h.sync().verbs().count("create") == 1


def test_a_create_error_stops_the_batch_lowers_expectations_and_requeues():
    calls = []

    def fail_second(body):
        calls.append(body)
        return ServerError(500, "InternalError", "quota") if len(calls) == 2 else None

    h = Harness(make_rs(replicas=5), fail={"create": fail_second})
    h.queue.add(KEY)
    assert h.controller.process_next(timeout=1)
    # Batches 1 and 2 ran (3 calls, 2 created); the batch of 2 after them did not.
    assert len(calls) == 3 and len(h.rest.of("create")) == 2
    assert h.controller.expectations.pending(KEY) == (2, 0)
    assert h.queue.num_requeues(KEY) == 1
    status = h.rest.of("update_status")[0][3]["status"]
    assert status["conditions"][0]["type"] == "ReplicaFailure"
    assert status["conditions"][0]["reason"] == "FailedCreate"


def test_creates_refused_by_a_terminating_namespace_are_dropped_not_retried():
    terminating = Forbidden(403, "Forbidden", "unable to create new content in namespace "
                            "default because it is being terminated",
                            body={"details": {"causes": [{"reason": "NamespaceTerminating"}]}})
    h = Harness(make_rs(replicas=3), fail={"create": lambda body: terminating})
    h.queue.add(KEY)
    assert h.controller.process_next(timeout=1)
    assert h.queue.num_requeues(KEY) == 0
    assert h.controller.expectations.pending(KEY) == (0, 0)
    assert not any(c.get("type") == "ReplicaFailure"
                   for a in h.rest.of("update_status")
                   for c in a[3]["status"].get("conditions") or ())


@pytest.mark.parametrize("replicas, deleted", [
    (4, ["unscheduled"]),
    (3, ["unscheduled", "pending"]),
    (2, ["unscheduled", "pending", "notready"]),
    (1, ["unscheduled", "pending", "notready", "young"]),
    (0, ["unscheduled", "pending", "notready", "young", "old"]),
])
def test_scale_down_deletes_the_pods_that_matter_least(replicas, deleted):
    pods = [make_pod("old", ready_for=500), make_pod("young", ready_for=10),
            make_pod("notready", ready_for=None),
            make_pod("pending", phase="Pending", ready_for=None),
            make_pod("unscheduled", node=None, phase="Pending", ready_for=None)]
    h = Harness(make_rs(replicas=replicas), pods)
    rest = h.sync()
    assert sorted(a[3] for a in rest.of("delete")) == sorted(deleted)
    assert h.controller.expectations.pending(KEY) == (0, len(deleted))


@pytest.mark.parametrize("pods, deleted", [
    # Equal readiness: more restarts go first, then the newest.
    ([make_pod("a", restarts=0), make_pod("b", restarts=3)], ["b"]),
    ([make_pod("a", created=100), make_pod("b", created=900)], ["a"]),
    # Pods doubled up on one node go before a pod alone on its node.
    ([make_pod("a", node="n1"), make_pod("b", node="n1", ready_for=5),
      make_pod("c", node="n2", ready_for=1)], ["b"]),
])
def test_scale_down_tie_breaks(pods, deleted):
    h = Harness(make_rs(replicas=len(pods) - 1), pods)
    assert [a[3] for a in h.sync().of("delete")] == deleted


def test_deletion_expectations_are_observed_once_per_pod():
    pods = [make_pod("a"), make_pod("b")]
    h = Harness(make_rs(replicas=1), pods)
    (victim,) = [a[3] for a in h.sync().of("delete")]
    assert "delete" not in h.sync().verbs()      # not yet observed: no second delete
    gone = [p for p in pods if p["metadata"]["name"] == victim][0]
    graceful = {**gone, "metadata": {**gone["metadata"], "deletionTimestamp": ts(0),
                                     "resourceVersion": "6"}}
    h.pod_informer.put(graceful)                 # a graceful delete: seen as deleted now
    assert h.controller.expectations.satisfied(KEY)
    # The terminating pod no longer counts: one left, as asked; only status changes.
    assert h.sync().verbs() == ["update_status"]


@pytest.mark.parametrize("pod, patched, creates", [
    # An orphan that matches is adopted: no new pod needed.
    (make_pod("orphan", owner=None), True, 0),
    # Not matching, owned by someone else, or being deleted: left alone.
    (make_pod("other", owner=None, labels={"app": "db"}), False, 1),
    (make_pod("foreign", owner="other-uid"), False, 1),
    (make_pod("dying", owner=None, deleting=True), False, 1),
])
def test_adoption(pod, patched, creates):
    h = Harness(make_rs(replicas=1), [pod])
    rest = h.sync()
    patches = rest.of("patch")
    assert bool(patches) == patched
    if patched:
        _, plural, ns, name, patch = patches[0]
        assert (plural, name) == ("pods", "orphan")
        assert patch["metadata"]["uid"] == "uid-orphan"
        assert patch["metadata"]["resourceVersion"] == "5"
        assert patch["metadata"]["ownerReferences"][0]["uid"] == "rs-uid"
        assert patch["metadata"]["ownerReferences"][0]["controller"] is True
    assert len(rest.of("create")) == creates


def test_no_adoption_by_a_replica_set_being_deleted():
    h = Harness(make_rs(replicas=1, deleting=True), [make_pod("orphan", owner=None)])
    assert h.sync().of("patch") == [] and h.rest.of("create") == []


def test_an_owned_pod_that_stops_matching_is_released_and_replaced():
    h = Harness(make_rs(replicas=1), [make_pod("stray", labels={"app": "other"})])
    rest = h.sync()
    (patch,) = rest.of("patch")
    assert patch[3] == "stray" and patch[4]["metadata"]["ownerReferences"] == []
    assert len(rest.of("create")) == 1


def test_status_counts_active_claimed_pods():
    pods = [make_pod("avail", ready_for=60),
            make_pod("fresh", ready_for=5),              # ready, not yet available
            make_pod("notready", ready_for=None),
            make_pod("partial", labels={"app": "web"}),  # matches, lacks the tier label
            make_pod("done", phase="Succeeded"),         # terminal: not counted
            make_pod("dying", deleting=True),            # being deleted: not counted
            make_pod("foreign", owner="other-uid")]
    h = Harness(make_rs(replicas=4, min_ready=30, generation=7), pods)
    rest = h.sync()
    assert rest.of("create") == [] and rest.of("delete") == []
    status = rest.of("update_status")[0][3]["status"]
    assert status == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 3,
                      "availableReplicas": 2, "observedGeneration": 7}


def test_status_is_not_written_when_unchanged():
    status = {"replicas": 1, "fullyLabeledReplicas": 1, "readyReplicas": 1,
              "availableReplicas": 1, "observedGeneration": 1}
    h = Harness(make_rs(replicas=1, status=status), [make_pod("a")])
    assert h.sync().actions == []


def test_a_deleted_replica_set_forgets_its_expectations():
    h = Harness(make_rs(replicas=2))
    h.sync()
    rs = h.rs_informer.store.get(KEY)
    h.rs_informer.remove(rs)
    assert h.controller.expectations.pending(KEY) == (0, 0)
    assert h.sync().actions == []


def test_handlers_enqueue_the_owner_or_matching_replica_sets():
    h = Harness(make_rs(replicas=1))
    h.pod_informer.put(make_pod("orphan", owner=None))
    assert h.queue.get(timeout=1) == KEY
    h.queue.done(KEY)
    h.pod_informer.put(make_pod("unrelated", owner=None, labels={"app": "db"}))
    assert len(h.queue) == 0


def test_pods_to_delete_prefers_unready():
    pods = [make_pod("r"), make_pod("n", ready_for=None)]
    assert [p["metadata"]["name"] for p in podutil.pods_to_delete(pods, 1)] == ["n"]


def test_a_status_conflict_is_retried_once_on_a_fresh_read():
    attempts = []

    def conflict_once(body):
        attempts.append(body)
        return Conflict(409, "Conflict", "modified") if len(attempts) == 1 else None

    h = Harness(make_rs(replicas=1), [make_pod("a")], fail={"update_status": conflict_once})
    rest = h.sync()
    assert len(attempts) == 2 and len(rest.of("update_status")) == 1


def test_a_second_status_conflict_raises():
    h = Harness(make_rs(replicas=1), [make_pod("a")],
                fail={"update_status": lambda body: Conflict(409, "Conflict", "modified")})
    with pytest.raises(Conflict):
        h.sync()


def test_pods_are_indexed_by_controller_uid_and_orphans_by_namespace():
    from control.controllers.replicaset import controller_index
    assert controller_index(make_pod("a")) == "rs-uid"
    assert controller_index(make_pod("b", owner=None)) == "orphan:default"


def test_pods_of_other_controllers_are_not_counted_or_touched():
    others = [make_pod(f"o{i}", owner="other-uid") for i in range(3)]
    h = Harness(make_rs(replicas=2), pods=[make_pod("mine")] + others)
    rest = h.sync()
    assert len(rest.of("create")) == 1 and not rest.of("patch") and not rest.of("delete")
