"""Jobs and CronJobs end to end: real store, API server, scheduler, controller manager, hollow nodes.

The hollow nodes finish every pod: "Failed" if its labels say ``outcome: fail``,
else "Succeeded", half a second after it is bound. The controller manager runs
with ``--job-pod-failure-backoff 0.2`` so a failing Job does not wait Kubernetes'
10 s before its second pod.

A CronJob cannot fire sooner than the next minute boundary, and the controller's
clock is real. So one CronJob ("* * * * *") is created when the module starts and
its test, last in the file, waits (up to 75 s) for the minute to come: the other
tests run meanwhile. Concurrency policies, deadlines and history limits are
covered by the unit tests (tests/unit/control/controllers/test_cronjob.py).
"""

import datetime
import threading

import pytest

from control.client import Informer, NotFound
from control.objects.kinds import CRONJOBS, EVENTS, JOBS, NAMESPACES, PODS
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane

NS = "jobs-e2e"


def outcome(pod):
    labels = pod["metadata"].get("labels") or {}
    return "Failed" if labels.get("outcome") == "fail" else "Succeeded"


def pod_template(outcome_label="ok"):
    return {"metadata": {"labels": {"outcome": outcome_label}},
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "work", "image": "busybox"}]}}


@pytest.fixture(scope="module")
def cluster(server, rest, tmp_path_factory):
    """Scheduler, controller manager and three hollow nodes; the CronJob starts its wait."""
    rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": NS}})
    with ControlPlane(server, tmp_path_factory.mktemp("jobs"), "job,cronjob,ttl-after-finished",
                      manager_args=["--job-pod-failure-backoff", "0.2"],
                      manager_identity="kcm", nodes=["j1", "j2", "j3"], ready_after=0.5,
                      phase_for=outcome) as plane:
        rest.create(CRONJOBS, NS, {
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": NS},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"template": pod_template()}}}})
        yield plane.manager


def conditions(job):
    return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or ()
            if c.get("status") == "True"}


def job_pods(rest, job):
    uid = job["metadata"]["uid"]
    return [p for p in rest.list(PODS, NS)["items"]
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or ())]


def event_reasons(rest, obj):
    uid = obj["metadata"]["uid"]
    return {e["reason"] for e in rest.list(EVENTS, NS)["items"]
            if e["involvedObject"].get("uid") == uid}


def finished_job(rest, name, kind):
    def check():
        job = rest.get(JOBS, NS, name)
        return job if kind in conditions(job) else None
    return check


class ActiveWatch:
    """Record, from a watch, the most pods of one Job active at the same time."""

    def __init__(self, server, job_name):
        self.informer = Informer(server.rest_client(timeout=10), PODS, namespace=NS,
                                 label_selector=f"batch.kubernetes.io/job-name={job_name}")
        self.most = 0
        self._lock = threading.Lock()
        self.informer.add_handler(self._count, lambda old, new: self._count(), self._count)

    def _count(self, *_):
        active = [p for p in self.informer.store.list()
                  if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                  and not p["metadata"].get("deletionTimestamp")]
        with self._lock:
            self.most = max(self.most, len(active))

    def __enter__(self):
        self.informer.start()
        assert self.informer.wait_for_sync(30)
        return self

    def __exit__(self, *exc):
        self.informer.stop()
        self.informer.rest.close()


def test_completions_5_parallelism_2_never_runs_more_than_2(server, rest, cluster):
    with ActiveWatch(server, "five") as watch:
        job = rest.create(JOBS, NS, {
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "five"},
            "spec": {"completions": 5, "parallelism": 2, "template": pod_template()}})
        done = eventually(finished_job(rest, "five", "Complete"), timeout=60,
                          message="job five Complete", logs=cluster.logs)
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    status = done["status"]
    assert (status["succeeded"], status.get("failed", 0), status.get("active", 0)) == (5, 0, 0)
    assert status["completionTime"] and status["startTime"]
    assert "SuccessCriteriaMet" in conditions(done)
    pods = job_pods(rest, done)
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 5   # kept, not deleted
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "five"
        assert labels["batch.kubernetes.io/controller-uid"] == labels["controller-uid"] == uid
    assert 1 <= watch.most <= 2, watch.most
    assert {"SuccessfulCreate", "Completed"} <= event_reasons(rest, done)


def test_a_failing_job_stops_at_its_backoff_limit(rest, cluster):
    rest.create(JOBS, NS, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "doomed"},
        "spec": {"backoffLimit": 1, "template": pod_template("fail")}})
    done = eventually(finished_job(rest, "doomed", "Failed"), timeout=60,
                      message="job doomed Failed", logs=cluster.logs)
    failed = conditions(done)["Failed"]
    assert failed["reason"] == "BackoffLimitExceeded"
    assert conditions(done)["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 2       # backoffLimit 1: the second failure ends it
    assert "Complete" not in conditions(done)
    assert [p["status"]["phase"] for p in job_pods(rest, done)] == ["Failed", "Failed"]
    assert "BackoffLimitExceeded" in event_reasons(rest, done)


def test_an_indexed_job_completes_every_index(rest, cluster):
    rest.create(JOBS, NS, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "idx"},
        "spec": {"completions": 3, "parallelism": 3, "completionMode": "Indexed",
                 "template": pod_template()}})
    done = eventually(finished_job(rest, "idx", "Complete"), timeout=60,
                      message="job idx Complete", logs=cluster.logs)
    assert done["status"]["completedIndexes"] == "0-2"
    pods = job_pods(rest, done)
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                     for p in pods)
    assert indexes == ["0", "1", "2"]
    assert sorted(p["spec"]["hostname"] for p in pods) == ["idx-0", "idx-1", "idx-2"]


def test_a_finished_job_is_deleted_after_its_ttl(rest, cluster):
    rest.create(JOBS, NS, {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "brief"},
        "spec": {"ttlSecondsAfterFinished": 1, "template": pod_template()}})

    def deleted():
        try:
            job = rest.get(JOBS, NS, "brief")
        except NotFound:
            return True
        # Foreground, as Kubernetes: the garbage collector finishes it when it runs.
        return bool(job["metadata"].get("deletionTimestamp")) and \
            "foregroundDeletion" in (job["metadata"].get("finalizers") or ())

    eventually(deleted, timeout=60, message="job brief deleted", logs=cluster.logs)


def test_a_cronjob_creates_its_job_at_the_minute_and_sees_it_complete(rest, cluster):
    """Created when the module started; waits for the next minute boundary (75 s at most)."""
    cron_job = rest.get(CRONJOBS, NS, "tick")

    def succeeded():
        current = rest.get(CRONJOBS, NS, "tick")
        status = current.get("status") or {}
        return current if status.get("lastSuccessfulTime") and not status.get("active") \
            else None

    done = eventually(succeeded, timeout=75, message="the cronjob's first job to succeed",
                      logs=cluster.logs)
    scheduled = done["status"]["lastScheduleTime"]
    assert scheduled.endswith(":00Z")
    jobs = [j for j in rest.list(JOBS, NS)["items"]
            if any(r.get("uid") == cron_job["metadata"]["uid"]
                   for r in j["metadata"].get("ownerReferences") or ())]
    assert jobs, "no job owned by the cronjob"
    job = jobs[0]
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] \
        == scheduled
    minutes = int(datetime.datetime.fromisoformat(scheduled.replace("Z", "+00:00"))
                  .timestamp()) // 60
    assert job["metadata"]["name"] == f"tick-{minutes}"
    assert {"SuccessfulCreate", "SawCompletedJob"} <= event_reasons(rest, done)
