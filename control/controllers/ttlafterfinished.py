"""Delete finished Jobs once ``ttlSecondsAfterFinished`` has passed: Kubernetes' TTL-after-finished controller.

A Job is finished when it has the condition Complete or Failed; its TTL runs from
that condition's ``lastTransitionTime``. The controller waits with
``queue.add_after`` (no polling), reads the Job fresh before deleting (the TTL may
have changed), and deletes it as Kubernetes does: propagation Foreground, so the
garbage collector removes its pods first, with a uid precondition so a new Job of
the same name is never deleted by mistake.
"""

import datetime
import logging

from control.client import NotFound, object_key
from control.controllers.controller import Controller, split_key
from control.controllers.jobconditions import finished
from control.objects import kinds, meta

log = logging.getLogger(__name__)


def expire_at(job):
    """When ``job`` should be deleted, or None (no TTL, not finished, being deleted)."""
    ttl = job.get("spec", {}).get("ttlSecondsAfterFinished")
    if ttl is None or job["metadata"].get("deletionTimestamp"):
        return None
    _, cond = finished(job)
    if cond is None:
        return None
    when = meta.parse_time(cond.get("lastTransitionTime"))
    if when is None:
        return None
    return when + datetime.timedelta(seconds=ttl)


class TTLAfterFinishedController(Controller):
    """Delete finished Jobs whose TTL expired, reading the Job informer's cache."""

    def __init__(self, rest, job_informer, queue=None, wall_clock=meta.utcnow):
        super().__init__("ttl-after-finished", [job_informer], queue)
        self.rest, self.job_store, self.wall_clock = rest, job_informer.store, wall_clock
        job_informer.add_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new))

    def _maybe_enqueue(self, job):
        if expire_at(job) is not None:
            self.queue.add(object_key(job))

    def _remaining(self, job):
        """Seconds until ``job`` expires (<= 0: now), or None if it never does."""
        when = expire_at(job)
        return None if when is None else (when - self.wall_clock()).total_seconds()

    def sync(self, key):
        namespace, name = split_key(key)
        job = self.job_store.get(key)
        if job is None:
            return
        remaining = self._remaining(job)
        if remaining is None:
            return
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        try:
            fresh = self.rest.get(kinds.JOBS, namespace, name)
        except NotFound:
            return
        remaining = self._remaining(fresh)
        if remaining is None:
            return
        if remaining > 0:
            self.queue.add_after(key, remaining)
            return
        log.info("deleting job %s: finished more than %ss ago", key,
                 fresh["spec"]["ttlSecondsAfterFinished"])
        try:
            self.rest.delete(kinds.JOBS, namespace, name, propagation_policy="Foreground",
                             preconditions={"uid": fresh["metadata"]["uid"]})
        except NotFound:
            pass
