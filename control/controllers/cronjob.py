"""Create Jobs on a schedule: Kubernetes' CronJob controller (CronJobControllerV2).

``sync`` first reconciles ``status.active`` with the Jobs the CronJob owns (a
finished Job leaves the list with a SawCompletedJob event and may move
``lastSuccessfulTime``; a Job gone from the API leaves it too), deletes finished
Jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit``, and then
asks: has a scheduled time passed since the last one (cron.py's
mostRecentScheduleTime)? If so, unless it is later than
``startingDeadlineSeconds`` allows (MissSchedule), it was already handled, or
``concurrencyPolicy`` Forbid sees an active Job (JobAlreadyActive), it creates
the Job ``<cronjob>-<scheduled time in minutes since the epoch>`` from
``spec.jobTemplate`` (Replace first deletes the active ones). Then the key is
queued again for the next scheduled time (``queue.add_after``): no polling.

Several missed times create one Job, for the latest of them, as in Kubernetes.
An unparseable schedule or unknown time zone is a Warning Event, not a retry loop.
"""

import copy
import datetime
import logging

from control.client import AlreadyExists, NotFound
from control.client.events import NullRecorder
from control.controllers import cron
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.jobconditions import finished
from control.controllers.ownership import Owners, controller_ref, get_controller_of
from control.controllers.status import write_status
from control.objects import kinds, meta

log = logging.getLogger(__name__)

API_VERSION, KIND = "batch/v1", "CronJob"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
#: Kubernetes' nextScheduleDelta: wake a little after the time, never just before it.
NEXT_SCHEDULE_DELTA = 0.1


def job_name(cron_job, scheduled):
    """``<cronjob>-<minutes since the epoch>`` (Kubernetes' getTimeHashInMinutes)."""
    return f"{cron_job['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def _go_rfc3339(t):
    """Go's time.RFC3339: "Z" for UTC, else the offset."""
    text = t.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def job_from_template(cron_job, scheduled, tz=datetime.timezone.utc):
    """The Job to create for ``scheduled`` (Kubernetes' getJobFromTemplate2)."""
    template = cron_job["spec"].get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    meta = {"name": job_name(cron_job, scheduled),
            "namespace": cron_job["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": {**(tmeta.get("annotations") or {}),
                            SCHEDULED_TIMESTAMP: _go_rfc3339(scheduled.astimezone(tz))},
            "ownerReferences": [controller_ref(cron_job, API_VERSION, KIND)]}
    if not meta["labels"]:
        del meta["labels"]
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def job_reference(job):
    """The ObjectReference status.active holds."""
    meta = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
            "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion")}


def _start_key(job):
    """Sort finished Jobs oldest first: by startTime (missing last), then name."""
    start = (job.get("status") or {}).get("startTime")
    return (start is None, start or "", job["metadata"]["name"])


class CronJobController(Controller):
    """Create and clean up the Jobs of CronJobs, reading the CronJob and Job caches."""

    def __init__(self, rest, cronjob_informer, job_informer, queue=None, wall_clock=meta.utcnow,
                 recorder=None):
        super().__init__("cronjob", [cronjob_informer, job_informer], queue)
        self.rest = rest
        self.cj_store, self.job_store = cronjob_informer.store, job_informer.store
        self.wall_clock = wall_clock
        self.recorder = recorder or NullRecorder()
        self.owners = Owners(self.cj_store, kinds.CRONJOBS)
        cronjob_informer.add_handler(self.enqueue, self._cronjob_updated, self.enqueue)
        job_informer.add_handler(self._job_changed, lambda old, new: self._job_changed(new),
                                 self._job_changed)

    def _cronjob_updated(self, old, new):
        self.enqueue(new)

    def _job_changed(self, job):
        cron_job = self.owners.owner_of(job)
        if cron_job is not None:
            self.enqueue(cron_job)

    # -- the reconcile -----------------------------------------------------------------
    def sync(self, key):
        namespace, _ = split_key(key)
        cron_job = self.cj_store.get(key)
        if cron_job is None:
            return
        uid = cron_job["metadata"]["uid"]
        jobs = [j for j in by_namespace(self.job_store, namespace)
                if (get_controller_of(j) or {}).get("uid") == uid]
        now = self.wall_clock()
        status = dict(cron_job.get("status") or {})
        status["active"] = list(status.get("active") or ())
        cron_job = self._reconcile_active(cron_job, status, jobs)
        delay = None
        if not cron_job["metadata"].get("deletionTimestamp"):
            delay = self._schedule(key, cron_job, status, now)
        self._write_status(cron_job, status)
        self._cleanup_history(cron_job, jobs)
        if delay is not None:
            self.queue.add_after(key, delay)

    def _reconcile_active(self, cron_job, status, jobs):
        """Bring status.active in line with the owned Jobs; return the (maybe fresher) CronJob."""
        active_uids = {ref.get("uid") for ref in status["active"]}
        for job in jobs:
            jmeta = job["metadata"]
            done, cond = finished(job)
            found = jmeta.get("uid") in active_uids
            if not found and done is None:
                fresh = self._fresh(cron_job)
                if fresh is not None and jmeta.get("uid") in {
                        r.get("uid") for r in (fresh.get("status") or {}).get("active") or ()}:
                    # Our own status write, not yet in the cache.
                    cron_job = fresh
                    status.update({k: v for k, v in (fresh.get("status") or {}).items()
                                   if k in ("lastScheduleTime", "lastSuccessfulTime")})
                    status["active"] = list(fresh["status"]["active"])
                    active_uids = {ref.get("uid") for ref in status["active"]}
                    continue
                self.recorder.event(cron_job, "Warning", "UnexpectedJob",
                                    f"Saw a job that the controller did not create or forgot: "
                                    f"{jmeta['name']}")
            elif found and done is not None:
                status["active"] = [r for r in status["active"] if r.get("uid") != jmeta["uid"]]
                self.recorder.event(cron_job, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {jmeta['name']}, condition: {done}")
            if done == "Complete":
                completed = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if completed and (last is None or meta.parse_time(completed) >
                                  meta.parse_time(last)):
                    status["lastSuccessfulTime"] = completed
        owned = {j["metadata"].get("uid") for j in jobs}
        for ref in list(status["active"]):
            if ref.get("uid") in owned:
                continue
            try:
                self.rest.get(kinds.JOBS, ref.get("namespace") or cron_job["metadata"]["namespace"],
                              ref["name"])
            except NotFound:
                self.recorder.event(cron_job, "Normal", "MissingJob",
                                    f"Active job went missing: {ref['name']}")
                status["active"] = [r for r in status["active"] if r is not ref]
        return cron_job

    def _fresh(self, cron_job):
        cmeta = cron_job["metadata"]
        try:
            fresh = self.rest.get(kinds.CRONJOBS, cmeta["namespace"], cmeta["name"])
        except NotFound:
            return None
        return fresh if fresh["metadata"].get("uid") == cmeta.get("uid") else None

    def _schedule(self, key, cron_job, status, now):
        """Create the Job due now, if any; return the seconds until the next look (or None)."""
        spec = cron_job["spec"]
        try:
            schedule = cron.parse(spec.get("schedule"), spec.get("timeZone"))
        except cron.CronError as exc:
            bad_zone = bool(spec.get("timeZone")) and not cron.valid_time_zone(spec["timeZone"])
            reason = "UnknownTimeZone" if bad_zone else "UnparseableSchedule"
            message = (f"invalid timeZone: {spec['timeZone']!r}: {exc}" if bad_zone else
                       f"unparseable schedule: {spec.get('schedule')!r} : {exc}")
            log.warning("cronjob %s: %s", key, message)
            self.recorder.event(cron_job, "Warning", reason, message)
            return None
        if spec.get("suspend"):
            return None
        earliest = meta.parse_time(status.get("lastScheduleTime")) or \
            meta.parse_time(cron_job["metadata"].get("creationTimestamp")) or now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - datetime.timedelta(seconds=deadline))
        scheduled, missed = cron.most_recent_schedule_time(schedule, earliest, now)
        if missed > cron.MANY_MISSED:
            self.recorder.event(cron_job, "Warning", "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if scheduled is None:
            return self._until_next(schedule, now)
        if deadline is not None and scheduled + datetime.timedelta(seconds=deadline) < now:
            self.recorder.event(cron_job, "Warning", "MissSchedule",
                                "Missed scheduled time to start a job: "
                                f"{scheduled.strftime('%a, %d %b %Y %H:%M:%S +0000')}")
            return self._until_next(schedule, now)
        name = job_name(cron_job, scheduled)
        if any(r.get("name") == name for r in status["active"]) or \
                status.get("lastScheduleTime") == meta.timestamp(scheduled):
            return self._until_next(schedule, now)
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status["active"]:
            self.recorder.event(cron_job, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return self._until_next(schedule, now)
        if policy == "Replace":
            for ref in list(status["active"]):
                self._delete_job(cron_job, ref.get("namespace") or cron_job["metadata"]
                                 ["namespace"], ref["name"])
                status["active"] = [r for r in status["active"] if r is not ref]
        body = job_from_template(cron_job, scheduled, schedule.tz)
        try:
            job = self.rest.create(kinds.JOBS, cron_job["metadata"]["namespace"], body)
        except AlreadyExists:
            # Made by an earlier sync whose status write was lost: record it, do not create.
            log.info("cronjob %s: job %s already exists", key, name)
            try:
                job = self.rest.get(kinds.JOBS, cron_job["metadata"]["namespace"], name)
            except NotFound:
                return self._until_next(schedule, now)
            if (get_controller_of(job) or {}).get("uid") == cron_job["metadata"]["uid"]:
                if finished(job)[0] is None:
                    status["active"].append(job_reference(job))
                status["lastScheduleTime"] = meta.timestamp(scheduled)
            return self._until_next(schedule, now)
        except Exception as exc:
            self.recorder.event(cron_job, "Warning", "FailedCreate", f"Error creating job: {exc}")
            raise
        self.recorder.event(cron_job, "Normal", "SuccessfulCreate",
                            f"Created job {job['metadata']['name']}")
        status["active"].append(job_reference(job))
        status["lastScheduleTime"] = meta.timestamp(scheduled)
        return self._until_next(schedule, now)

    @staticmethod
    def _until_next(schedule, now):
        following = schedule.next_after(now)
        if following is None:
            return None
        return (following - now).total_seconds() + NEXT_SCHEDULE_DELTA

    def _delete_job(self, cron_job, namespace, name):
        try:
            self.rest.delete(kinds.JOBS, namespace, name, propagation_policy="Background")
        except NotFound:
            return
        self.recorder.event(cron_job, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    def _cleanup_history(self, cron_job, jobs):
        """Delete the oldest finished Jobs beyond the history limits."""
        spec = cron_job["spec"]
        for type_, field, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                      ("Failed", "failedJobsHistoryLimit", 1)):
            limit = spec.get(field, default)
            if limit is None:
                continue
            done = sorted((j for j in jobs if finished(j)[0] == type_ and
                           not j["metadata"].get("deletionTimestamp")), key=_start_key)
            for job in done[:max(len(done) - limit, 0)]:
                self._delete_job(cron_job, job["metadata"]["namespace"],
                                 job["metadata"]["name"])

    def _write_status(self, cron_job, status):
        """Write ``status`` if it changed; on a Conflict, once more onto a fresh read
        (this controller is the only writer of a CronJob's status)."""
        write_status(self.rest, kinds.CRONJOBS, cron_job, status)
