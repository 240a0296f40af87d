"""StatefulSet controller: OrderedReady sequencing, scale down, rolling update, partition, sync."""

import datetime

import pytest

from control.client import AlreadyExists, RateLimitingQueue
from control.controllers import history
from control.controllers import statefulset as stc
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
CUR, UPD = "web-cur", "web-upd"


def ts(seconds_ago):
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_sts(replicas=3, policy="OrderedReady", strategy="RollingUpdate", partition=None,
             min_ready=0, image="nginx", claims=False, status=None):
    update = {"type": strategy}
    if partition is not None:
        update["rollingUpdate"] = {"partition": partition}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid",
                        "generation": 4, "resourceVersion": "7"},
           "spec": {"replicas": replicas, "podManagementPolicy": policy, "serviceName": "web",
                    "selector": {"matchLabels": {"app": "web"}}, "updateStrategy": update,
                    "minReadySeconds": min_ready, "revisionHistoryLimit": 10,
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "c", "image": image}]}}},
           "status": status or {}}
    if claims:
        sts["spec"]["volumeClaimTemplates"] = [{"metadata": {"name": "data"}}]
    return sts


# Pod states, as short codes in the tables below.
def pod(ordinal, state="ready", revision=UPD, ready_for=100):
    meta = {"name": f"web-{ordinal}", "namespace": "default", "uid": f"uid-{ordinal}",
            "resourceVersion": "3", "labels": {"app": "web", history.HASH_LABEL: revision},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                 "uid": "sts-uid", "controller": True}]}
    phase, ready = {"pending": ("Pending", False), "running": ("Running", False),
                    "ready": ("Running", True), "failed": ("Failed", False),
                    "terminating": ("Running", True)}[state]
    if state == "terminating":
        meta["deletionTimestamp"] = ts(0)
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": ts(ready_for)}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "conditions": conditions}}


def pods_of(states, revision=UPD):
    """{ordinal: pod} from a list of states (None: no pod)."""
    return {i: pod(i, s, revision) for i, s in enumerate(states) if s is not None}


def plan_of(sts, pods, current=CUR, update=UPD):
    plan = stc.next_actions(sts, pods, current, update, NOW)
    return plan.create, [p["metadata"]["name"] for p in plan.delete]


# -- OrderedReady sequencing ------------------------------------------------------------------
@pytest.mark.parametrize("states, want", [
    ([], ([(0, UPD)], [])),                                # start with web-0
    (["pending"], ([], [])),                               # wait for web-0
    (["running"], ([], [])),                               # running is not enough: Ready
    (["ready"], ([(1, UPD)], [])),                         # then web-1
    (["ready", "ready"], ([(2, UPD)], [])),
    (["ready", "ready", "ready"], ([], [])),               # done
    (["ready", None, "ready"], ([(1, UPD)], [])),          # a lost web-1 comes back
    (["ready", "failed", "ready"], ([], ["web-1"])),       # a failed one is deleted first
    (["ready", "terminating", "ready"], ([], [])),         # and waited for
    (["pending", None, None], ([], [])),
])
def test_ordered_ready_next_action(states, want):
    assert plan_of(make_sts(3), pods_of(states)) == want


def test_ordered_ready_waits_for_min_ready_seconds():
    sts = make_sts(3, min_ready=60)
    fresh = {0: pod(0, "ready", ready_for=10)}
    assert plan_of(sts, fresh) == ([], [])
    assert plan_of(sts, {0: pod(0, "ready", ready_for=100)}) == ([(1, UPD)], [])


@pytest.mark.parametrize("states, want", [
    ([], ([(0, UPD), (1, UPD), (2, UPD)], [])),
    (["pending", None, "failed"], ([(1, UPD)], ["web-2"])),
    (["ready", "ready", "ready", "ready", "pending"], ([], ["web-4", "web-3"])),
])
def test_parallel_acts_on_all_at_once(states, want):
    assert plan_of(make_sts(3, policy="Parallel"), pods_of(states)) == want


# -- scale down ---------------------------------------------------------------------------------
@pytest.mark.parametrize("replicas, states, want_deleted", [
    (1, ["ready", "ready", "ready"], ["web-2"]),            # the highest ordinal first
    (1, ["ready", "ready", "terminating"], []),              # one at a time
    (1, ["ready", "ready"], ["web-1"]),
    (1, ["ready", "ready", None, "ready"], ["web-3"]),       # a gap is fine
    (1, ["ready", "pending", "ready"], []),                  # a lower unhealthy pod blocks
    (0, ["ready"], ["web-0"]),
    (3, ["ready", "ready", "ready"], []),
])
def test_ordered_scale_down(replicas, states, want_deleted):
    assert plan_of(make_sts(replicas), pods_of(states)) == ([], want_deleted)


# -- rolling update and partition ---------------------------------------------------------------
@pytest.mark.parametrize("partition, revisions, states, want_deleted", [
    (None, [CUR, CUR, CUR], ["ready"] * 3, ["web-2"]),           # highest ordinal first
    (None, [CUR, CUR, UPD], ["ready"] * 3, ["web-1"]),
    (None, [CUR, CUR, UPD], ["ready", "ready", "running"], []),  # wait for web-2 Ready
    (None, [UPD, UPD, UPD], ["ready"] * 3, []),
    (2, [CUR, CUR, CUR], ["ready"] * 3, ["web-2"]),
    (2, [CUR, CUR, UPD], ["ready"] * 3, []),                     # below the partition: kept
    (3, [CUR, CUR, CUR], ["ready"] * 3, []),
])
def test_rolling_update_step(partition, revisions, states, want_deleted):
    pods = {i: pod(i, s, r) for i, (s, r) in enumerate(zip(states, revisions))}
    assert plan_of(make_sts(3, partition=partition), pods) == ([], want_deleted)


def test_on_delete_does_not_replace_but_recreates_at_the_update_revision():
    sts = make_sts(3, strategy="OnDelete")
    assert plan_of(sts, {i: pod(i, "ready", CUR) for i in range(3)}) == ([], [])
    assert plan_of(sts, {0: pod(0, "ready", CUR), 2: pod(2, "ready", CUR)}) == \
        ([(1, UPD)], [])


@pytest.mark.parametrize("start, partition, states, want", [
    (1, None, [None], ([(1, UPD)], [])),                        # web-1 first, not web-0
    (1, None, [None, "ready", "ready"], ([], [])),              # web-1, web-2: complete
    (1, None, ["ready", "ready", "ready"], ([], ["web-0"])),     # below the start: condemned
    (2, 2, [None, None, "ready", None], ([(3, CUR)], [])),       # partition counts from start
    (2, 1, [None, None, "ready", None], ([(3, UPD)], [])),
])
def test_ordinals_start(start, partition, states, want):
    sts = make_sts(2, partition=partition)
    sts["spec"]["ordinals"] = {"start": start}
    assert plan_of(sts, pods_of(states)) == want


def test_a_pod_below_the_partition_is_recreated_at_the_current_revision():
    sts = make_sts(3, partition=2)
    pods = {0: pod(0, "ready", CUR), 2: pod(2, "ready", UPD)}
    assert plan_of(sts, pods) == ([(1, CUR)], [])


# -- status -----------------------------------------------------------------------------------
def test_status_mid_rollout_and_after():
    sts = make_sts(3, status={"collisionCount": 0})
    pods = {0: pod(0, "ready", CUR), 1: pod(1, "running", UPD), 2: pod(2, "ready", UPD)}
    status = stc.stateful_set_status(sts, pods, CUR, UPD, NOW)
    assert status == {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                      "currentReplicas": 1, "updatedReplicas": 2, "currentRevision": CUR,
                      "updateRevision": UPD, "observedGeneration": 4, "collisionCount": 0}
    done = {i: pod(i, "ready", UPD) for i in range(3)}
    status = stc.stateful_set_status(sts, done, CUR, UPD, NOW)
    assert (status["currentRevision"], status["currentReplicas"]) == (UPD, 3)


# -- sync against fakes -------------------------------------------------------------------------
class Rest(FakeRest):
    def update(self, resource, namespace, body, subresource=None):
        self.actions.append(("update", resource.plural, namespace, body))
        return body


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, kind, reason, message):
        self.events.append((kind, reason, message))


class Harness:
    def __init__(self, sts, pods=(), revisions=(), fail=None):
        self.rest = Rest([sts], fail)
        self.sts_inf, self.pod_inf = FakeInformer([sts]), FakeInformer(pods)
        self.rev_inf = FakeInformer(revisions)
        self.recorder = Recorder()
        self.controller = stc.StatefulSetController(
            self.rest, self.sts_inf, self.pod_inf, self.rev_inf,
            queue=RateLimitingQueue(clock=FakeClock()), wall_clock=lambda: NOW,
            recorder=self.recorder)

    def sync(self):
        self.rest.actions.clear()
        self.controller.sync("default/web")
        return self.rest


def test_sync_creates_the_revision_then_web_0_with_stable_identity():
    h = Harness(make_sts(3))
    rest = h.sync()
    rev, created = [a[3] for a in rest.of("create")]
    assert rev["kind"] == "ControllerRevision" and rev["revision"] == 1
    meta = created["metadata"]
    assert meta["name"] == "web-0"
    assert meta["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "web-0",
                              "apps.kubernetes.io/pod-index": "0",
                              "controller-revision-hash": rev["metadata"]["name"]}
    assert (created["spec"]["hostname"], created["spec"]["subdomain"]) == ("web-0", "web")
    assert meta["ownerReferences"][0]["uid"] == "sts-uid"
    (status,) = rest.of("update_status")
    assert status[3]["status"]["updateRevision"] == rev["metadata"]["name"]
    assert h.recorder.events == [("Normal", "SuccessfulCreate",
                                  "create Pod web-0 in StatefulSet web successful")]


def test_sync_pod_from_an_old_revision_uses_that_template():
    old, new = make_sts(3, image="v1", partition=3), make_sts(3, image="v2", partition=3)
    revisions = []
    for number, s in ((1, old), (2, new)):
        r = history.new_revision(s, "apps/v1", "StatefulSet", number)
        r["metadata"].update(uid=f"r{number}", resourceVersion="1")
        revisions.append(r)
    new["status"] = {"currentRevision": revisions[0]["metadata"]["name"]}
    pods = [pod(0, "ready", revisions[0]["metadata"]["name"])]
    h = Harness(new, pods, revisions)
    (created,) = [a[3] for a in h.sync().of("create")]
    assert created["metadata"]["name"] == "web-1"
    assert created["spec"]["containers"][0]["image"] == "v1"      # below the partition
    assert "$patch" not in created["spec"] and "$patch" not in created["metadata"]


@pytest.mark.parametrize("owner_uid, warned", [("sts-uid", False), ("other", True)])
def test_sync_name_taken(owner_uid, warned):
    taken = pod(0)
    taken["metadata"]["ownerReferences"][0]["uid"] = owner_uid
    h = Harness(make_sts(1), fail={"create": lambda body: AlreadyExists(409, "", "taken")
                                   if body["kind"] == "Pod" else None})
    h.rest.objects[("Pod", "default/web-0")] = taken
    h.sync()        # does not raise: ours will show up in the cache; another's is reported
    failed = [e for e in h.recorder.events if e[1] == "FailedCreate"]
    assert bool(failed) == warned


def test_pods_not_named_as_members_are_ignored():
    stranger = pod(0)
    stranger["metadata"]["name"] = "webby"
    h = Harness(make_sts(1), [stranger])
    names = [a[3]["metadata"]["name"] for a in h.sync().of("create") if a[1] == "pods"]
    assert names == ["web-0"]


def test_pod_events_enqueue_the_set_including_orphans_its_selector_matches():
    h = Harness(make_sts(1))
    orphan = pod(3)
    orphan["metadata"].pop("ownerReferences")
    h.pod_inf.put(orphan)
    assert h.controller.queue.get(0) == "default/web"
    h.controller.queue.done("default/web")
    # As Kubernetes' getStatefulSetsForPod: by selector (isMemberOf only limits the claim).
    stranger = pod(0)
    stranger["metadata"].update(name="other-0", ownerReferences=[], labels={"app": "db"})
    h.pod_inf.put(stranger)
    assert len(h.controller.queue) == 0
