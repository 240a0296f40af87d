"""CronJob controller sync: given now, the last schedule, the Jobs and the policy, this action."""

import datetime

import pytest

from control.client import AlreadyExists
from control.controllers import cronjob as cjctl
from control.controllers.cronjob import CronJobController
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest
from tests.unit.control.controllers.test_job import Recorder, RecordingQueue

UTC = datetime.timezone.utc
KEY = "default/tick"
UID = "cj-uid"


def at(text):
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def stamp(text):
    return at(text).strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes(text):
    return int(at(text).timestamp()) // 60


def make_cj(schedule="* * * * *", created="2026-01-01 10:00:30", last=None, active=(),
            policy="Allow", suspend=False, deadline=None, tz=None, success_limit=3,
            failed_limit=1, last_success=None):
    spec = {"schedule": schedule, "concurrencyPolicy": policy, "suspend": suspend,
            "successfulJobsHistoryLimit": success_limit, "failedJobsHistoryLimit": failed_limit,
            "jobTemplate": {"metadata": {"labels": {"app": "tick"},
                                         "annotations": {"note": "hi"}},
                            "spec": {"template": {"spec": {
                                "restartPolicy": "Never",
                                "containers": [{"name": "c", "image": "busybox"}]}}}}}
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    if tz is not None:
        spec["timeZone"] = tz
    status = {}
    if last:
        status["lastScheduleTime"] = stamp(last)
    if last_success:
        status["lastSuccessfulTime"] = stamp(last_success)
    if active:
        status["active"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"],
                             "namespace": "default", "uid": j["metadata"]["uid"]}
                            for j in active]
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": UID,
                         "resourceVersion": "3", "creationTimestamp": stamp(created)},
            "spec": spec, "status": status}


def make_job(name, state=None, started="2026-01-01 10:00:00", completed=None, owner=UID):
    status = {"startTime": stamp(started)}
    if state:
        status["conditions"] = [{"type": state, "status": "True"}]
    if completed:
        status["completionTime"] = stamp(completed)
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "7"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                    "uid": owner, "controller": True}]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {},
            "status": status}


class Harness:
    def __init__(self, cj, jobs=(), now="2026-01-01 10:01:05", fail=None, api_jobs=()):
        self.now = at(now)
        self.rest = FakeRest([cj, *api_jobs], fail)
        self.cj_informer, self.job_informer = FakeInformer([cj]), FakeInformer(jobs)
        self.queue = RecordingQueue(FakeClock())
        self.recorder = Recorder()
        self.controller = CronJobController(self.rest, self.cj_informer, self.job_informer,
                                            queue=self.queue, wall_clock=lambda: self.now,
                                            recorder=self.recorder)

    def sync(self):
        self.controller.sync(KEY)
        return self

    def created(self):
        return [a[3] for a in self.rest.of("create")]

    def deleted(self):
        return sorted(a[3] for a in self.rest.of("delete"))

    def status(self):
        updates = self.rest.of("update_status")
        return updates[-1][3]["status"] if updates else None

    def delays(self):
        return [delay for _, delay in self.queue.delays]


def test_a_due_time_creates_the_job_named_after_it():
    h = Harness(make_cj()).sync()
    (job,) = h.created()
    assert job["metadata"]["name"] == f"tick-{minutes('2026-01-01 10:01')}"
    assert job["metadata"]["labels"] == {"app": "tick"}
    assert job["metadata"]["annotations"] == {
        "note": "hi", "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-01-01T10:01:00Z"}
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick", "uid": UID,
         "controller": True, "blockOwnerDeletion": True}]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    status = h.status()
    assert status["lastScheduleTime"] == "2026-01-01T10:01:00Z"
    assert [r["name"] for r in status["active"]] == [job["metadata"]["name"]]
    assert status["active"][0]["uid"] == f"uid-{job['metadata']['name']}"
    assert h.recorder.events == [("Normal", "SuccessfulCreate",
                                  f"Created job {job['metadata']['name']}")]
    assert h.delays() == [pytest.approx(55.1)]      # 10:02:00 plus the 100 ms delta


@pytest.mark.parametrize("cj, now, creates, delay", [
    # Created at 10:00:30: nothing is due before 10:01.
    (make_cj(), "2026-01-01 10:00:50", 0, 10.1),
    # 10:01 already handled.
    (make_cj(last="2026-01-01 10:01"), "2026-01-01 10:01:40", 0, 20.1),
    # Three missed: one Job, for the latest.
    (make_cj(last="2026-01-01 10:01"), "2026-01-01 10:04:10", 1, 50.1),
    # Hourly: the next look is at the next hour.
    (make_cj("0 * * * *", last="2026-01-01 10:00"), "2026-01-01 10:30", 0, 1800.1),
    # Suspended: nothing, and no timer (an update of the CronJob wakes it).
    (make_cj(suspend=True), "2026-01-01 10:05", 0, None),
    # A missed time beyond startingDeadlineSeconds is not started...
    (make_cj(last="2026-01-01 10:01", deadline=30), "2026-01-01 10:02:45", 0, 15.1),
    # ...one within it is.
    (make_cj(last="2026-01-01 10:01", deadline=30), "2026-01-01 10:02:25", 1, 35.1),
])
def test_schedule(cj, now, creates, delay):
    h = Harness(cj, now=now).sync()
    assert len(h.created()) == creates
    assert h.delays() == ([pytest.approx(delay)] if delay is not None else [])


def test_the_latest_missed_time_is_the_one_started():
    h = Harness(make_cj(last="2026-01-01 10:01"), now="2026-01-01 10:04:10").sync()
    assert h.created()[0]["metadata"]["name"] == f"tick-{minutes('2026-01-01 10:04')}"
    assert h.status()["lastScheduleTime"] == "2026-01-01T10:04:00Z"


@pytest.mark.parametrize("policy, creates, deletes, reason", [
    ("Allow", 1, [], "SuccessfulCreate"),
    ("Forbid", 0, [], "JobAlreadyActive"),
    ("Replace", 1, ["tick-old"], "SuccessfulDelete"),
])
def test_concurrency_policy_with_an_active_job(policy, creates, deletes, reason):
    running = make_job("tick-old")
    h = Harness(make_cj(last="2026-01-01 10:00", active=[running], policy=policy),
                [running]).sync()
    assert len(h.created()) == creates
    assert h.deleted() == deletes
    assert reason in [r for _, r, _ in h.recorder.events]
    if policy == "Replace":
        (delete,) = h.rest.of("delete")
        assert delete[:4] == ("delete", "jobs", "default", "tick-old")
        assert [r["name"] for r in h.status()["active"]] == [h.created()[0]["metadata"]["name"]]
    if policy == "Forbid":
        assert h.delays() == [pytest.approx(55.1)]
        assert h.status() is None       # nothing changed


def test_a_finished_job_leaves_the_active_list_and_sets_last_successful_time():
    done = make_job("tick-1", "Complete", completed="2026-01-01 10:00:40")
    h = Harness(make_cj(last="2026-01-01 10:01", active=[done]), [done],
                now="2026-01-01 10:01:30").sync()
    status = h.status()
    assert status["active"] == []
    assert status["lastSuccessfulTime"] == "2026-01-01T10:00:40Z"
    assert ("Normal", "SawCompletedJob", "Saw completed job: tick-1, condition: Complete") in \
        h.recorder.events


def test_last_successful_time_only_moves_forward():
    older = make_job("tick-1", "Complete", completed="2026-01-01 09:00:00")
    h = Harness(make_cj(last="2026-01-01 10:01", last_success="2026-01-01 10:00"), [older],
                now="2026-01-01 10:01:30").sync()
    assert h.status() is None


def test_a_job_gone_from_the_api_leaves_the_active_list():
    gone = make_job("tick-gone")
    h = Harness(make_cj(last="2026-01-01 10:01", active=[gone]), [],
                now="2026-01-01 10:01:30").sync()
    assert h.status()["active"] == []
    assert "MissingJob" in [r for _, r, _ in h.recorder.events]


def test_a_job_missing_from_the_cache_but_in_the_api_stays_active():
    slow = make_job("tick-slow")
    h = Harness(make_cj(last="2026-01-01 10:01", active=[slow]), [], api_jobs=[slow],
                now="2026-01-01 10:01:30").sync()
    assert h.status() is None


def test_an_unexpected_job_is_reported():
    stray = make_job("tick-stray")
    h = Harness(make_cj(last="2026-01-01 10:01"), [stray], now="2026-01-01 10:01:30").sync()
    assert ("Warning", "UnexpectedJob",
            "Saw a job that the controller did not create or forgot: tick-stray") in \
        h.recorder.events


def test_our_own_job_not_yet_in_the_cached_status_is_not_unexpected():
    ours = make_job("tick-ours")
    cached = make_cj(last="2026-01-01 10:00")
    fresh = make_cj(last="2026-01-01 10:01", active=[ours])
    h = Harness(cached, [ours], now="2026-01-01 10:01:30")
    h.rest.objects[("CronJob", KEY)] = fresh
    h.sync()
    assert h.recorder.events == []
    assert h.created() == []


@pytest.mark.parametrize("jobs, deleted", [
    ([make_job(f"ok{i}", "Complete", started=f"2026-01-01 0{i}:00") for i in range(5)],
     ["ok0", "ok1"]),
    ([make_job(f"bad{i}", "Failed", started=f"2026-01-01 0{i}:00") for i in range(3)],
     ["bad0", "bad1"]),
    ([make_job("ok", "Complete"), make_job("bad", "Failed"), make_job("running")], []),
])
def test_history_limits(jobs, deleted):
    h = Harness(make_cj(last="2026-01-01 10:01"), jobs, now="2026-01-01 10:01:30").sync()
    assert h.deleted() == deleted
    for action in h.rest.of("delete"):
        assert action[1] == "jobs"


def test_history_limit_zero_keeps_nothing():
    jobs = [make_job("ok", "Complete")]
    h = Harness(make_cj(last="2026-01-01 10:01", success_limit=0), jobs,
                now="2026-01-01 10:01:30").sync()
    assert h.deleted() == ["ok"]


def test_too_many_missed_start_times_warns_and_starts_the_latest():
    h = Harness(make_cj(created="2025-12-29 00:00"), now="2026-01-01 10:01:05").sync()
    assert [r for _, r, _ in h.recorder.events] == ["TooManyMissedTimes", "SuccessfulCreate"]
    assert h.status()["lastScheduleTime"] == "2026-01-01T10:01:00Z"


@pytest.mark.parametrize("cj, reason", [
    (make_cj("61 * * * *"), "UnparseableSchedule"),
    (make_cj(tz="Mars/Olympus"), "UnknownTimeZone"),
])
def test_bad_schedules_are_reported_not_retried(cj, reason):
    h = Harness(cj).sync()
    assert [r for _, r, _ in h.recorder.events] == [reason]
    assert h.created() == [] and h.delays() == []


def test_time_zone_schedules_and_the_annotation_carry_the_zone():
    h = Harness(make_cj("0 9 * * *", created="2026-01-01 07:00", tz="Europe/Berlin"),
                now="2026-01-01 08:00:05").sync()
    (job,) = h.created()
    assert job["metadata"]["annotations"][cjctl.SCHEDULED_TIMESTAMP] == \
        "2026-01-01T09:00:00+01:00"
    assert job["metadata"]["name"] == f"tick-{minutes('2026-01-01 08:00')}"


def test_a_job_that_already_exists_is_recorded_not_created_twice():
    name = f"tick-{minutes('2026-01-01 10:01')}"
    existing = make_job(name)
    h = Harness(make_cj(), api_jobs=[existing],
                fail={"create": lambda body: AlreadyExists(409, "AlreadyExists", name)}).sync()
    status = h.status()
    assert status["lastScheduleTime"] == "2026-01-01T10:01:00Z"
    assert [r["name"] for r in status["active"]] == [name]


def test_a_bad_zone_prefix_is_an_unparseable_schedule():
    h = Harness(make_cj("CRON_TZ=Mars/Olympus * * * * *")).sync()
    assert [r for _, r, _ in h.recorder.events] == ["UnparseableSchedule"]
