"""Run placement against the cluster: watch nodes and pods, bind, report failures.

Informers keep nodes and pods cached; their handlers only queue the keys of pods
waiting for this scheduler. A worker takes *every* queued key at once, builds one
Snapshot from the caches, places the whole batch with ``schedule_batch`` and
binds in parallel. A pod that fits nowhere gets a FailedScheduling Event and a
PodScheduled=False condition, and is tried again with backoff and whenever a node
changes or a bound pod goes away.

A bound pod reaches the cache only when its watch event arrives, so pods bound
but not yet seen bound are *assumed* (as kube-scheduler's cache does) and counted
in the next snapshot: otherwise two quick batches could overfill a node.
"""

import concurrent.futures
import copy
import logging
import os
import threading

from control.client import Conflict, Informer, NotFound, RateLimitingQueue, object_key
from control.client.errors import ApiException
from control.client.events import EventRecorder
from control.client.workqueue import ItemExponentialRateLimiter
from control.objects import conditions, kinds, meta
from control.scheduler.placement import schedule_batch
from control.scheduler.snapshot import Snapshot

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER = "default-scheduler"
#: Bindings in flight at once: a store commits concurrent writes together, so more in
#: flight means more binds per commit (kube-scheduler binds every pod asynchronously).
BIND_THREADS = 32


def _pending(pod, scheduler_name):
    """True for a pod this scheduler should place (kube-scheduler's responsibleForPod)."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and not meta.get("deletionTimestamp")
            and (spec.get("schedulerName") or DEFAULT_SCHEDULER) == scheduler_name
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


class Scheduler:
    """Schedule the pending pods named for ``scheduler_name`` through ``rest``."""

    def __init__(self, rest, scheduler_name=DEFAULT_SCHEDULER, rng=None, backoff=(1.0, 10.0),
                 identity=None):
        self.rest, self.scheduler_name, self.rng = rest, scheduler_name, rng
        self.identity = identity or f"{os.uname().nodename}_{os.getpid()}"
        self.pods = Informer(rest, kinds.PODS)
        self.nodes = Informer(rest, kinds.NODES)
        self.queue = RateLimitingQueue(ItemExponentialRateLimiter(*backoff), name="scheduler")
        self._lock = threading.Lock()
        self._assumed = {}          # pod key -> the pod as bound (nodeName set)
        self._unschedulable = set()  # keys to retry at once when the cluster changes
        self.recorder = EventRecorder(rest, scheduler_name, self.identity)
        self._pool = concurrent.futures.ThreadPoolExecutor(BIND_THREADS, "scheduler-bind")
        #: Counters for tests and benchmarks.
        self.bound = self.failed = 0

    # -- informers ------------------------------------------------------------------
    def start(self, timeout=60):
        """Start the informers and wait for their first lists; False on timeout."""
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handler(lambda node: self._retry_unschedulable(),
                               self._node_updated, None)
        self.pods.start()
        self.nodes.start()
        return self.pods.wait_for_sync(timeout) and self.nodes.wait_for_sync(timeout)

    def stop(self):
        self.queue.shutdown()
        self.pods.stop()
        self.nodes.stop()
        self._pool.shutdown(wait=True)

    def _pod_added(self, pod):
        if _pending(pod, self.scheduler_name):
            self.queue.add(object_key(pod))

    def _pod_updated(self, old, new):
        key = object_key(new)
        if (new.get("spec") or {}).get("nodeName"):
            with self._lock:
                self._assumed.pop(key, None)   # the cache has caught up with our bind
                self._unschedulable.discard(key)
        elif _pending(new, self.scheduler_name) and \
                (old.get("spec") != new.get("spec") or
                 old["metadata"].get("labels") != new["metadata"].get("labels")):
            # Only a real change is news; our own status writes must not requeue at once.
            self.queue.add(key)

    def _pod_deleted(self, pod):
        key = object_key(pod)
        with self._lock:
            self._assumed.pop(key, None)
            self._unschedulable.discard(key)
        if (pod.get("spec") or {}).get("nodeName"):
            self._retry_unschedulable()        # its resources are free again

    def _node_updated(self, old, new):
        # Heartbeats only bump timestamps; retry on changes placement can see.
        if old.get("spec") != new.get("spec") or \
                old["metadata"].get("labels") != new["metadata"].get("labels") or \
                _placement_status(old) != _placement_status(new):
            self._retry_unschedulable()

    def _retry_unschedulable(self):
        with self._lock:
            keys, self._unschedulable = self._unschedulable, set()
        for key in keys:
            self.queue.add(key)

    # -- the worker -----------------------------------------------------------------
    def run(self, stop):
        """Schedule batches until the ``stop`` event is set (or the queue shuts down)."""
        while not stop.is_set() and not self.queue.shutting_down:
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            keys = [key]
            while True:
                more = self.queue.get(timeout=0)
                if more is None:
                    break
                keys.append(more)
            try:
                self.schedule_keys(keys)
            finally:
                for key in keys:
                    self.queue.done(key)

    def snapshot(self):
        """One Snapshot from the caches, with the pods we bound but have not seen bound."""
        with self._lock:
            assumed = dict(self._assumed)
        pods = [pod for pod in self.pods.store.list() if object_key(pod) not in assumed]
        return Snapshot.from_objects(self.nodes.store.list(), pods + list(assumed.values()))

    def schedule_keys(self, keys):
        """Place and bind the pods behind ``keys``, as one batch."""
        pods = []
        for key in keys:
            pod = self.pods.store.get(key)
            with self._lock:
                assumed = key in self._assumed
            if pod is None or assumed or not _pending(pod, self.scheduler_name):
                self.queue.forget(key)
                continue
            pods.append(pod)
        if not pods:
            return
        placements = schedule_batch(self.snapshot(), pods, self.rng)
        futures = []
        for pod, placement in zip(pods, placements):
            key = object_key(pod)
            if placement.scheduled:
                bound = copy.deepcopy(pod)
                bound["spec"]["nodeName"] = placement.node_name
                with self._lock:
                    self._assumed[key] = bound
                    self._unschedulable.discard(key)
                futures.append(self._pool.submit(self._bind, key, pod, placement.node_name))
            else:
                # Marked now, not in the thread: a node change from here on must retry it.
                with self._lock:
                    self._unschedulable.add(key)
                futures.append(self._pool.submit(self._unschedulable_pod, key, pod,
                                                 placement.message))
        concurrent.futures.wait(futures)

    def _bind(self, key, pod, node_name):
        meta = pod["metadata"]
        try:
            self.rest.create_binding(meta["namespace"], meta["name"], node_name)
        except (Conflict, NotFound) as exc:
            # Already assigned (by us, before a retry, or by someone else) or gone.
            log.info("binding %s to %s: %s", key, node_name, exc)
            self.queue.forget(key)
            return
        except ApiException as exc:
            log.warning("binding %s to %s failed: %s; will retry", key, node_name, exc)
            with self._lock:
                self._assumed.pop(key, None)
            self.queue.add_rate_limited(key)
            return
        self.queue.forget(key)
        with self._lock:
            self.bound += 1
        log.debug("bound %s to %s", key, node_name)

    def _unschedulable_pod(self, key, pod, message):
        with self._lock:
            self.failed += 1
        log.info("cannot schedule %s: %s", key, message)
        try:
            self.recorder.event(pod, "Warning", "FailedScheduling", message)
            self._set_condition(pod, message)
        except ApiException as exc:
            log.warning("cannot report %s unschedulable: %s", key, exc)
        self.queue.add_rate_limited(key)

    # -- reporting ------------------------------------------------------------------
    def _set_condition(self, pod, message):
        """Set PodScheduled=False (reason Unschedulable) unless it already says so."""
        conditions = (pod.get("status") or {}).get("conditions") or []
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current and current.get("status") == "False" and current.get("message") == message:
            return
        updated = copy.deepcopy(pod)
        condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                     "message": message, "lastProbeTime": None,
                     "lastTransitionTime": (current or {}).get("lastTransitionTime")
                     if current and current.get("status") == "False" else meta.timestamp(meta.utcnow())}
        status = updated.setdefault("status", {})
        status["conditions"] = [c for c in conditions if c.get("type") != "PodScheduled"]
        status["conditions"].append(condition)
        status.setdefault("phase", "Pending")
        try:
            self.rest.update_status(kinds.PODS, pod["metadata"]["namespace"], updated)
        except (Conflict, NotFound):
            pass                    # changed meanwhile; the next attempt writes it again


def _placement_status(node):
    """The parts of a node's status that placement reads."""
    status = node.get("status") or {}
    ready = (conditions.find(node, "Ready") or {}).get("status")
    return ready, status.get("allocatable"), status.get("capacity")
