"""Run each Job's pods to completion: Kubernetes' Job controller (batch/v1).

``sync`` looks at the pods a Job owns (finished pods are kept, as in Kubernetes,
and are what the counts are made of) and then, in this order:

* a Job already Complete or Failed is left alone (ttlafterfinished.py deletes it);
* a Job that has failed (more failed pods than ``backoffLimit``, restarts past it
  with restartPolicy OnFailure, or ``activeDeadlineSeconds`` passed) gets the
  condition FailureTarget, its active pods are deleted, and once none is left
  running it gets Failed (reason BackoffLimitExceeded or DeadlineExceeded);
* a Job that has succeeded (``completions`` pods or indexes succeeded; without
  completions, one pod succeeded and none still running) gets SuccessCriteriaMet,
  then Complete with ``completionTime`` once no pod is left running;
* otherwise it keeps ``min(parallelism, remaining)`` pods active (none while
  ``suspend`` is true, with the condition Suspended), creating pods after
  failures only once an exponential backoff (10 s doubling, capped at 6 min) has
  passed since the last failure.

Simplifications, said plainly: counts come from the finished pods that still
exist (Kubernetes' tracking before 1.26): no ``batch.kubernetes.io/job-tracking``
finalizer, ``uncountedTerminatedPods`` stays empty, and deleting a finished pod
by hand lowers the count. ``podFailurePolicy``, ``successPolicy`` and
``backoffLimitPerIndex`` are ignored. The backoff's failure times come from the
containers' ``finishedAt`` (or when this controller first saw the pod failed).
Orphan pods that match the selector are adopted, as Kubernetes does (the
generated selector names the Job's uid, so in practice only released pods).
"""

import copy
import itertools
import logging
import threading
import time

from control.client import NotFound, object_key
from control.client.events import NullRecorder
from control.controllers import pods as podutil
from control.controllers.batch import parallel, slow_start_batch
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.expectations import Expectations
from control.controllers.ownership import ChildEvents, Owners, RefManager, create_owned
from control.controllers.status import write_status
from control.objects import conditions, kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

API_VERSION, KIND = "batch/v1", "Job"

JOB_NAME_LABEL, LEGACY_JOB_NAME_LABEL = "batch.kubernetes.io/job-name", "job-name"
CONTROLLER_UID_LABEL, LEGACY_CONTROLLER_UID_LABEL = ("batch.kubernetes.io/controller-uid",
                                                     "controller-uid")
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
#: Kubernetes' DefaultJobPodFailureBackOff and the documented six-minute cap.
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 360.0
#: At most this many pods created or deleted per sync (Kubernetes' MaxPodCreateDeletePerSync).
BURST = 500

#: The condition types a finished Job carries, and the interim ones set first.
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
BACKOFF_LIMIT_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")


# -- pure judgements ----------------------------------------------------------------------


def condition(job, type_):
    """The Job's condition of ``type_`` with status True, or None."""
    cond = conditions.find(job, type_)
    return cond if cond is not None and cond.get("status") == "True" else None


def finished(job):
    """(condition type, its condition) if Complete or Failed, else (None, None)."""
    for type_ in (COMPLETE, FAILED):
        cond = condition(job, type_)
        if cond is not None:
            return type_, cond
    return None, None


def set_condition(conditions, type_, status, reason, message, now):
    """Conditions with ``type_`` set; the transition time kept if the status did not change."""
    result = []
    found = False
    for cond in conditions:
        if cond.get("type") != type_:
            result.append(cond)
            continue
        found = True
        if cond.get("status") == status:
            result.append({**cond, "reason": reason, "message": message})
        else:
            result.append({"type": type_, "status": status, "lastProbeTime": meta.timestamp(now),
                           "lastTransitionTime": meta.timestamp(now), "reason": reason,
                           "message": message})
    if not found:
        result.append({"type": type_, "status": status, "lastProbeTime": meta.timestamp(now),
                       "lastTransitionTime": meta.timestamp(now), "reason": reason, "message": message})
    return result


def is_indexed(job):
    return job["spec"].get("completionMode") == "Indexed"


def completion_index(pod, completions):
    """The pod's valid completion index (annotation, else label), or None."""
    meta = pod["metadata"]
    text = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if text is None:
        text = (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        index = int(text)
    except (TypeError, ValueError):
        return None
    return index if 0 <= index < (completions or 0) else None


def format_indexes(indexes):
    """Kubernetes' compressed interval list: {0, 1, 2, 5, 7, 8} -> "0-2,5,7,8"."""
    parts = []
    for _, run in itertools.groupby(enumerate(sorted(indexes)), lambda p: p[1] - p[0]):
        run = [index for _, index in run]
        if len(run) > 2:
            parts.append(f"{run[0]}-{run[-1]}")
        else:
            parts.extend(str(index) for index in run)
    return ",".join(parts)


def _phase(pod):
    return (pod.get("status") or {}).get("phase")


def is_terminating(pod):
    return bool(pod["metadata"].get("deletionTimestamp")) and \
        _phase(pod) not in podutil.TERMINAL_PHASES


def container_finish_time(pod):
    """The latest ``finishedAt`` of the pod's terminated containers, or None."""
    times = []
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        terminated = (status.get("state") or {}).get("terminated") or {}
        when = meta.parse_time(terminated.get("finishedAt"))
        if when is not None:
            times.append(when)
    return max(times) if times else None


def backoff_delay(failures, base=DEFAULT_BACKOFF, cap=MAX_BACKOFF):
    """The wait before re-creating pods after ``failures`` failures since the last success."""
    if failures <= 0:
        return 0.0
    return min(base * 2 ** (failures - 1), cap)


def restarts(pod):
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    statuses += (pod.get("status") or {}).get("initContainerStatuses") or []
    return sum(s.get("restartCount", 0) for s in statuses)


def pod_for_index(job, index=None):
    """A new pod from the Job's template; with ``index``, an Indexed Job's pod."""
    template = job["spec"].get("template") or {}
    tmeta = template.get("metadata") or {}
    name = job["metadata"]["name"]
    meta = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
            "namespace": job["metadata"]["namespace"]}
    for field in ("labels", "annotations", "finalizers"):
        if tmeta.get(field):
            meta[field] = copy.deepcopy(tmeta[field])
    spec = copy.deepcopy(template.get("spec") or {})
    if index is not None:
        meta.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
        meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
        spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for list_name in ("initContainers", "containers"):
            for container in spec.get(list_name) or ():
                names = {e.get("name") for e in container.get("env") or ()}
                if COMPLETION_INDEX_ENV not in names:
                    container["env"] = [*(container.get("env") or ()), env]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


# -- the controller -----------------------------------------------------------------------
def _ignore(*args):
    pass


class JobController(Controller):
    """Converge Jobs through ``rest``, reading the Job and Pod informers' caches."""

    def __init__(self, rest, job_informer, pod_informer, queue=None, clock=time.monotonic,
                 wall_clock=meta.utcnow, recorder=None, backoff_base=DEFAULT_BACKOFF,
                 backoff_max=MAX_BACKOFF, burst=BURST):
        super().__init__("job", [job_informer, pod_informer], queue)
        self.rest = rest
        self.job_store, self.pod_store = job_informer.store, pod_informer.store
        self.expectations = Expectations(clock)
        self.wall_clock = wall_clock
        self.recorder = recorder or NullRecorder()
        self.backoff_base, self.backoff_max, self.burst = backoff_base, backoff_max, burst
        self._failed_seen = {}          # pod uid -> when first seen failed (no finishedAt)
        self._lock = threading.Lock()
        job_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                 self._job_deleted)
        ChildEvents(Owners(self.job_store, kinds.JOBS), self.enqueue,
                    **self.expectations.hooks()).attach(pod_informer)
        pod_informer.add_handler(_ignore, _ignore, self._forget_failed)

    # -- event handlers ------------------------------------------------------------------
    def _job_deleted(self, job):
        self.expectations.delete(object_key(job))
        self.enqueue(job)

    def _forget_failed(self, pod):
        with self._lock:
            self._failed_seen.pop(pod["metadata"].get("uid"), None)

    # -- the reconcile -------------------------------------------------------------------
    def sync(self, key):
        """Converge the Job ``key``: judge its pods, create or delete, write status."""
        namespace, _ = split_key(key)
        job = self.job_store.get(key)
        if job is None:
            self.expectations.delete(key)
            return
        if finished(job)[0] is not None:
            return
        try:
            selector = LabelSelector.from_object(job["spec"].get("selector"))
        except SelectorError as exc:
            log.error("job %s has an invalid selector: %s", key, exc)
            self.recorder.event(job, "Warning", "InvalidSelector", str(exc))
            return
        now = self.wall_clock()
        pods = RefManager(self.rest, kinds.JOBS, job, selector).claim(
            kinds.PODS, by_namespace(self.pod_store, namespace))
        needs_sync = self.expectations.satisfied(key)
        sync = _Sync(self, key, job, pods, now)
        error = None
        if needs_sync and not job["metadata"].get("deletionTimestamp"):
            error = sync.run()
        # Otherwise only the counts are refreshed, while our last actions show.
        self._write_status(job, sync.status())
        if error is not None:
            raise error
        if sync.requeue_after is not None:
            self.queue.add_after(key, sync.requeue_after)

    def _write_status(self, job, status):
        """Write ``status`` if it changed; on a Conflict once more onto a fresh read,
        unless the fresh Job is already finished (our own finishing write got there)."""
        write_status(self.rest, kinds.JOBS, job, status,
                     merge=lambda fresh, status: None if finished(fresh)[0] else status)

    def failure_time(self, pod, now):
        """When ``pod`` failed: its containers' finishedAt, else when first seen failed."""
        when = container_finish_time(pod)
        if when is not None:
            return when
        with self._lock:
            return self._failed_seen.setdefault(pod["metadata"].get("uid"), now)


class _Sync:
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
        self.succeeded = [p for p in pods if _phase(p) == "Succeeded"]
        self.failed = [p for p in pods if _phase(p) == "Failed"]
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
        total = sum(restarts(p) for p in self.active if _phase(p) in ("Pending", "Running"))
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
        finished = [(self.c.failure_time(p, self.now) if _phase(p) == "Failed" else
                     container_finish_time(p), _phase(p)) for p in self.succeeded + self.failed]
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
