"""Delete pods nobody else will: Kubernetes' pod garbage collector (PodGC).

Every check period (20 s, as in Kubernetes) one sync:

* deletes the oldest finished pods (Succeeded or Failed; evicted ones first)
  beyond ``--terminated-pod-gc-threshold`` (default 12500; 0 disables this);
* force-deletes (grace 0) the pods bound to a node that no longer exists, after
  marking them Failed with a DisruptionTarget condition (reason
  DeletionByPodGC). A node missing from the cache is first quarantined (40 s)
  and then confirmed gone with a live GET, so a lagging node informer never
  costs running pods;
* force-deletes pods being deleted that were never scheduled, which no node
  agent would ever finish;
* force-deletes pods being deleted on a node that is not Ready and carries the
  ``node.kubernetes.io/out-of-service`` taint (an administrator's word that the
  machine is down for good), as Kubernetes' gcTerminating does.

It is not keyed by object: the queue holds one key, requeued after each run.
"""

import logging
import time

from control.client import Conflict, NotFound
from control.controllers import pods as podutil
from control.controllers.batch import parallel
from control.controllers.controller import Controller
from control.objects import conditions, kinds, meta

log = logging.getLogger(__name__)

KEY = "podgc"
#: kube-controller-manager's --terminated-pod-gc-threshold default.
DEFAULT_THRESHOLD = 12500
#: Kubernetes' gcCheckPeriod and quarantineTime.
CHECK_PERIOD = 20.0
QUARANTINE = 40.0
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"


def terminated_to_delete(pods, threshold):
    """The finished pods beyond ``threshold``: evicted first, then oldest first."""
    if threshold <= 0:
        return []
    finished = [p for p in pods if (p.get("status") or {}).get("phase")
                in podutil.TERMINAL_PHASES]
    excess = len(finished) - threshold
    if excess <= 0:
        return []
    finished.sort(key=lambda p: ((p.get("status") or {}).get("reason") != "Evicted",
                                 p["metadata"].get("creationTimestamp") or "",
                                 p["metadata"].get("name")))
    return finished[:excess]


def unscheduled_terminating(pods):
    """Pods being deleted that no node will ever stop."""
    return [p for p in pods if p["metadata"].get("deletionTimestamp")
            and not (p.get("spec") or {}).get("nodeName")]


def terminating_out_of_service(pods, nodes):
    """Pods being deleted on a not-Ready node tainted out-of-service.

    ``nodes`` maps a node name to its cached Node (a Store's ``get`` will do).
    """
    found = []
    for pod in pods:
        if not pod["metadata"].get("deletionTimestamp"):
            continue
        node = nodes((pod.get("spec") or {}).get("nodeName") or "")
        if node is None or conditions.is_ready(node):
            continue
        if any(t.get("key") == OUT_OF_SERVICE for t in (node.get("spec") or {}).get("taints")
               or ()):
            found.append(pod)
    return found


def failed_by_gc(pod, now):
    """``pod`` marked as PodGC marks a pod whose node is gone (a copy)."""
    status = dict(pod.get("status") or {})
    if status.get("phase") not in podutil.TERMINAL_PHASES:
        status["phase"] = "Failed"
    conditions = [c for c in status.get("conditions") or () if c.get("type") != "DisruptionTarget"]
    conditions.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                       "message": "PodGC: node no longer exists", "lastProbeTime": None,
                       "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")})
    status["conditions"] = conditions
    return {**pod, "status": status}


class PodGCController(Controller):
    """Run the three collections on a timer, over the pod and node caches."""

    def __init__(self, rest, pod_informer, node_informer, queue=None, clock=time.monotonic,
                 wall_clock=meta.utcnow, threshold=DEFAULT_THRESHOLD, period=CHECK_PERIOD,
                 quarantine=QUARANTINE):
        super().__init__("podgc", [pod_informer, node_informer], queue)
        self.rest = rest
        self.pods, self.nodes = pod_informer.store, node_informer.store
        self.clock, self.wall_clock = clock, wall_clock
        self.threshold, self.period, self.quarantine = threshold, period, quarantine
        self._missing_since = {}        # node name -> when the cache first lacked it
        # A deleted node is worth a look as soon as its quarantine ends.
        node_informer.add_handler(_ignore, _ignore,
                                  lambda node: self.queue.add_after(KEY, self.quarantine))

    def wait_for_sync(self, stop_event, poll=0.05):
        if not super().wait_for_sync(stop_event, poll):
            return False
        self.queue.add(KEY)
        return True

    def sync(self, key):
        pods = self.pods.list()
        errors = []
        self._force_delete(terminated_to_delete(pods, self.threshold), errors, "terminated")
        wait = self.gc_orphaned(pods, errors)
        self._force_delete(terminating_out_of_service(pods, self.nodes.get), errors,
                           "out-of-service terminating")
        self._force_delete(unscheduled_terminating(pods), errors, "unscheduled terminating")
        self.queue.add_after(KEY, min(self.period, wait) if wait else self.period)
        if errors:
            raise errors[0]

    def gc_orphaned(self, pods, errors):
        """Force-delete pods on deleted nodes; return seconds until a quarantine ends."""
        now = self.clock()
        missing = {p["spec"]["nodeName"] for p in pods if (p.get("spec") or {}).get("nodeName")
                   and self.nodes.get(p["spec"]["nodeName"]) is None}
        for name in list(self._missing_since):
            if name not in missing:
                del self._missing_since[name]
        gone, wait = set(), None
        for name in sorted(missing):
            since = self._missing_since.setdefault(name, now)
            left = since + self.quarantine - now
            if left > 0:
                wait = left if wait is None else min(wait, left)
                continue
            try:
                self.rest.get(kinds.NODES, None, name)
            except NotFound:
                gone.add(name)
                continue
            del self._missing_since[name]      # it exists: the cache was behind
        orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") in gone]
        if orphans:
            log.info("podgc: %d pods are bound to deleted nodes %s", len(orphans), sorted(gone))
        self._force_delete(orphans, errors, "orphaned", mark=True)
        return wait

    def _force_delete(self, pods, errors, why, mark=False):
        now = self.wall_clock()

        def delete(pod):
            meta = pod["metadata"]
            try:
                if mark:
                    try:
                        self.rest.update_status(kinds.PODS, meta["namespace"], failed_by_gc(pod, now))
                    except Conflict:
                        pass        # changed meanwhile: it is deleted all the same
                log.info("podgc: force-deleting %s pod %s/%s", why, meta["namespace"],
                         meta["name"])
                self.rest.delete(kinds.PODS, meta["namespace"], meta["name"], grace_period_seconds=0,
                                 preconditions={"uid": meta["uid"]})
            except NotFound:
                pass
            except Exception as exc:    # noqa: BLE001 - raised after the others had their turn
                errors.append(exc)

        parallel(delete, pods)


def _ignore(*args):
    """An informer event this controller has no use for."""
