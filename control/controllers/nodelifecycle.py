"""Watch node health and taint failing nodes: Kubernetes' node lifecycle controller.

A node proves it is alive by renewing its Lease in ``kube-node-lease`` (and by
posting status). Every ``monitor_period`` the controller looks at each node:
if neither the Lease's renewTime nor the Ready condition's heartbeat has
changed for ``grace_period`` seconds, the node's Ready, MemoryPressure,
DiskPressure and PIDPressure conditions become Unknown (NodeStatusUnknown).
Staleness is measured on the controller's own monotonic clock from the moment
it *observed* a change, never by comparing timestamps written on another
machine: clocks across machines are not trusted.

Failing nodes then get taints, in two ways (as Kubernetes does):

* NoSchedule taints follow the conditions at once (TaintNodesByCondition):
  not-ready, unreachable, memory-pressure, ... so the scheduler stops placing
  pods there. Done by ``sync(node name)`` on every node event.
* NoExecute taints (not-ready / unreachable), which make the taint manager
  evict pods, go through a per-zone rate limiter: ``eviction_rate`` nodes per
  second normally, ``secondary_rate`` when a large zone is partly down (0 for a
  small one), and none at all when every node of every zone is down: then the
  fault is more likely the control plane's network than the nodes, and
  tainting would empty the cluster for a network blip.

A node whose Ready condition comes back True loses its NoExecute taints at once.
Pods on a node that is not Ready are marked Ready=False so endpoints drop them.
"""

import logging
import threading
import time

from control.client import ApiException, Conflict, NotFound
from control.client.events import NullRecorder
from control.controllers.controller import Controller
from control.controllers.nodetaints import (
    MANAGED_NO_SCHEDULE,
    NOT_READY,
    UNREACHABLE,
    has_taint,
    no_schedule_taints,
    swap_taints,
    unknown_conditions,
)
from control.controllers.status import write_status
from control.controllers.zoneeviction import (
    EVICTION_RATE,
    EXCLUDE_DISRUPTION_LABEL,
    LARGE_CLUSTER_THRESHOLD,
    SECONDARY_EVICTION_RATE,
    UNHEALTHY_ZONE_THRESHOLD,
    ZoneEvictions,
    zone_key,
)
from control.objects import conditions, kinds, meta

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"

#: kube-controller-manager's defaults.
GRACE_PERIOD, STARTUP_GRACE_PERIOD, MONITOR_PERIOD = 40.0, 60.0, 5.0
#: How often the rate-limited NoExecute tainting queue is tried (nodeEvictionPeriod).
TAINTING_PERIOD = 0.1


def pods_on_node(pod_store, node_name):
    """Cached pods bound to ``node_name`` (by the "nodeName" index when there is one)."""
    try:
        return pod_store.by_index("nodeName", node_name)
    except KeyError:
        return [p for p in pod_store.list() if (p.get("spec") or {}).get("nodeName") == node_name]


def node_name_index(pod):
    return (pod.get("spec") or {}).get("nodeName") or None


class _Health:
    """What the controller last observed of one node, and when (its own clock)."""

    __slots__ = ("probe", "heartbeat", "renew")

    def __init__(self, probe, heartbeat, renew):
        self.probe, self.heartbeat, self.renew = probe, heartbeat, renew


class NodeLifecycleController(ZoneEvictions, Controller):
    """Mark silent nodes Unknown, taint failing nodes (rate-limited by zone), untaint returns.

    ``sync(name)`` keeps a node's NoSchedule taints in line with its conditions;
    ``monitor()`` (every ``monitor_period``) judges health; ``tainting_pass()``
    (every 0.1 s) adds NoExecute taints as the zone's rate limiter allows.
    """

    def __init__(self, rest, node_informer, lease_informer, pod_informer, queue=None,
                 clock=time.monotonic, wall_clock=meta.utcnow, recorder=None,
                 grace_period=GRACE_PERIOD, startup_grace_period=STARTUP_GRACE_PERIOD,
                 monitor_period=MONITOR_PERIOD, eviction_rate=EVICTION_RATE,
                 secondary_rate=SECONDARY_EVICTION_RATE,
                 unhealthy_threshold=UNHEALTHY_ZONE_THRESHOLD,
                 large_cluster_threshold=LARGE_CLUSTER_THRESHOLD):
        super().__init__("nodelifecycle", [node_informer, lease_informer, pod_informer], queue)
        self.rest, self.clock, self.wall_clock = rest, clock, wall_clock
        self.recorder = recorder or NullRecorder()
        self.node_store, self.lease_store = node_informer.store, lease_informer.store
        self.pod_store = pod_informer.store
        self.grace_period, self.startup_grace_period = grace_period, startup_grace_period
        self.monitor_period = monitor_period
        self.eviction_rate, self.secondary_rate = eviction_rate, secondary_rate
        self.unhealthy_threshold = unhealthy_threshold
        self.large_cluster_threshold = large_cluster_threshold
        self.health = {}            # node name -> _Health
        self.known = {}             # node name -> node, as monitor() last saw it
        self.zone_states = {}       # zone -> STATE_*
        self.limiters = {}          # zone -> TokenBucket
        self.tainting = {}          # zone -> {node name: None}, a FIFO set of nodes to taint
        self._lock = threading.Lock()
        node_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                  lambda node: None)      # monitor() forgets deleted nodes

    # -- NoSchedule taints, on every node event ------------------------------------------
    def sync(self, key):
        """Make the node's controller-owned NoSchedule taints match its conditions."""
        node = self.node_store.get(key)
        if node is None:
            return
        want = no_schedule_taints(node)
        have = {t.get("key") for t in (node.get("spec") or {}).get("taints") or ()
                if t.get("effect") == "NoSchedule" and t.get("key") in MANAGED_NO_SCHEDULE}
        if want != have:
            self._change_taints(node, [(k, "NoSchedule") for k in sorted(want - have)],
                                {(k, "NoSchedule") for k in have - want})

    def _change_taints(self, node, add, remove):
        """Add and remove (key, effect) taints; on a Conflict, once more on a fresh read.

        The write names the resourceVersion read, so a concurrent change (the
        kubelet's, an admin's) is never overwritten with a stale taint list.
        """
        for attempt in range(2):
            taints = (node.get("spec") or {}).get("taints") or []
            new = swap_taints(taints, add, remove, self.wall_clock())
            if new == taints:
                return node
            meta = node["metadata"]
            patch = {"metadata": {"resourceVersion": meta["resourceVersion"]},
                     "spec": {"taints": new or None}}
            try:
                return self.rest.patch(kinds.NODES, None, meta["name"], patch) or node
            except Conflict:
                if attempt:
                    raise
                node = self.rest.get(kinds.NODES, None, meta["name"])
        return node

    # -- health -------------------------------------------------------------------------
    def monitor(self):
        """One pass of monitorNodeHealth over every cached node."""
        now = self.clock()
        nodes = self.node_store.list()
        names = {n["metadata"]["name"] for n in nodes}
        for name in sorted(set(self.known) - names):
            self._forget(name)
        zone_conditions = {}
        for node in nodes:
            name = node["metadata"]["name"]
            zone = zone_key(node)
            self._ensure_zone(zone)
            if name not in self.known:
                self.recorder.event(node, "Normal", "RegisteredNode",
                                    f"Node {name} event: Registered Node {name} in Controller")
            self.known[name] = node
            try:
                observed, current, node = self.update_health(node, now)
            except ApiException as exc:
                log.warning("node %s: cannot update status: %s; next pass retries", name, exc)
                continue
            if EXCLUDE_DISRUPTION_LABEL not in (node["metadata"].get("labels") or {}):
                zone_conditions.setdefault(zone, []).append(current)
            if current is None:
                continue
            # As Kubernetes: taints follow the Ready condition as observed before this
            # pass's own write, so a node just found silent is queued on the next pass.
            # Queued even in full disruption: the zone's limiter then lets nothing through.
            self._taint_based_eviction(node, observed or {"status": "Unknown"})
            if current.get("status") != "True":
                if observed is not None and observed.get("status") == "True":
                    self.recorder.event(node, "Normal", "NodeNotReady",
                                        f"Node {name} status is now: NodeNotReady")
                self.mark_pods_not_ready(node)
        self.handle_disruption(zone_conditions, nodes)

    def _forget(self, name):
        node = self.known.pop(name)
        self.recorder.event(node, "Normal", "RemovingNode",
                            f"Node {name} event: Removing Node {name} from Controller")
        self.health.pop(name, None)
        with self._lock:
            for queue in self.tainting.values():
                queue.pop(name, None)
        log.info("node %s is gone", name)

    def update_health(self, node, now):
        """Note what changed since the last look; past the grace period, set conditions Unknown.

        Returns (Ready condition as observed, Ready condition now, node as now).
        """
        name = node["metadata"]["name"]
        ready = conditions.find(node, "Ready")
        heartbeat = ready.get("lastHeartbeatTime") if ready else None
        lease = self.lease_store.get(f"{LEASE_NAMESPACE}/{name}")
        renew = (lease.get("spec") or {}).get("renewTime") if lease else None
        health = self.health.get(name)
        if health is None:
            # First sight: the grace period starts now, whatever the timestamps say.
            health = self.health[name] = _Health(now, heartbeat, renew)
        else:
            if heartbeat != health.heartbeat:
                health.probe, health.heartbeat = now, heartbeat
            if renew is not None and renew != health.renew:
                health.probe, health.renew = now, renew
        grace = self.grace_period if ready is not None else self.startup_grace_period
        if now - health.probe <= grace:
            return ready, ready, node
        status = dict(node.get("status") or {})
        unknown, changed = unknown_conditions(node, meta.timestamp(self.wall_clock()))
        if not changed:
            return ready, ready, node
        log.info("node %s: no lease renewal or status for %.1fs; conditions Unknown", name,
                 now - health.probe)
        status["conditions"] = unknown
        # On a Conflict the kubelet (or another copy) wrote meanwhile: the next pass judges
        # the fresh node, so nothing is written over it now.
        updated = write_status(self.rest, kinds.NODES, node, status,
                               merge=lambda fresh, status: None) or node
        current = conditions.find(updated, "Ready")
        health.heartbeat = current.get("lastHeartbeatTime") if current else None
        return ready, current, updated

    def _taint_based_eviction(self, node, ready):
        """Queue the NoExecute taint for a failing node; drop it from a Ready one."""
        name, status = node["metadata"]["name"], ready.get("status")
        if status == "True":
            self.mark_reachable(node)
            return
        want, other = (NOT_READY, UNREACHABLE) if status == "False" else (UNREACHABLE, NOT_READY)
        if has_taint(node, other, "NoExecute"):
            # Already evicting: swap at once, the limiter was paid for the first taint.
            self._swap_no_execute(node, want, other)
        elif not has_taint(node, want, "NoExecute"):
            with self._lock:
                self.tainting[zone_key(node)].setdefault(name, None)

    def mark_reachable(self, node):
        """Remove both NoExecute taints and any queued tainting of ``node``."""
        name = node["metadata"]["name"]
        with self._lock:
            for queue in self.tainting.values():
                queue.pop(name, None)
        if has_taint(node, UNREACHABLE, "NoExecute") or has_taint(node, NOT_READY, "NoExecute"):
            self._change_taints(node, (), {(UNREACHABLE, "NoExecute"), (NOT_READY, "NoExecute")})
            log.info("node %s is Ready again: NoExecute taints removed", name)

    def _swap_no_execute(self, node, want, other):
        """Add the NoExecute taint ``want``, removing ``other`` (they mirror Ready: one at a time)."""
        self._change_taints(node, [(want, "NoExecute")], {(other, "NoExecute")})

    def mark_pods_not_ready(self, node):
        """Set Ready=False on the node's pods still marked Ready (MarkPodsNotReady)."""
        name = node["metadata"]["name"]
        for pod in pods_on_node(self.pod_store, name):
            ready = conditions.find(pod, "Ready")
            if ready is None or ready.get("status") == "False":
                continue
            pmeta = pod["metadata"]
            patch = {"status": {"conditions": [
                {"type": "Ready", "status": "False",
                 "lastTransitionTime": meta.timestamp(self.wall_clock())}]}}
            try:
                self.rest.patch(kinds.PODS, pmeta["namespace"], pmeta["name"], patch, "strategic",
                                subresource="status")
            except NotFound:
                continue
            except ApiException as exc:
                log.warning("pod %s/%s: cannot mark not ready: %s", pmeta["namespace"],
                            pmeta["name"], exc)
                continue
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    # -- running ------------------------------------------------------------------------
    def run(self, workers, stop_event):
        monitor = threading.Thread(target=self._monitor_loop, args=(stop_event,),
                                   name="nodelifecycle-monitor", daemon=True)
        monitor.start()
        super().run(workers, stop_event)
        monitor.join(10)

    def _monitor_loop(self, stop_event):
        if not self.wait_for_sync(stop_event):
            return
        next_monitor = 0.0
        while not stop_event.is_set():
            try:
                if time.monotonic() >= next_monitor:
                    next_monitor = time.monotonic() + self.monitor_period
                    self.monitor()
                self.tainting_pass()
            except Exception:       # noqa: BLE001 - the loop must outlive any one failure
                log.exception("node lifecycle pass failed")
            stop_event.wait(TAINTING_PERIOD)

