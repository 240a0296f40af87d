"""Job controller sync (given these pods, these actions and this status), and TTL-after-finished."""

import datetime

import pytest

from control.client import RateLimitingQueue
from control.controllers.job import JobController
from control.controllers.jobpods import COMPLETION_INDEX, format_indexes, pod_for_index
from control.controllers.ttlafterfinished import TTLAfterFinishedController
from control.objects.meta import timestamp
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
KEY = "default/pi"
UID = "job-uid"
LABELS = {"batch.kubernetes.io/controller-uid": UID, "controller-uid": UID,
          "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}


def ts(seconds_ago):
    return timestamp(NOW - datetime.timedelta(seconds=seconds_ago))


def make_job(completions=1, parallelism=1, backoff_limit=6, mode="NonIndexed", suspend=False,
             deadline=None, status=None, restart_policy="Never", ttl=None, **spec):
    spec = {"completions": completions, "parallelism": parallelism,
            "backoffLimit": backoff_limit, "completionMode": mode, "suspend": suspend,
            "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed",
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}},
            "template": {"metadata": {"labels": dict(LABELS)},
                         "spec": {"restartPolicy": restart_policy,
                                  "containers": [{"name": "pi", "image": "perl"}]}},
            **spec}
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": UID,
                         "resourceVersion": "10", "labels": dict(LABELS)},
            "spec": spec, "status": status or {}}


def make_pod(name, phase="Running", index=None, finished_ago=None, ready=True, created=100,
             deleting=False, restarts=0, owner=UID):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "5",
            "labels": dict(LABELS), "creationTimestamp": ts(created)}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi",
                                    "uid": owner, "controller": True}]
    if index is not None:
        meta["annotations"] = {COMPLETION_INDEX: str(index)}
        meta["labels"][COMPLETION_INDEX] = str(index)
    if deleting:
        meta["deletionTimestamp"] = ts(0)
    container = {"name": "pi", "restartCount": restarts}
    if finished_ago is not None:
        container["state"] = {"terminated": {"finishedAt": ts(finished_ago),
                                             "exitCode": 0 if phase == "Succeeded" else 1}}
    conditions = [{"type": "Ready", "status": "True" if ready and phase == "Running" else "False",
                   "lastTransitionTime": ts(created)}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"nodeName": "n1"},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [container]}}


class RecordingQueue(RateLimitingQueue):
    def __init__(self, clock):
        super().__init__(clock=clock)
        self.delays = []

    def add_after(self, key, delay):
        self.delays.append((key, delay))
        super().add_after(key, delay)


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((event_type, reason, message))

    def reasons(self):
        return [reason for _, reason, _ in self.events]


class Harness:
    def __init__(self, job, pods=(), fail=None, now=NOW):
        self.clock = FakeClock()
        self.now = now
        self.rest = FakeRest([job], fail)
        self.job_informer, self.pod_informer = FakeInformer([job]), FakeInformer(pods)
        self.queue = RecordingQueue(self.clock)
        self.recorder = Recorder()
        self.controller = JobController(self.rest, self.job_informer, self.pod_informer,
                                        queue=self.queue, clock=self.clock,
                                        wall_clock=lambda: self.now, recorder=self.recorder)

    def sync(self):
        self.rest.actions.clear()
        self.queue.delays.clear()
        self.controller.sync(KEY)
        return self.rest

    def status(self):
        updates = self.rest.of("update_status")
        return updates[-1][3]["status"] if updates else None

    def conditions(self):
        return {c["type"]: (c["status"], c["reason"])
                for c in (self.status() or {}).get("conditions") or ()}

    def created(self):
        return [a[3] for a in self.rest.of("create")]

    def deleted(self):
        return sorted(a[3] for a in self.rest.of("delete"))


@pytest.mark.parametrize("job, pods, creates, deletes, counts, conditions", [
    # A new Job: parallelism pods at once; startTime set.
    (make_job(5, 2), [], 2, [], (0, 0, 0), {}),
    # Two running: nothing to do.
    (make_job(5, 2), [make_pod("a"), make_pod("b"), make_pod("s", "Succeeded")], 0, [],
     (2, 1, 0), {}),
    # Only one completion left: one pod, not two.
    (make_job(5, 2), [make_pod("a")] + [make_pod(f"s{i}", "Succeeded") for i in range(4)], 0,
     [], (1, 4, 0), {}),
    (make_job(5, 2), [make_pod(f"s{i}", "Succeeded") for i in range(3)], 2, [], (0, 3, 0), {}),
    # Parallelism lowered: the surplus pod goes (the not-ready one first).
    (make_job(5, 1), [make_pod("a"), make_pod("b", ready=False)], 0, ["b"], (1, 0, 0), {}),
    # Done: SuccessCriteriaMet and Complete together when nothing runs.
    (make_job(5, 2), [make_pod(f"s{i}", "Succeeded") for i in range(5)], 0, [], (0, 5, 0),
     {"SuccessCriteriaMet": ("True", "CompletionsReached"),
      "Complete": ("True", "CompletionsReached")}),
    # Done with a pod still running (completions lowered): delete it, Complete later.
    (make_job(2, 2), [make_pod("a"), make_pod("s0", "Succeeded"), make_pod("s1", "Succeeded")],
     0, ["a"], (0, 2, 0), {"SuccessCriteriaMet": ("True", "CompletionsReached")}),
    # Work queue (no completions): parallelism pods until one succeeds...
    (make_job(None, 3), [], 3, [], (0, 0, 0), {}),
    # ...then no new pods while the others finish...
    (make_job(None, 3), [make_pod("a"), make_pod("s", "Succeeded")], 0, [], (1, 1, 0), {}),
    # ...and complete once none runs.
    (make_job(None, 3), [make_pod("s", "Succeeded"), make_pod("f", "Failed", finished_ago=60)],
     0, [], (0, 1, 1), {"Complete": ("True", "CompletionsReached"),
                        "SuccessCriteriaMet": ("True", "CompletionsReached")}),
    # More failures than backoffLimit: FailureTarget, the running pod deleted...
    (make_job(3, 2, backoff_limit=1), [make_pod("a"), make_pod("f1", "Failed", finished_ago=9),
                                       make_pod("f2", "Failed", finished_ago=5)],
     0, ["a"], (0, 0, 2), {"FailureTarget": ("True", "BackoffLimitExceeded")}),
    # ...and Failed at once when nothing runs.
    (make_job(3, 2, backoff_limit=1), [make_pod("f1", "Failed", finished_ago=9),
                                       make_pod("f2", "Failed", finished_ago=5)],
     0, [], (0, 0, 2), {"FailureTarget": ("True", "BackoffLimitExceeded"),
                        "Failed": ("True", "BackoffLimitExceeded")}),
    # backoffLimit 0: the first failure fails the Job.
    (make_job(1, 1, backoff_limit=0), [make_pod("f1", "Failed", finished_ago=1)], 0, [],
     (0, 0, 1), {"FailureTarget": ("True", "BackoffLimitExceeded"),
                 "Failed": ("True", "BackoffLimitExceeded")}),
    # restartPolicy OnFailure: container restarts count against backoffLimit.
    (make_job(1, 1, backoff_limit=2, restart_policy="OnFailure"), [make_pod("a", restarts=2)],
     0, ["a"], (0, 0, 0), {"FailureTarget": ("True", "BackoffLimitExceeded")}),
    (make_job(1, 1, backoff_limit=3, restart_policy="OnFailure"), [make_pod("a", restarts=2)],
     0, [], (1, 0, 0), {}),
    # Suspended: active pods deleted, condition Suspended.
    (make_job(5, 2, suspend=True), [make_pod("a"), make_pod("b")], 0, ["a", "b"], (0, 0, 0),
     {"Suspended": ("True", "JobSuspended")}),
    (make_job(5, 2, suspend=True), [], 0, [], (0, 0, 0), {"Suspended": ("True", "JobSuspended")}),
    # A pod being deleted is terminating, not active; with TerminatingOrFailed it is replaced.
    (make_job(2, 2), [make_pod("a"), make_pod("gone", deleting=True)], 1, [], (1, 0, 0), {}),
    (make_job(2, 2, podReplacementPolicy="Failed"), [make_pod("a"),
                                                    make_pod("gone", deleting=True)],
     0, [], (1, 0, 0), {}),
    # Pods of another owner are not ours.
    (make_job(1, 1), [make_pod("other", owner="someone-else")], 1, [], (0, 0, 0), {}),
])
def test_sync(job, pods, creates, deletes, counts, conditions):
    h = Harness(job, pods)
    h.sync()
    assert len(h.created()) == creates
    assert h.deleted() == deletes
    status = h.status()
    assert (status["active"], status["succeeded"], status["failed"]) == counts
    assert h.conditions() == conditions
    assert status["uncountedTerminatedPods"] == {}
    if "Complete" in conditions:
        assert status["completionTime"] == ts(0)
        assert ("Normal", "Completed", "Job completed") in h.recorder.events
    else:
        assert "completionTime" not in status
    if not job["spec"]["suspend"]:
        assert status["startTime"] == ts(0)


def test_created_pods_carry_the_template_labels_and_the_job_as_controller():
    h = Harness(make_job(3, 3))
    h.sync()
    for pod in h.created():
        meta = pod["metadata"]
        assert meta["generateName"] == "pi-"
        assert meta["labels"] == LABELS
        assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job",
                                            "name": "pi", "uid": UID, "controller": True,
                                            "blockOwnerDeletion": True}]
        assert pod["spec"]["restartPolicy"] == "Never"
    assert h.recorder.reasons().count("SuccessfulCreate") == 3
    assert h.controller.expectations.pending(KEY) == (3, 0)


def test_expectations_block_a_second_create_until_the_pods_are_seen():
    h = Harness(make_job(2, 2))
    assert len(h.sync().of("create")) == 2
    created = h.created()
    assert h.sync().of("create") == []
    for pod in created:
        h.pod_informer.put(pod)
    assert h.controller.expectations.satisfied(KEY)
    assert h.sync().of("create") == []


def test_the_failure_event_and_the_deleted_pods_events():
    h = Harness(make_job(3, 2, backoff_limit=1),
                [make_pod("a"), make_pod("f1", "Failed", finished_ago=9),
                 make_pod("f2", "Failed", finished_ago=5)])
    h.sync()
    assert ("Warning", "BackoffLimitExceeded",
            "Job has reached the specified backoff limit") in h.recorder.events
    assert ("Normal", "SuccessfulDelete", "Deleted pod: a") in h.recorder.events


def test_failure_target_then_failed_once_the_pods_are_gone():
    job = make_job(3, 2, backoff_limit=1)
    h = Harness(job, [make_pod("a"), make_pod("f1", "Failed", finished_ago=9),
                      make_pod("f2", "Failed", finished_ago=5)])
    h.sync()
    status = h.status()
    job = {**job, "status": status}
    h2 = Harness(job, [make_pod("f1", "Failed", finished_ago=9),
                       make_pod("f2", "Failed", finished_ago=5)])
    h2.sync()
    assert h2.conditions()["Failed"] == ("True", "BackoffLimitExceeded")
    # The interim condition keeps its transition time.
    assert [c for c in h2.status()["conditions"] if c["type"] == "FailureTarget"] == \
        [c for c in status["conditions"] if c["type"] == "FailureTarget"]


def test_a_finished_job_is_left_alone():
    job = make_job(1, 1, status={"conditions": [{"type": "Complete", "status": "True"}]})
    h = Harness(job, [])
    assert h.sync().actions == []


@pytest.mark.parametrize("failed_ago, succeeded_ago, wait", [
    ([5], [], 5.0),                # one failure: 10 s after it
    ([11], [], None),              # ...passed: create now
    ([30, 5], [], 15.0),           # two failures: 20 s after the last
    ([50, 40, 30], [], 10.0),      # three: 40 s
    ([30, 5], [20], 5.0),          # a success in between: only one failure counts
    ([400] * 9, [], None),         # capped at 6 minutes (not 2,560 s)
    ([300] * 9, [], 60.0),
])
def test_backoff_before_recreating_pods(failed_ago, succeeded_ago, wait):
    pods = [make_pod(f"f{i}", "Failed", finished_ago=ago) for i, ago in enumerate(failed_ago)]
    pods += [make_pod(f"s{i}", "Succeeded", finished_ago=ago)
             for i, ago in enumerate(succeeded_ago)]
    h = Harness(make_job(5, 1, backoff_limit=20), pods)
    h.sync()
    if wait is None:
        assert len(h.created()) == 1
        assert h.queue.delays == []
    else:
        assert h.created() == []
        assert h.queue.delays == [(KEY, pytest.approx(wait))]


def test_backoff_base_is_configurable():
    h = Harness(make_job(5, 1), [make_pod("f", "Failed", finished_ago=0)])
    h.controller.backoff_base = 0.2
    h.sync()
    assert h.queue.delays == [(KEY, pytest.approx(0.2))]


def test_a_failed_pod_without_finish_time_counts_from_when_it_was_first_seen():
    pod = make_pod("f", "Failed")
    h = Harness(make_job(5, 1), [pod])
    h.sync()
    assert h.queue.delays == [(KEY, pytest.approx(10.0))]
    h.now = NOW + datetime.timedelta(seconds=4)
    h.sync()
    assert h.queue.delays == [(KEY, pytest.approx(6.0))]
    h.now = NOW + datetime.timedelta(seconds=10)
    h.sync()
    assert len(h.created()) == 1


def test_active_deadline_requeues_then_fails_the_job():
    job = make_job(5, 2, deadline=60, status={"startTime": ts(30)})
    h = Harness(job, [make_pod("a"), make_pod("b")])
    h.sync()
    assert h.queue.delays == [(KEY, pytest.approx(30.0))]
    assert h.conditions() == {}
    h.now = NOW + datetime.timedelta(seconds=30)
    h.sync()
    assert h.deleted() == ["a", "b"]
    assert h.conditions() == {"FailureTarget": ("True", "DeadlineExceeded")}
    assert ("Warning", "DeadlineExceeded",
            "Job was active longer than specified deadline") in h.recorder.events


def test_resuming_a_suspended_job_resets_its_start_time():
    suspended = {"type": "Suspended", "status": "True", "reason": "JobSuspended",
                 "message": "Job suspended", "lastTransitionTime": ts(100)}
    job = make_job(2, 2, status={"startTime": ts(500), "conditions": [suspended]})
    h = Harness(job)
    h.sync()
    assert h.conditions() == {"Suspended": ("False", "JobResumed")}
    assert h.status()["startTime"] == ts(0)
    assert len(h.created()) == 2
    assert "Resumed" in h.recorder.reasons()


def test_indexed_job_creates_the_lowest_missing_indexes():
    pods = [make_pod("p0", "Succeeded", index=0), make_pod("p1", index=1)]
    h = Harness(make_job(4, 3, mode="Indexed"), pods)
    h.sync()
    created = sorted(h.created(), key=lambda p: p["metadata"]["generateName"])
    assert [p["metadata"]["generateName"] for p in created] == ["pi-2-", "pi-3-"]
    pod = created[0]
    assert pod["metadata"]["annotations"][COMPLETION_INDEX] == "2"
    assert pod["metadata"]["labels"][COMPLETION_INDEX] == "2"
    assert pod["spec"]["hostname"] == "pi-2"
    assert pod["spec"]["containers"][0]["env"] == [{
        "name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]
    status = h.status()
    assert status["completedIndexes"] == "0"
    assert (status["active"], status["succeeded"]) == (1, 1)


def test_indexed_job_deletes_duplicates_and_completes_when_every_index_succeeded():
    pods = [make_pod("a", index=1, created=100), make_pod("b", index=1, created=50),
            make_pod("s0", "Succeeded", index=0)]
    h = Harness(make_job(3, 3, mode="Indexed"), pods)
    h.sync()
    assert h.deleted() == ["b"]         # the younger duplicate
    pods = [make_pod(f"s{i}", "Succeeded", index=i) for i in (0, 1, 2)]
    pods.append(make_pod("again", "Succeeded", index=1))
    h = Harness(make_job(3, 3, mode="Indexed"), pods)
    h.sync()
    assert h.conditions()["Complete"] == ("True", "CompletionsReached")
    assert h.status()["completedIndexes"] == "0-2"
    assert h.status()["succeeded"] == 3


@pytest.mark.parametrize("indexes, text", [
    ([], ""), ([0], "0"), ([0, 1], "0,1"), ([0, 1, 2], "0-2"),
    ([0, 1, 2, 5, 7, 8], "0-2,5,7,8"), ([9, 3, 4, 5, 6], "3-6,9"),
])
def test_format_indexes(indexes, text):
    assert format_indexes(indexes) == text


def test_the_completion_index_env_is_not_added_twice():
    job = make_job(2, 2, mode="Indexed")
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "JOB_COMPLETION_INDEX", "value": "mine"}]
    job["spec"]["template"]["spec"]["hostname"] = "fixed"
    pod = pod_for_index(job, 1)
    assert pod["spec"]["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX",
                                                    "value": "mine"}]
    assert pod["spec"]["hostname"] == "fixed"
    assert job["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "JOB_COMPLETION_INDEX", "value": "mine"}]


def test_an_invalid_selector_is_reported_not_retried():
    job = make_job()
    job["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}
    h = Harness(job)
    h.sync()
    assert h.rest.actions == []
    assert h.recorder.reasons() == ["InvalidSelector"]


# -- TTL after finished -------------------------------------------------------------------


class DeleteRecordingRest(FakeRest):
    def delete(self, resource, namespace, name, **kwargs):
        super().delete(resource, namespace, name)
        self.actions[-1] = ("delete", resource.plural, namespace, name, kwargs)


def finished_job(ttl, finished_ago, type_="Complete"):
    return make_job(ttl=ttl, status={"conditions": [
        {"type": type_, "status": "True", "lastTransitionTime": ts(finished_ago)}]})


@pytest.mark.parametrize("job, delay, deleted", [
    (finished_job(100, 40), 60.0, False),
    (finished_job(100, 100), None, True),
    (finished_job(0, 0, "Failed"), None, True),
    (finished_job(None, 1000), None, False),       # no TTL: kept
    (make_job(ttl=0), None, False),                 # not finished
])
def test_ttl_after_finished(job, delay, deleted):
    rest = DeleteRecordingRest([job])
    queue = RecordingQueue(FakeClock())
    controller = TTLAfterFinishedController(rest, FakeInformer([job]), queue=queue,
                                            wall_clock=lambda: NOW)
    controller.sync(KEY)
    assert queue.delays == ([(KEY, pytest.approx(delay))] if delay else [])
    if deleted:
        assert rest.actions == [("delete", "jobs", "default", "pi",
                                 {"propagation_policy": "Foreground",
                                  "preconditions": {"uid": UID}})]
    else:
        assert rest.actions == []


def test_ttl_rereads_the_job_before_deleting():
    cached = finished_job(10, 100)
    fresh = finished_job(1000, 100)             # the TTL was raised meanwhile
    rest = DeleteRecordingRest([fresh])
    queue = RecordingQueue(FakeClock())
    controller = TTLAfterFinishedController(rest, FakeInformer([cached]), queue=queue,
                                            wall_clock=lambda: NOW)
    controller.sync(KEY)
    assert rest.actions == []
    assert queue.delays == [(KEY, pytest.approx(900.0))]


def test_the_manager_builds_the_job_controllers_with_the_backoff_flag():
    from control.controllers import manager
    args = manager.parse_args(["--api-server", "http://x", "--controllers",
                               "job,cronjob,ttl-after-finished",
                               "--job-pod-failure-backoff", "0.2"])
    built = manager.Manager(FakeRest(), args.controllers, 1, args)
    assert [c.name for c in built.controllers] == ["job", "cronjob", "ttl-after-finished"]
    assert built.controllers[0].backoff_base == 0.2
    default = manager.parse_args(["--api-server", "http://x"])
    assert default.job_pod_failure_backoff == 10.0
    assert manager.CONTROLLERS["job"](FakeRest(), manager.SharedInformers(FakeRest()),
                                      None).backoff_base == 10.0


def test_success_already_met_is_not_turned_into_a_failure():
    met = {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
           "message": "Reached expected number of succeeded pods", "lastTransitionTime": ts(5)}
    job = make_job(1, 1, backoff_limit=0, status={"conditions": [met], "startTime": ts(60)})
    h = Harness(job, [make_pod("s", "Succeeded"), make_pod("f", "Failed", finished_ago=1)])
    h.sync()
    assert h.conditions() == {"SuccessCriteriaMet": ("True", "CompletionsReached"),
                              "Complete": ("True", "CompletionsReached")}


@pytest.mark.parametrize("policy, created", [("TerminatingOrFailed", ["pi-0-"]),
                                             ("Failed", [])])
def test_an_indexed_pod_being_deleted_is_replaced_unless_the_policy_waits(policy, created):
    pods = [make_pod("gone", index=0, deleting=True), make_pod("one", index=1)]
    h = Harness(make_job(2, 2, mode="Indexed", podReplacementPolicy=policy), pods)
    h.sync()
    assert [p["metadata"]["generateName"] for p in h.created()] == created
    assert h.status()["terminating"] == 1


def test_pod_events_observe_expectations_and_queue_the_job():
    h = Harness(make_job(2, 2))
    h.sync()
    created = h.created()
    assert h.controller.expectations.pending(KEY) == (2, 0)
    h.pod_informer.put(created[0])
    assert h.controller.expectations.pending(KEY) == (1, 0)
    stranger = make_pod("x", owner="someone-else")
    h.pod_informer.put(stranger)
    assert h.controller.expectations.pending(KEY) == (1, 0)
    assert len(h.queue) == 1        # the job's key, once
    h.pod_informer.put(created[1])
    assert h.controller.expectations.satisfied(KEY)


def test_a_status_conflict_does_not_overwrite_a_finished_job():
    from control.client import Conflict
    stale = make_job(1, 1)
    fresh = make_job(1, 1, status={"conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": ts(3)}]})
    calls = []

    def conflict_once(body):
        calls.append(body)
        return Conflict(409, "Conflict", "stale") if len(calls) == 1 else None

    h = Harness(stale, [make_pod("s", "Succeeded")], fail={"update_status": conflict_once})
    h.rest.objects[("Job", KEY)] = fresh
    h.sync()
    assert len(calls) == 1 and h.rest.of("update_status") == []
