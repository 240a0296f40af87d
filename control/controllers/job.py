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

import logging
import threading
import time

from control.client import object_key
from control.client.events import NullRecorder
from control.controllers.controller import Controller, by_namespace, split_key
from control.controllers.expectations import Expectations
from control.controllers.jobconditions import finished
from control.controllers.jobpods import DEFAULT_BACKOFF, MAX_BACKOFF, container_finish_time
from control.controllers.jobsync import JobSync
from control.controllers.ownership import ChildEvents, Owners, RefManager
from control.controllers.status import write_status
from control.objects import kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

#: At most this many pods created or deleted per sync (Kubernetes' MaxPodCreateDeletePerSync).
BURST = 500


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
        sync = JobSync(self, key, job, pods, now)
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

