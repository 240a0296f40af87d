"""Deployment controller sync: given these cached objects, these API actions."""

import copy
import datetime

import pytest

from control.client import AlreadyExists, Forbidden, RateLimitingQueue
from control.controllers.deployment import DeploymentController, conditions, revisions, templatehash
from control.objects.meta import timestamp
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
KEY = "default/web"
D_UID = "d-uid"


def ts(seconds_ago):
    return timestamp(NOW - datetime.timedelta(seconds=seconds_ago))


def template(image="nginx:1"):
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def make_d(replicas=10, image="nginx:1", strategy="RollingUpdate", surge="25%",
           unavailable="25%", status=None, generation=1, paused=False, history=10,
           annotations=None, deadline=600):
    strat = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": D_UID,
                         "resourceVersion": "7", "generation": generation,
                         "annotations": dict(annotations or {})},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": strat, "template": template(image), "paused": paused,
                     "revisionHistoryLimit": history, "progressDeadlineSeconds": deadline,
                     "minReadySeconds": 0},
            "status": status or {}}


def make_rs(name, replicas, available=None, image="nginx:1", revision=1, created=0,
            owner=D_UID, desired=None, max_replicas=None, status_replicas=None, labels=None,
            conditions=None):
    t = template(image)
    pod_hash = templatehash.compute_hash(t)
    t["metadata"]["labels"][templatehash.HASH_LABEL] = pod_hash
    annotations = {revisions.REVISION: str(revision)}
    if desired is not None:
        annotations[revisions.DESIRED_REPLICAS] = str(desired)
        annotations[revisions.MAX_REPLICAS] = str(max_replicas if max_replicas is not None else desired)
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "3",
            "generation": 1, "labels": labels if labels is not None else dict(t["metadata"]["labels"]),
            "annotations": annotations,
            "creationTimestamp": timestamp(NOW + datetime.timedelta(seconds=created))}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                    "uid": owner, "controller": True}]
    available = replicas if available is None else available
    status = {"replicas": replicas if status_replicas is None else status_replicas,
              "readyReplicas": available, "availableReplicas": available,
              "observedGeneration": 1}
    if conditions:
        status["conditions"] = conditions
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": replicas, "minReadySeconds": 0,
                     "selector": {"matchLabels": {"app": "web", templatehash.HASH_LABEL: pod_hash}},
                     "template": t},
            "status": status}


def make_pod(name, rs, phase="Running", deleting=False):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "4",
            "labels": dict(rs["spec"]["template"]["metadata"]["labels"]),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": rs["metadata"]["name"], "uid": rs["metadata"]["uid"],
                                 "controller": True}]}
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {"phase": phase}}


class Rest(FakeRest):
    """FakeRest plus update (PUT), answering with the body as stored."""

    def update(self, resource, namespace, body, subresource=None):
        with self._lock:
            self._check("update", body)
            self.actions.append(("update", resource.plural, namespace, body))
            meta = {**body["metadata"], "resourceVersion": "99"}
            return {**body, "metadata": meta}


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((event_type, reason, message))


class Harness:
    def __init__(self, d, rss=(), pods=(), fail=None):
        self.now = NOW
        self.clock = FakeClock()
        self.rest = Rest([d, *rss], fail)
        self.d_informer = FakeInformer([d])
        self.rs_informer, self.pod_informer = FakeInformer(rss), FakeInformer(pods)
        self.queue = RateLimitingQueue(clock=self.clock)
        self.recorder = Recorder()
        self.controller = DeploymentController(
            self.rest, self.d_informer, self.rs_informer, self.pod_informer, queue=self.queue,
            wall_clock=lambda: self.now, recorder=self.recorder)

    def sync(self):
        self.rest.actions.clear()
        self.recorder.events.clear()
        self.controller.sync(KEY)
        return self.rest

    def scaled(self):
        """{ReplicaSet name: new spec.replicas} for every ReplicaSet update."""
        return {a[3]["metadata"]["name"]: a[3]["spec"]["replicas"]
                for a in self.rest.of("update") if a[1] == "replicasets"}

    def created_rs(self):
        return [a[3] for a in self.rest.of("create") if a[1] == "replicasets"]

    def status(self):
        writes = self.rest.of("update_status")
        return writes[-1][3]["status"] if writes else None

    def condition(self, ctype):
        return conditions.get_condition(self.status(), ctype)


# -- a new Deployment ------------------------------------------------------------------
def test_a_new_deployment_gets_a_replica_set_named_by_its_template_hash():
    h = Harness(make_d(replicas=10))
    rest = h.sync()
    (rs,) = h.created_rs()
    pod_hash = templatehash.compute_hash(template())
    meta = rs["metadata"]
    assert meta["name"] == f"web-{pod_hash}"
    assert meta["labels"] == {"app": "web", templatehash.HASH_LABEL: pod_hash}
    assert meta["ownerReferences"][0]["uid"] == D_UID
    assert meta["ownerReferences"][0]["kind"] == "Deployment"
    assert meta["annotations"] == {revisions.REVISION: "1", revisions.DESIRED_REPLICAS: "10",
                                   revisions.MAX_REPLICAS: "13"}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", templatehash.HASH_LABEL: pod_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"][templatehash.HASH_LABEL] == pod_hash
    assert rs["spec"]["replicas"] == 10
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set web-{pod_hash} to 10") in \
        h.recorder.events
    # The Deployment records the revision (a metadata patch) and the new ReplicaSet.
    (patch,) = rest.of("patch")
    assert patch[4] == {"metadata": {"annotations": {revisions.REVISION: "1"}}}
    cond = conditions.get_condition(rest.of("update_status")[0][3]["status"], "Progressing")
    assert (cond["status"], cond["reason"]) == ("True", conditions.NEW_RS_REASON)
    assert cond["message"] == f'Created new replica set "web-{pod_hash}"'


# -- RollingUpdate steps ---------------------------------------------------------------------
@pytest.mark.parametrize("old_sets, new, want", [
    # Image changed, no new ReplicaSet yet: created at maxSurge (3), old down by 2 at once.
    ([("old", 10, 10)], None, {"new": 3, "old": 8}),
    # New at 3 (none available), old at 8: new grows to 5 (13 total), old waits.
    ([("old", 8, 8)], (3, 0), {"new": 5}),
    # New pods available: old scales down to minAvailable (8) of available.
    ([("old", 8, 8)], (5, 5), {"old": 3}),
    # New pods unavailable: nothing may go down.
    ([("old", 8, 8)], (5, 0), {}),
    # Old has 3 unhealthy replicas: they go first, and that is all availability allows.
    ([("old", 8, 5)], (5, 3), {"old": 5}),
    # Two old ReplicaSets: the oldest is scaled down first.
    ([("old1", 4, 4), ("old2", 5, 5)], (4, 4), {"old1": 0, "old2": 4}),
    # old1 was just scaled 4 -> 2 and its status still counts 4 available: only 2 count,
    # so 13 are available, not 15, and 5 (not 7) more may go down.
    ([("old1", 2, 4), ("old2", 6, 6)], (5, 5), {"old1": 0, "old2": 3}),
    # Done: nothing to scale.
    ([("old", 0, 0)], (10, 10), {}),
])
def test_rolling_update_steps(old_sets, new, want):
    rss = [make_rs(name, size, avail, image="nginx:1", revision=i + 1, created=i, desired=10,
                   max_replicas=13)
           for i, (name, size, avail) in enumerate(old_sets)]
    # Several old ReplicaSets need distinct templates.
    for i, rs in enumerate(rss):
        if i:
            rss[i] = make_rs(rs["metadata"]["name"], rs["spec"]["replicas"],
                             rs["status"]["availableReplicas"], image=f"nginx:0.{i}",
                             revision=i + 1, created=i, desired=10, max_replicas=13)
    if new is not None:
        rss.append(make_rs("new", new[0], new[1], image="nginx:2", revision=len(rss) + 1,
                           created=100, desired=10, max_replicas=13))
    h = Harness(make_d(replicas=10, image="nginx:2"), rss)
    h.sync()
    got = h.scaled()
    created = h.created_rs()
    if new is None:
        (rs,) = created
        got["new"] = rs["spec"]["replicas"]
        assert rs["metadata"]["annotations"][revisions.REVISION] == str(len(rss) + 1)
    else:
        assert created == []
    assert got == want


def test_rolling_update_events_use_kubernetes_wording():
    h = Harness(make_d(replicas=10, image="nginx:2"),
                [make_rs("old", 8, 8, desired=10, max_replicas=13),
                 make_rs("new", 5, 5, image="nginx:2", revision=2, created=10, desired=10,
                         max_replicas=13)])
    h.sync()
    assert ("Normal", "ScalingReplicaSet", "Scaled down replica set old to 3 from 8") in \
        h.recorder.events


def test_progressing_when_rollout_moves_and_complete_when_done():
    progressing = conditions.new_condition("Progressing", "True", conditions.NEW_RS_REASON, "", NOW -
                                   datetime.timedelta(seconds=60))
    old_status = {"observedGeneration": 1, "replicas": 13, "updatedReplicas": 3,
                  "readyReplicas": 10, "availableReplicas": 10, "conditions": [progressing]}
    rss = [make_rs("old", 8, 8, desired=10, max_replicas=13),
           make_rs("new", 5, 0, image="nginx:2", revision=2, created=10, desired=10,
                   max_replicas=13)]
    h = Harness(make_d(image="nginx:2", status=old_status), rss)
    h.sync()          # new grows 5 -> ... no: already 13 in total; updated 3 -> 5
    cond = h.condition("Progressing")
    assert (cond["reason"], cond["lastUpdateTime"]) == (conditions.RS_UPDATED_REASON, ts(0))
    assert cond["lastTransitionTime"] == progressing["lastTransitionTime"]
    assert cond["message"] == 'ReplicaSet "new" is progressing.'

    done = [make_rs("old", 0, 0, desired=10, max_replicas=13),
            make_rs("new", 10, 10, image="nginx:2", revision=2, created=10, desired=10,
                    max_replicas=13)]
    h = Harness(make_d(image="nginx:2", status=old_status), done)
    h.sync()
    status = h.status()
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "availableReplicas",
                                   "readyReplicas", "unavailableReplicas",
                                   "observedGeneration")} == {
        "replicas": 10, "updatedReplicas": 10, "availableReplicas": 10, "readyReplicas": 10,
        "unavailableReplicas": 0, "observedGeneration": 1}
    cond = h.condition("Progressing")
    assert (cond["status"], cond["reason"]) == ("True", conditions.NEW_RS_AVAILABLE_REASON)
    assert cond["message"] == 'ReplicaSet "new" has successfully progressed.'
    assert h.condition("Available")["reason"] == conditions.MIN_AVAILABLE_REASON


# -- progress deadline -------------------------------------------------------------------------
def stuck_harness(updated_ago):
    cond = conditions.new_condition("Progressing", "True", conditions.RS_UPDATED_REASON, "x",
                            NOW - datetime.timedelta(seconds=updated_ago))
    status = {"observedGeneration": 1, "replicas": 13, "updatedReplicas": 5,
              "readyReplicas": 8, "availableReplicas": 8, "unavailableReplicas": 5,
              "conditions": [cond, conditions.new_condition("Available", "True",
                                                    conditions.MIN_AVAILABLE_REASON,
                                                    "Deployment has minimum availability.",
                                                    NOW)]}
    rss = [make_rs("old", 8, 8, desired=10, max_replicas=13),
           make_rs("new", 5, 0, image="nginx:2", revision=2, created=10, desired=10,
                   max_replicas=13)]
    return Harness(make_d(image="nginx:2", status=status), rss)


def test_no_progress_past_the_deadline_is_progress_deadline_exceeded():
    h = stuck_harness(601)
    h.sync()
    cond = h.condition("Progressing")
    assert (cond["status"], cond["reason"]) == ("False", conditions.TIMED_OUT_REASON)
    assert cond["message"] == 'ReplicaSet "new" has timed out progressing.'


def test_a_stuck_rollout_is_requeued_for_its_deadline():
    h = stuck_harness(300)
    rest = h.sync()
    assert rest.of("update_status") == []
    assert len(h.queue) == 0
    h.clock.advance(299)
    assert len(h.queue) == 0
    h.clock.advance(2)
    assert len(h.queue) == 1


# -- Recreate ----------------------------------------------------------------------------
def test_recreate_scales_old_down_first_and_creates_nothing():
    old = make_rs("old", 3, 3, desired=3)
    h = Harness(make_d(replicas=3, image="nginx:2", strategy="Recreate"), [old],
                [make_pod(f"p{i}", old) for i in range(3)])
    h.sync()
    assert h.scaled() == {"old": 0} and h.created_rs() == []


def test_recreate_waits_for_old_pods_to_be_gone():
    old = make_rs("old", 0, 0, desired=3, status_replicas=0)
    h = Harness(make_d(replicas=3, image="nginx:2", strategy="Recreate"), [old],
                [make_pod("p0", old, deleting=True), make_pod("done", old, phase="Succeeded")])
    h.sync()
    assert h.created_rs() == [] and h.scaled() == {}
    # The last old pod goes: the Deployment is queued and the new ReplicaSet created.
    h.pod_informer.remove(h.pod_informer.store.get("default/p0"))
    assert h.queue.get(timeout=1) == KEY
    h.queue.done(KEY)
    h.sync()
    (rs,) = h.created_rs()
    assert rs["spec"]["replicas"] == 3


def test_recreate_while_old_replica_set_still_counts_pods():
    old = make_rs("old", 0, 0, desired=3, status_replicas=2)
    h = Harness(make_d(replicas=3, image="nginx:2", strategy="Recreate"), [old])
    h.sync()
    assert h.created_rs() == []


# -- scaling ------------------------------------------------------------------------------
def test_scaling_a_settled_deployment_resizes_its_one_replica_set():
    rs = make_rs("new", 10, 10, desired=10, max_replicas=13)
    h = Harness(make_d(replicas=15), [rs])
    h.sync()
    (update,) = h.rest.of("update")
    assert update[3]["spec"]["replicas"] == 15
    assert update[3]["metadata"]["annotations"][revisions.DESIRED_REPLICAS] == "15"
    assert update[3]["metadata"]["annotations"][revisions.MAX_REPLICAS] == "19"
    assert ("Normal", "ScalingReplicaSet", "Scaled up replica set new to 15 from 10") in \
        h.recorder.events


def test_resizing_mid_rollout_scales_proportionally():
    rss = [make_rs("old", 8, 8, desired=10, max_replicas=13),
           make_rs("new", 5, 0, image="nginx:2", revision=2, created=10, desired=10,
                   max_replicas=13)]
    h = Harness(make_d(replicas=20, image="nginx:2"), rss)
    h.sync()
    assert h.scaled() == {"old": 15, "new": 10}
    for _, _, _, body in h.rest.of("update"):
        assert body["metadata"]["annotations"][revisions.DESIRED_REPLICAS] == "20"
        assert body["metadata"]["annotations"][revisions.MAX_REPLICAS] == "25"


# -- history and rollback --------------------------------------------------------------------
def test_history_beyond_the_limit_is_deleted_oldest_revision_first():
    olds = [make_rs(f"old{i}", 0, 0, image=f"nginx:0.{i}", revision=i + 1, created=i,
                    desired=3) for i in range(4)]
    current = make_rs("new", 3, 3, image="nginx:2", revision=5, created=10, desired=3,
                      max_replicas=4)
    done = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
            "availableReplicas": 3}
    h = Harness(make_d(replicas=3, image="nginx:2", history=2, status=done), olds + [current])
    h.sync()
    assert sorted(a[3] for a in h.rest.of("delete")) == ["old0", "old1"]


def test_history_keeps_replica_sets_with_pods():
    olds = [make_rs("old0", 0, 0, image="nginx:0", revision=1, status_replicas=1),
            make_rs("old1", 0, 0, image="nginx:1", revision=2, created=1)]
    current = make_rs("new", 3, 3, image="nginx:2", revision=3, created=10, desired=3,
                      max_replicas=4)
    done = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
            "availableReplicas": 3}
    h = Harness(make_d(replicas=3, image="nginx:2", history=0, status=done), olds + [current])
    h.sync()
    assert [a[3] for a in h.rest.of("delete")] == ["old1"]


def test_rollback_reuses_the_old_replica_set_and_bumps_its_revision():
    # kubectl rollout undo put revision 1's template back into the Deployment.
    old = make_rs("v1", 0, 0, image="nginx:1", revision=1, desired=3, max_replicas=4)
    current = make_rs("v2", 3, 3, image="nginx:2", revision=2, created=10, desired=3,
                      max_replicas=4)
    h = Harness(make_d(replicas=3, image="nginx:1", annotations={revisions.REVISION: "2"}),
                [old, current])
    h.sync()
    assert h.created_rs() == []
    first, *rest = [a[3] for a in h.rest.of("update")]
    assert first["metadata"]["name"] == "v1"
    assert first["spec"]["replicas"] == 0
    assert first["metadata"]["annotations"][revisions.REVISION] == "3"
    assert first["metadata"]["annotations"][revisions.REVISION_HISTORY] == "1"
    # Then, in the same sync, the rollout scales it up (surge 1 of 3).
    assert h.scaled() == {"v1": 1}
    # The informer shows the updated ReplicaSet: the Deployment takes revision 3.
    h.rs_informer.put(rest[-1])
    h.sync()
    assert ("patch", "deployments", "default", "web",
            {"metadata": {"annotations": {revisions.REVISION: "3"}}}) in h.rest.actions
    assert h.created_rs() == []


# -- paused ---------------------------------------------------------------------------------
def test_paused_deployment_makes_no_rollout_progress_but_scales():
    rs = make_rs("v1", 3, 3, desired=3, max_replicas=4)
    h = Harness(make_d(replicas=5, image="nginx:2", paused=True), [rs])
    h.sync()
    assert h.created_rs() == []
    assert h.scaled() == {"v1": 5}
    statuses = [a[3]["status"] for a in h.rest.of("update_status")]
    cond = conditions.get_condition(statuses[0], "Progressing")
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("Unknown", conditions.PAUSED_REASON, "Deployment is paused")


def test_resuming_sets_deployment_resumed():
    paused = conditions.new_condition("Progressing", "Unknown", conditions.PAUSED_REASON, "", NOW)
    rs = make_rs("v1", 3, 3, desired=3, max_replicas=4)
    h = Harness(make_d(replicas=3, image="nginx:2", status={"conditions": [paused]}), [rs])
    h.sync()
    first = h.rest.of("update_status")[0][3]["status"]
    assert conditions.get_condition(first, "Progressing")["reason"] == conditions.RESUMED_REASON
    assert len(h.created_rs()) == 1         # and the rollout goes on


# -- ownership, collisions, failures ----------------------------------------------------------
def test_an_orphan_replica_set_that_matches_is_adopted():
    orphan = make_rs("orphan", 10, 10, owner=None, desired=10, max_replicas=13)
    h = Harness(make_d(replicas=10), [orphan])
    h.sync()
    patches = [a for a in h.rest.of("patch") if a[1] == "replicasets"]
    (patch,) = patches
    assert patch[3] == "orphan"
    refs = patch[4]["metadata"]["ownerReferences"]
    assert refs[0]["uid"] == D_UID and refs[0]["controller"] is True
    assert h.created_rs() == []     # its template is the Deployment's: it is the new one


def test_an_owned_replica_set_that_stops_matching_is_released():
    stray = make_rs("stray", 2, 2, labels={"app": "other"})
    h = Harness(make_d(replicas=1), [stray])
    h.sync()
    (patch,) = [a for a in h.rest.of("patch") if a[1] == "replicasets"]
    assert patch[3] == "stray" and patch[4]["metadata"]["ownerReferences"] == []


def test_a_hash_collision_bumps_collision_count():
    d = make_d(replicas=3)
    pod_hash = templatehash.compute_hash(d["spec"]["template"])
    squatter = make_rs(f"web-{pod_hash}", 1, 1, image="busybox", owner="someone-else",
                       labels={"app": "db"})
    h = Harness(d, [squatter],
                fail={"create": lambda body: AlreadyExists(409, "AlreadyExists", "exists")})
    with pytest.raises(AlreadyExists):
        h.sync()
    assert h.status()["collisionCount"] == 1
    # With the count, the next name differs.
    assert templatehash.compute_hash(d["spec"]["template"], 1) != pod_hash


def test_replica_failure_is_surfaced_from_the_replica_set():
    failure = {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
               "message": "quota", "lastTransitionTime": ts(5)}
    rs = make_rs("v1", 3, 1, desired=3, max_replicas=4, conditions=[failure])
    h = Harness(make_d(replicas=3), [rs])
    h.sync()
    cond = h.condition("ReplicaFailure")
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "FailedCreate", "quota")


def test_status_is_not_rewritten_when_unchanged():
    rs = make_rs("v1", 3, 3, desired=3, max_replicas=4)
    h = Harness(make_d(replicas=3, annotations={revisions.REVISION: "1"}), [rs])
    h.sync()
    written = h.status()
    d = copy.deepcopy(h.d_informer.store.get(KEY))
    d["status"] = written
    h.d_informer.put(d)
    assert h.sync().actions == []


def test_a_bad_max_surge_is_a_warning_not_a_retry_loop():
    h = Harness(make_d(replicas=3, surge="lots"))
    h.sync()
    assert [e[:2] for e in h.recorder.events] == [("Warning", "InvalidSpec")]


def test_an_empty_selector_selects_nothing_and_warns():
    d = make_d(replicas=3, generation=2)
    d["spec"]["selector"] = {}
    h = Harness(d)
    h.sync()
    assert h.created_rs() == []
    assert ("Warning", "SelectingAll") in [e[:2] for e in h.recorder.events]
    assert h.status()["observedGeneration"] == 2


def test_replica_set_events_enqueue_the_owner():
    h = Harness(make_d(replicas=3))
    h.rs_informer.put(make_rs("v1", 3, 3))
    assert h.queue.get(timeout=1) == KEY
    h.queue.done(KEY)
    h.rs_informer.put(make_rs("other", 3, 3, owner="x", labels={"app": "db"}))
    assert len(h.queue) == 0


def test_min_ready_seconds_is_carried_to_the_new_replica_set():
    d = make_d(replicas=3, annotations={revisions.REVISION: "1"})
    d["spec"]["minReadySeconds"] = 5
    h = Harness(d, [make_rs("v1", 3, 3, desired=3, max_replicas=4)])
    h.sync()
    (update,) = h.rest.of("update")
    assert update[3]["metadata"]["name"] == "v1" and update[3]["spec"]["minReadySeconds"] == 5


def test_a_failed_replica_set_create_is_reported():
    h = Harness(make_d(replicas=3),
                fail={"create": lambda body: Forbidden(403, "Forbidden", "quota exceeded")})
    with pytest.raises(Forbidden):
        h.sync()
    cond = h.condition("Progressing")
    assert (cond["status"], cond["reason"]) == ("False", conditions.FAILED_RS_CREATE_REASON)
    assert cond["message"].startswith('Failed to create new replica set "web-')
    assert [e[:2] for e in h.recorder.events] == [("Warning", conditions.FAILED_RS_CREATE_REASON)]
