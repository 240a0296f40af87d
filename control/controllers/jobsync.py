"""Judge one Job's pods and act once: the body of the Job controller's sync.

Apart from job.py, which keeps the informers, expectations and event handlers:
``JobSync`` is made afresh for each sync and holds only that sync's view.
"""

import itertools
import logging
import threading

from control.client import NotFound, object_key
from control.controllers import pods as podutil
from control.controllers.batch import parallel, slow_start_batch
from control.controllers.jobconditions import (
    BACKOFF_LIMIT_EXCEEDED,
    COMPLETE,
    COMPLETIONS_REACHED,
    DEADLINE_EXCEEDED,
    FAILED,
    FAILURE_TARGET,
    SUCCESS_CRITERIA_MET,
    SUSPENDED,
    set_condition,
)
from control.controllers.jobpods import (
    backoff_delay,
    completion_index,
    container_finish_time,
    format_indexes,
    is_indexed,
    is_terminating,
    pod_for_index,
    pod_phase,
    restarts,
)
from control.controllers.ownership import create_owned
from control.objects import kinds, meta

log = logging.getLogger(__name__)

API_VERSION, KIND = "batch/v1", "Job"


class JobSync:
    """One sync of one Job: the judgement of its pods, the actions, the new status."""

    def __init__(self, controller, key, job, pods, now):
        self.c, self.key, self.job, self.now = controller, key, job, now
        self.spec = job["spec"]
        self.old = job.get("status") or {}
        self.conditions = list(self.old.get("conditions") or ())
        self.start_time = self.old.get("startTime")
        self.completion_time = self.old.get("completionTime")
        self.requeue_after = None
        self.pods = pods
        self.active = [p for p in pods if podutil.is_active(p)]
        self.terminating = [p for p in pods if is_terminating(p)]
        self.succeeded = [p for p in pods if pod_phase(p) == "Succeeded"]
        self.failed = [p for p in pods if pod_phase(p) == "Failed"]
        self.completions = self.spec.get("completions")
        self.indexed = is_indexed(job) and self.completions is not None
        self.succeeded_indexes = set()
        if self.indexed:
            self.succeeded_indexes = {i for i in (completion_index(p, self.completions)
                                                  for p in self.succeeded) if i is not None}

    # -- judgements ---------------------------------------------------------------------
    def succeeded_count(self):
        return len(self.succeeded_indexes) if self.indexed else len(self.succeeded)

    def suspended(self):
        return bool(self.spec.get("suspend"))

    def _has(self, type_):
        return any(c.get("type") == type_ and c.get("status") == "True" for c in self.conditions)

    def failure(self):
        """(reason, message) if the Job has failed by its limits now, else None."""
        limit = self.spec.get("backoffLimit", 6)
        if len(self.failed) > limit or self._restarts_past_limit(limit):
            return BACKOFF_LIMIT_EXCEEDED
        deadline = self.spec.get("activeDeadlineSeconds")
        start = meta.parse_time(self.start_time)
        if deadline is not None and start is not None and not self.suspended():
            elapsed = (self.now - start).total_seconds()
            if elapsed >= deadline:
                return DEADLINE_EXCEEDED
            self._requeue(deadline - elapsed)
        return None

    def _restarts_past_limit(self, limit):
        """With restartPolicy OnFailure, container restarts count as failures."""
        template_spec = (self.spec.get("template") or {}).get("spec") or {}
        if template_spec.get("restartPolicy") != "OnFailure":
            return False
        total = sum(restarts(p) for p in self.active if pod_phase(p) in ("Pending", "Running"))
        return total > 0 if limit == 0 else total >= limit

    def success(self):
        if self.completions is None:
            return bool(self.succeeded) and not self.active
        return self.succeeded_count() >= self.completions

    def _requeue(self, seconds):
        seconds = max(seconds, 0.001)
        self.requeue_after = seconds if self.requeue_after is None else \
            min(self.requeue_after, seconds)

    # -- actions --------------------------------------------------------------------------
    def run(self):
        """Decide and act; return the first API error (the status is written anyway)."""
        if self.start_time is None and not self.suspended():
            self.start_time = meta.timestamp(self.now)
        # A verdict already written stands; otherwise failure is judged before success.
        failing = self._interim(FAILURE_TARGET)
        succeeding = self._interim(SUCCESS_CRITERIA_MET)
        if failing is None and succeeding is None:
            failing = self._judge(FAILURE_TARGET, self.failure())
            if failing is None:
                succeeding = self._judge(SUCCESS_CRITERIA_MET,
                                         COMPLETIONS_REACHED if self.success() else None)
        if failing is not None:
            return self._finish(FAILED, failing)
        if succeeding is not None:
            return self._finish(COMPLETE, succeeding)
        self._suspension()
        return self._manage()

    def _interim(self, type_):
        """The (reason, message) of a FailureTarget / SuccessCriteriaMet already set, or None."""
        for cond in self.conditions:
            if cond.get("type") == type_ and cond.get("status") == "True":
                return cond.get("reason"), cond.get("message")
        return None

    def _judge(self, type_, verdict):
        """Set the interim condition ``type_`` for ``verdict`` (reason, message) if any."""
        if verdict is None:
            return None
        self.conditions = set_condition(self.conditions, type_, "True", *verdict, self.now)
        if type_ == FAILURE_TARGET:
            self.c.recorder.event(self.job, "Warning", *verdict)
        return verdict

    def _finish(self, type_, verdict):
        """Delete what is still active; once nothing runs, set Complete or Failed."""
        error = self._delete(self.active) if self.active else None
        if not self.active and not self.terminating:
            self.conditions = set_condition(self.conditions, type_, "True", *verdict, self.now)
            if type_ == COMPLETE:
                self.completion_time = meta.timestamp(self.now)
                self.c.recorder.event(self.job, "Normal", "Completed", "Job completed")
        self.active = []
        return error

    def _suspension(self):
        suspended = self.suspended()
        was = self._has(SUSPENDED)
        if suspended and not was:
            self.conditions = set_condition(self.conditions, SUSPENDED, "True", "JobSuspended",
                                            "Job suspended", self.now)
            self.c.recorder.event(self.job, "Normal", "Suspended", "Job suspended")
        elif not suspended and was:
            self.conditions = set_condition(self.conditions, SUSPENDED, "False", "JobResumed",
                                            "Job resumed", self.now)
            # The deadline counts from the resumption.
            self.start_time = meta.timestamp(self.now)
            self.c.recorder.event(self.job, "Normal", "Resumed", "Job resumed")

    def want_active(self):
        if self.suspended():
            return 0
        parallelism = self.spec.get("parallelism", 1) or 0
        if self.completions is None:
            return len(self.active) if self.succeeded else parallelism
        return max(0, min(parallelism, self.completions - self.succeeded_count()))

    def _manage(self):
        want = self.want_active()
        active = list(self.active)
        surplus = []
        if self.indexed:
            surplus, active = self._index_surplus(active)
        counted = len(active)
        if self.spec.get("podReplacementPolicy") == "Failed":
            counted += len(self.terminating)      # replace only once fully gone
        diff = len(active) - want
        if diff > 0:
            by_rank = podutil.pods_to_delete(active, len(active)) if not self.indexed else \
                sorted(active, key=lambda p: -completion_index(p, self.completions))
            surplus += by_rank[:diff]
        if surplus:
            surplus = surplus[:self.c.burst]
            gone = {object_key(p) for p in surplus}
            self.active = [p for p in self.active if object_key(p) not in gone]
            return self._delete(surplus)
        missing = want - counted
        if missing <= 0:
            return None
        remaining = self._backoff_remaining()
        if remaining > 0:
            self._requeue(remaining)
            return None
        return self._create(min(missing, self.c.burst), active)

    def _index_surplus(self, active):
        """(pods to delete, pods kept): bad or duplicate indexes, indexes already done."""
        surplus, kept, seen = [], [], set()
        for pod in sorted(active, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
            index = completion_index(pod, self.completions)
            if index is None or index in seen or index in self.succeeded_indexes:
                surplus.append(pod)
            else:
                seen.add(index)
                kept.append(pod)
        return surplus, kept

    def _backoff_remaining(self):
        """Seconds until pods may be created again after failures (0: now)."""
        finished = [(self.c.failure_time(p, self.now) if pod_phase(p) == "Failed" else
                     container_finish_time(p), pod_phase(p)) for p in self.succeeded + self.failed]
        last_success = max((t for t, phase in finished if phase == "Succeeded" and t), default=None)
        failures = [t for t, phase in finished if phase == "Failed" and
                    (last_success is None or t > last_success)]
        if not failures:
            return 0.0
        delay = backoff_delay(len(failures), self.c.backoff_base, self.c.backoff_max)
        return delay - (self.now - max(failures)).total_seconds()

    def _create(self, count, active):
        job, key = self.job, self.key
        namespace = job["metadata"]["namespace"]
        if self.indexed:
            taken = {completion_index(p, self.completions) for p in active}
            if self.spec.get("podReplacementPolicy") == "Failed":
                taken |= {completion_index(p, self.completions) for p in self.terminating}
            pending = [i for i in range(self.completions)
                       if i not in taken and i not in self.succeeded_indexes][:count]
            count = len(pending)
            if not count:
                return None
            bodies = iter([pod_for_index(job, i) for i in pending])
        else:
            body = pod_for_index(job)
            bodies = itertools.repeat(body, count)
        lock = threading.Lock()
        self.c.expectations.expect_creations(key, count)

        def create():
            with lock:
                body = next(bodies)
            try:
                pod = create_owned(self.c.rest, kinds.PODS, namespace, body, job, API_VERSION, KIND)
            except Exception as exc:
                self.c.recorder.event(job, "Warning", "FailedCreate",
                                      f"Error creating: {exc}")
                raise
            self.c.recorder.event(job, "Normal", "SuccessfulCreate",
                                  f"Created pod: {pod['metadata']['name']}")

        successes, error = slow_start_batch(count, 1, create)
        for _ in range(count - successes):
            self.c.expectations.creation_observed(key)
        if error is not None:
            log.warning("job %s: created %d of %d pods: %s", key, successes, count, error)
        return error

    def _delete(self, victims):
        job, key = self.job, self.key
        namespace = job["metadata"]["namespace"]
        self.c.expectations.expect_deletions(key, [object_key(p) for p in victims])
        errors, deleted = [], []

        def delete(pod):
            name = pod["metadata"]["name"]
            try:
                self.c.rest.delete(kinds.PODS, namespace, name)
            except Exception as exc:    # noqa: BLE001 - collected, the first is returned
                self.c.expectations.deletion_observed(key, object_key(pod))
                if not isinstance(exc, NotFound):
                    self.c.recorder.event(job, "Warning", "FailedDelete",
                                          f"Error deleting: {exc}")
                    errors.append(exc)
                return
            deleted.append(pod)
            self.c.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

        parallel(delete, victims)
        self.terminating = self.terminating + deleted
        return errors[0] if errors else None

    # -- status ---------------------------------------------------------------------------
    def status(self):
        status = {k: v for k, v in self.old.items()
                  if k not in ("active", "ready", "terminating", "succeeded", "failed",
                               "conditions", "completedIndexes", "startTime",
                               "completionTime")}
        status.update(active=len(self.active), ready=sum(podutil.is_ready(p)
                                                           for p in self.active),
                      terminating=len(self.terminating), succeeded=self.succeeded_count(),
                      failed=len(self.failed), uncountedTerminatedPods={})
        if self.start_time:
            status["startTime"] = self.start_time
        if self.completion_time:
            status["completionTime"] = self.completion_time
        if self.conditions:
            status["conditions"] = self.conditions
        if self.indexed:
            status["completedIndexes"] = format_indexes(self.succeeded_indexes)
        return status
