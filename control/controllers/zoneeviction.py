"""Rate-limit NoExecute tainting per zone, and stop it when every zone is down.

Apart from the health monitor (nodelifecycle.py): zone disruption states,
their token buckets and the queue of nodes waiting for a NoExecute taint are
one piece of state with its own rules (Kubernetes' handleDisruption and
setLimiterInZone). ``ZoneEvictions`` is mixed into NodeLifecycleController,
which provides ``clock``, ``_lock``, ``node_store``, ``health``, the rates and
thresholds, ``mark_reachable`` and ``_swap_no_execute``.
"""

import logging
import time

from control.client import ApiException
from control.controllers.nodetaints import NOT_READY, UNREACHABLE
from control.objects import conditions

log = logging.getLogger(__name__)

#: Nodes with this label do not count toward their zone's disruption state.
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
REGION_LABEL, ZONE_LABEL = "topology.kubernetes.io/region", "topology.kubernetes.io/zone"

STATE_INITIAL, STATE_NORMAL = "Initial", "Normal"
STATE_PARTIAL, STATE_FULL = "PartialDisruption", "FullDisruption"

#: kube-controller-manager's defaults.
EVICTION_RATE, SECONDARY_EVICTION_RATE = 0.1, 0.01
UNHEALTHY_ZONE_THRESHOLD, LARGE_CLUSTER_THRESHOLD = 0.55, 50


def zone_key(node):
    """The zone a node counts in: region and zone labels ("" if neither is set)."""
    labels = node["metadata"].get("labels") or {}
    region, zone = labels.get(REGION_LABEL, ""), labels.get(ZONE_LABEL, "")
    return f"{region}:\x00:{zone}" if region or zone else ""


def compute_zone_state(ready_conditions, unhealthy_threshold):
    """(not-ready count, state) of a zone from its nodes' Ready conditions (ComputeZoneState)."""
    ready = sum(1 for c in ready_conditions if c is not None and c.get("status") == "True")
    not_ready = len(ready_conditions) - ready
    if ready == 0 and not_ready > 0:
        return not_ready, STATE_FULL
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return not_ready, STATE_PARTIAL
    return not_ready, STATE_NORMAL


class TokenBucket:
    """Take one token at a time at ``qps`` per second, holding at most ``burst`` (flowcontrol)."""

    def __init__(self, qps, burst=1, clock=time.monotonic):
        self.qps, self.burst, self.clock = qps, burst, clock
        self.tokens, self.last = float(burst), clock()

    def try_accept(self):
        if self.qps <= 0:
            return False        # Kubernetes' "fake always rate limiter": nothing passes
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.qps)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ZoneEvictions:
    """Zone states, per-zone tainting rates and the NoExecute tainting queue."""

    def _ensure_zone(self, zone):
        with self._lock:
            if zone not in self.zone_states:
                self.zone_states[zone] = STATE_INITIAL
                self.limiters[zone] = TokenBucket(self.eviction_rate, 1, self.clock)
                self.tainting[zone] = {}

    def _set_limiter(self, zone, size, state):
        """The zone's tainting rate for its state (setLimiterInZone)."""
        if state == STATE_PARTIAL:
            qps = self.secondary_rate if size > self.large_cluster_threshold else 0.0
        else:           # Normal, or one zone fully down while others live: evict normally
            qps = self.eviction_rate
        with self._lock:
            if self.limiters[zone].qps != qps:     # as SwapLimiter: a new rate, a new bucket
                self.limiters[zone] = TokenBucket(qps, 1, self.clock)

    def handle_disruption(self, zone_conditions, nodes):
        """Recompute zone states; stop all tainting when every zone is fully down."""
        for zone in [z for z in self.zone_states if z not in zone_conditions]:
            del self.zone_states[zone]
        new_states = {z: compute_zone_state(c, self.unhealthy_threshold)[1]
                      for z, c in zone_conditions.items()}
        all_were = bool(self.zone_states) and \
            all(s == STATE_FULL for s in self.zone_states.values())
        all_are = bool(new_states) and all(s == STATE_FULL for s in new_states.values())
        if all_are and not all_were:
            log.warning("every node of every zone is not Ready: full disruption; "
                        "no NoExecute taints until some node is back")
            for node in nodes:
                try:
                    self.mark_reachable(node)
                except ApiException as exc:
                    log.warning("node %s: cannot remove taints: %s", node["metadata"]["name"],
                                exc)
            with self._lock:
                for zone in self.zone_states:
                    self.limiters[zone] = TokenBucket(0.0, 1, self.clock)
            for zone in new_states:
                self.zone_states[zone] = STATE_FULL
            return
        if all_were and not all_are:
            log.info("leaving full disruption")
            now = self.clock()
            for health in self.health.values():
                health.probe = now      # everyone gets a fresh grace period
            for zone, state in new_states.items():
                self._set_limiter(zone, len(zone_conditions[zone]), state)
                self.zone_states[zone] = state
            return
        for zone, state in new_states.items():
            if self.zone_states.get(zone) != state:
                log.info("zone %r is now %s", zone, state)
                self._set_limiter(zone, len(zone_conditions[zone]), state)
                self.zone_states[zone] = state

    def tainting_pass(self):
        """Add NoExecute taints to queued nodes as each zone's limiter allows."""
        with self._lock:
            zones = list(self.tainting)
        for zone in zones:
            while True:
                with self._lock:
                    queue = self.tainting.get(zone)
                    if not queue or not self.limiters[zone].try_accept():
                        break
                    name = next(iter(queue))
                    del queue[name]
                if not self._taint_one(name):
                    with self._lock:
                        self.tainting[zone].setdefault(name, None)     # at the back, retried
                    break

    def _taint_one(self, name):
        """Give one node the NoExecute taint its Ready condition calls for; False to retry."""
        node = self.node_store.get(name)
        ready = conditions.find(node, "Ready") if node is not None else None
        if ready is None or ready.get("status") not in ("False", "Unknown"):
            return True     # gone or Ready again: nothing to do
        want, other = (NOT_READY, UNREACHABLE) if ready["status"] == "False" \
            else (UNREACHABLE, NOT_READY)
        try:
            self._swap_no_execute(node, want, other)
        except ApiException as exc:
            log.warning("node %s: cannot add taint %s: %s", name, want, exc)
            return False
        log.info("node %s: tainted %s:NoExecute", name, want)
        return True
