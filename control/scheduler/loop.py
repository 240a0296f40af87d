"""Run placement against the cluster: watch nodes and pods, bind, report failures.

Informers keep nodes and pods cached; their handlers only queue the keys of pods
waiting for this scheduler. A worker takes *every* queued key at once, builds one
Snapshot from the caches, places the whole batch with ``schedule_batch`` and
binds in parallel (a pod whose WaitForFirstConsumer claims are unbound is not bound
yet: its claims get the chosen node, see volumebinding.py). A pod that fits nowhere
gets a FailedScheduling Event and a PodScheduled=False condition, and is tried again
with backoff and whenever a node, a claim or a volume changes or a bound pod goes away.

A bound pod reaches the cache only when its watch event arrives, so pods bound
but not yet seen bound are *assumed* (as kube-scheduler's cache does) and counted
in the next snapshot: otherwise two quick batches could overfill a node.
"""

import concurrent.futures
import copy
import logging
import os
import threading
import time

from control.client import Conflict, Informer, NotFound, RateLimitingQueue, object_key
from control.client.errors import ApiException
from control.client.events import EventRecorder
from control.client.workqueue import ItemExponentialRateLimiter
from control.objects import conditions, kinds, meta
from control.scheduler import metrics as scheduler_metrics
from control.scheduler.placement import schedule_batch
from control.scheduler.snapshot import Snapshot
from control.scheduler.volumebinding import SELECTED_NODE, volume_facts

PVCS = kinds.lookup("", "v1", "persistentvolumeclaims")
PVS = kinds.lookup("", "v1", "persistentvolumes")
STORAGECLASSES = kinds.lookup("storage.k8s.io", "v1", "storageclasses")

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
        # VolumeBinding's view: claims, volumes and classes (control/scheduler/volumebinding.py).
        self.claims = Informer(rest, PVCS)
        self.volumes = Informer(rest, PVS)
        self.classes = Informer(rest, STORAGECLASSES)
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
        retry = (lambda obj: self._retry_unschedulable(),
                 lambda old, new: self._retry_unschedulable(), None)
        self.claims.add_handler(*retry)
        self.volumes.add_handler(*retry)
        informers = (self.pods, self.nodes, self.claims, self.volumes, self.classes)
        for informer in informers:
            informer.start()
        return all(informer.wait_for_sync(timeout) for informer in informers)

    def stop(self):
        self.queue.shutdown()
        for informer in (self.pods, self.nodes, self.claims, self.volumes, self.classes):
            informer.stop()
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
        started = time.monotonic()
        volumes = [self.volume_facts(pod) for pod in pods]
        placements = schedule_batch(self.snapshot(), pods, self.rng, volumes=volumes)
        futures = []
        for pod, placement, facts in zip(pods, placements, volumes):
            key = object_key(pod)
            if placement.scheduled and facts.pending:
                # PreBind: the claims are provisioned on the node first; the pod is
                # placed again (and bound) once they are Bound.
                with self._lock:
                    self._unschedulable.add(key)
                futures.append(self._pool.submit(self._select_node, key, facts.pending,
                                                 placement.node_name))
            elif placement.scheduled:
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
        elapsed = time.monotonic() - started
        for future in futures:
            if future.exception() is None and future.result():
                scheduler_metrics.record_attempt(future.result(), elapsed)

    def pending_counts(self):
        """Pods waiting: {"active": queued now, "backoff": waiting out a delay, "unschedulable"}."""
        with self._lock:
            unschedulable = len(self._unschedulable)
        return {"active": len(self.queue), "backoff": self.queue.waiting(),
                "unschedulable": unschedulable}

    def volume_facts(self, pod):
        """The pod's VolumeFacts from the claim, volume and class caches."""
        return volume_facts(pod, lambda ns, name: self.claims.store.get(f"{ns}/{name}"),
                            self.volumes.store.get, self.classes.store.get)

    def _select_node(self, key, pending, node_name):
        """Write the chosen node on the pod's unbound WaitForFirstConsumer claims."""
        for namespace, claim, selected in pending:
            if selected == node_name:
                continue
            try:
                self.rest.patch(PVCS, namespace, claim, {"metadata": {"annotations": {
                    SELECTED_NODE: node_name}}})
            except ApiException as exc:
                log.warning("selecting node %s for claim %s/%s of %s: %s", node_name,
                            namespace, claim, key, exc)
        # Looked at again when a claim or volume changes, or after the backoff.
        self.queue.add_rate_limited(key)

    def _bind(self, key, pod, node_name):
        meta = pod["metadata"]
        try:
            self.rest.create_binding(meta["namespace"], meta["name"], node_name)
        except (Conflict, NotFound) as exc:
            # Already assigned (by us, before a retry, or by someone else) or gone.
            log.info("binding %s to %s: %s", key, node_name, exc)
            self.queue.forget(key)
            return None
        except ApiException as exc:
            log.warning("binding %s to %s failed: %s; will retry", key, node_name, exc)
            with self._lock:
                self._assumed.pop(key, None)
            self.queue.add_rate_limited(key)
            return "error"
        self.queue.forget(key)
        with self._lock:
            self.bound += 1
        log.debug("bound %s to %s", key, node_name)
        return "scheduled"

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
        return "unschedulable"

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
