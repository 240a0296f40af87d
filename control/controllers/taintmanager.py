"""Evict pods from nodes with NoExecute taints they do not tolerate (taint-eviction-controller).

This is Kubernetes' NoExecuteTaintManager. For a pod bound to a node with
NoExecute taints:

* a taint no toleration of the pod matches: the pod is deleted at once;
* every taint tolerated, some with ``tolerationSeconds``: the pod is deleted
  when the first of those runs out, counted from the taint's ``timeAdded``
  (so a restarted controller does not restart the count; a timeAdded in the
  future or missing counts from when this controller first saw the taint,
  which is what Kubernetes always does);
* tolerated without a time limit: the pod stays.

``sync`` is level-triggered: a pod that must go later is queued again with
``add_after`` for the moment it must go, and is judged afresh then, so a taint
removed meanwhile simply cancels the eviction (reported with an Event).
Deleting a pod on a dead node leaves it Terminating (no kubelet confirms), which
its ReplicaSet counts as inactive: the replacement lands on a healthy node.
"""

import logging
import threading
import time

from control.client import ApiException, NotFound, object_key
from control.client.events import NullRecorder
from control.controllers.controller import Controller
from control.controllers.nodelifecycle import pods_on_node
from control.objects import kinds, meta
from control.objects.taints import tolerates

log = logging.getLogger(__name__)

REASON = "TaintManagerEviction"


def no_execute_taints(node):
    return [t for t in (node.get("spec") or {}).get("taints") or ()
            if t.get("effect") == "NoExecute"]


def eviction_delay(taints, tolerations, elapsed):
    """Seconds until the pod must be deleted: 0 now, None never.

    ``taints`` are the node's NoExecute taints and ``elapsed[i]`` the seconds
    since taint i was added. Each taint is matched by the first toleration that
    tolerates it (GetMatchingTolerations); a toleration without
    tolerationSeconds tolerates forever, one with seconds <= 0 not at all.
    """
    delay = None
    for taint, since in zip(taints, elapsed):
        match = next((t for t in tolerations or () if tolerates(t, taint)), None)
        if match is None:
            return 0.0
        seconds = match.get("tolerationSeconds")
        if seconds is None:
            continue
        remaining = max(0.0, seconds - max(0.0, since)) if seconds > 0 else 0.0
        delay = remaining if delay is None else min(delay, remaining)
    return delay


class TaintEvictionController(Controller):
    """Delete pods whose node's NoExecute taints they do not (or no longer) tolerate."""

    def __init__(self, rest, node_informer, pod_informer, queue=None, clock=time.monotonic,
                 wall_clock=meta.utcnow, recorder=None):
        super().__init__("taint-eviction-controller", [node_informer, pod_informer], queue)
        self.rest, self.clock, self.wall_clock = rest, clock, wall_clock
        self.recorder = recorder or NullRecorder()
        self.node_store, self.pod_store = node_informer.store, pod_informer.store
        self._lock = threading.Lock()
        self.scheduled = set()      # pod keys with a deletion planned for later
        self.evicted = set()        # uids of pods we deleted (until the informer shows it)
        self._first_seen = {}       # (node, taint key, value) -> our clock when first seen
        node_informer.add_handler(self._node_added, self._node_updated, self._node_deleted)
        pod_informer.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new),
                                 self._pod_deleted)

    # -- handlers ------------------------------------------------------------------------
    def _pod_changed(self, pod):
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)      # going already: nothing left for us to do
        elif (pod.get("spec") or {}).get("nodeName"):
            self.enqueue(pod)

    def _pod_deleted(self, pod):
        with self._lock:
            self.scheduled.discard(object_key(pod))
            self.evicted.discard(pod["metadata"].get("uid"))

    def _node_added(self, node):
        if no_execute_taints(node):
            self._enqueue_pods(node)

    def _node_updated(self, old, new):
        if no_execute_taints(old) != no_execute_taints(new):
            name = new["metadata"]["name"]
            present = {(name, t.get("key"), t.get("value")) for t in no_execute_taints(new)}
            with self._lock:        # forget when we first saw taints that are gone
                for seen in [k for k in self._first_seen if k[0] == name and k not in present]:
                    del self._first_seen[seen]
            self._enqueue_pods(new)

    def _node_deleted(self, node):
        name = node["metadata"]["name"]
        with self._lock:
            for seen in [k for k in self._first_seen if k[0] == name]:
                del self._first_seen[seen]

    def _enqueue_pods(self, node):
        for pod in pods_on_node(self.pod_store, node["metadata"]["name"]):
            self._pod_changed(pod)

    # -- the reconcile ---------------------------------------------------------------------
    def sync(self, key):
        """Delete the pod ``key`` now, plan its deletion for later, or cancel a planned one."""
        pod = self.pod_store.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self._drop(key)
            return
        with self._lock:
            if pod["metadata"].get("uid") in self.evicted:
                return      # deleted already; the informer has not shown it yet
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.node_store.get(node_name) if node_name else None
        taints = no_execute_taints(node) if node is not None else []
        delay = None
        if taints:
            elapsed = [self._elapsed(node_name, taint) for taint in taints]
            delay = eviction_delay(taints, pod["spec"].get("tolerations"), elapsed)
        if delay is None:
            self._cancel(key, pod)
        elif delay <= 0:
            self._evict(key, pod)
        else:
            with self._lock:
                self.scheduled.add(key)
            self.queue.add_after(key, delay)

    def _elapsed(self, node_name, taint):
        """Seconds since ``taint`` was added to the node, never over-counted.

        Two lower bounds, the larger wins: the time since this controller first
        saw the taint, and the time since its timeAdded. timeAdded is written in
        whole seconds, so the taint may be up to a second younger than it says:
        that second is not counted (a pod goes up to 1 s late, never early). A
        timeAdded ahead of our clock (skew) thus falls back to our own count.
        """
        ident = (node_name, taint.get("key"), taint.get("value"))
        with self._lock:
            first = self._first_seen.setdefault(ident, self.clock())
        ours = self.clock() - first
        try:
            added = meta.parse_time(taint.get("timeAdded"))
        except ValueError:
            added = None
        if added is None:
            return ours
        since = (self.wall_clock() - added).total_seconds()
        if not added.microsecond:
            since -= 1.0
        return max(ours, since)

    def _drop(self, key):
        with self._lock:
            self.scheduled.discard(key)

    def _cancel(self, key, pod):
        with self._lock:
            planned = key in self.scheduled
            self.scheduled.discard(key)
        if planned:
            log.info("pod %s: taint gone or tolerated; eviction cancelled", key)
            self.recorder.event(pod, "Normal", REASON, f"Cancelling deletion of Pod {key}")

    def _evict(self, key, pod):
        self._drop(key)
        meta = pod["metadata"]
        log.info("pod %s: a NoExecute taint of node %s is not (or no longer) tolerated; "
                 "deleting", key, pod["spec"].get("nodeName"))
        self.recorder.event(pod, "Normal", REASON, f"Marking for deletion Pod {key}")
        now = self.wall_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {"type": "DisruptionTarget", "status": "True",
                     "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint",
                     "lastTransitionTime": now}
        try:
            self.rest.patch(kinds.PODS, meta["namespace"], meta["name"],
                            {"status": {"conditions": [condition]}}, "strategic",
                            subresource="status")
        except NotFound:
            return
        except ApiException as exc:     # the condition is informative; delete anyway
            log.warning("pod %s: cannot add DisruptionTarget: %s", key, exc)
        try:
            self.rest.delete(kinds.PODS, meta["namespace"], meta["name"])
        except NotFound:
            return
        with self._lock:
            self.evicted.add(meta.get("uid"))

