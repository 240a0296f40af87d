"""Give each node a pod subnet from the cluster CIDR: Kubernetes' node IPAM (range allocator).

``CidrSet`` cuts ``--cluster-cidr`` into ``--node-cidr-mask-size`` subnets and
hands them out round-robin, as Kubernetes' cidrset does: the next search starts
after the last subnet given, so a released subnet is reused only after the
others, which keeps a just-freed range from going straight to a new node while
old routes may linger.

The controller sets ``spec.podCIDR`` and ``spec.podCIDRs`` on every node that
has none. At start it rebuilds the used set from the nodes that have one; a
deleted node's subnet goes back. When no subnet is left the node gets a
CIDRNotAvailable Event and the condition NetworkUnavailable=True (which makes
the node lifecycle controller add the network-unavailable NoSchedule taint);
it is retried when some node releases a subnet, not in a loop.

The API server does not (yet) refuse changing a set podCIDR, as Kubernetes'
validation does: this controller never changes one.
"""

import ipaddress
import logging
import threading

from control.client import ApiException, NotFound
from control.client.events import NullRecorder
from control.controllers.controller import Controller
from control.objects import conditions, kinds, meta

log = logging.getLogger(__name__)

CLUSTER_CIDR, NODE_CIDR_MASK_SIZE = "10.244.0.0/16", 24
#: Kubernetes refuses a cluster CIDR cut into more than 2**16 node subnets.
MAX_PREFIX_SPLIT = 16
#: The reason we write on NetworkUnavailable, so we only ever clear our own.
NO_CIDR_REASON = "NoCIDRAvailable"


class CidrExhausted(Exception):
    """Every subnet of the cluster CIDR is in use."""


class CidrSet:
    """The node subnets of one cluster CIDR, and which are taken."""

    def __init__(self, cluster_cidr, mask_size):
        self.network = ipaddress.ip_network(cluster_cidr, strict=True)
        if not self.network.prefixlen <= mask_size <= self.network.max_prefixlen:
            raise ValueError(f"--node-cidr-mask-size {mask_size} does not fit in "
                             f"--cluster-cidr {cluster_cidr}")
        if mask_size - self.network.prefixlen > MAX_PREFIX_SPLIT:
            raise ValueError(f"--node-cidr-mask-size {mask_size} cuts {cluster_cidr} into "
                             f"more than 2^{MAX_PREFIX_SPLIT} subnets")
        self.mask_size = mask_size
        self.size = 1 << (mask_size - self.network.prefixlen)
        self._step = 1 << (self.network.max_prefixlen - mask_size)
        self._used = set()
        self._next = 0
        self._lock = threading.Lock()

    def _subnet(self, index):
        address = self.network.network_address + index * self._step
        return f"{address}/{self.mask_size}"

    def _index(self, cidr):
        """The subnet index of ``cidr``, or None if it is not one of ours."""
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.mask_size or \
                not net.subnet_of(self.network):
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self._step

    def allocate_next(self):
        """Take the next free subnet after the last one given; CidrExhausted if none."""
        with self._lock:
            for offset in range(self.size):
                index = (self._next + offset) % self.size
                if index not in self._used:
                    self._used.add(index)
                    self._next = (index + 1) % self.size
                    return self._subnet(index)
        raise CidrExhausted(f"no free /{self.mask_size} left in {self.network}")

    def occupy(self, cidr):
        """Mark ``cidr`` taken; False if it is not a subnet of this set."""
        index = self._index(cidr)
        if index is None:
            return False
        with self._lock:
            self._used.add(index)
        return True

    def release(self, cidr):
        index = self._index(cidr)
        if index is not None:
            with self._lock:
                self._used.discard(index)

    def used(self):
        with self._lock:
            return len(self._used)


def pod_cidrs(node):
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIpamController(Controller):
    """Set spec.podCIDR(s) on nodes without one; reclaim subnets of deleted nodes."""

    def __init__(self, rest, node_informer, cluster_cidr=CLUSTER_CIDR,
                 mask_size=NODE_CIDR_MASK_SIZE, queue=None, recorder=None, wall_clock=meta.utcnow):
        super().__init__("nodeipam", [node_informer], queue)
        self.rest, self.wall_clock = rest, wall_clock
        self.recorder = recorder or NullRecorder()
        self.node_store = node_informer.store
        self.cidrs = CidrSet(cluster_cidr, mask_size)
        self.assigned = {}          # node name -> the subnets it holds (seen or given by us)
        self._lock = threading.Lock()
        self._rebuilt = False
        node_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                  self.enqueue)

    def rebuild(self):
        """Mark every cached node's subnets used, before any is handed out (once)."""
        with self._lock:
            if self._rebuilt:
                return
            for node in self.node_store.list():
                self._occupy(node)
            self._rebuilt = True

    def _occupy(self, node):
        name = node["metadata"]["name"]
        cidrs = pod_cidrs(node)
        for cidr in cidrs:
            if not self.cidrs.occupy(cidr):
                log.warning("node %s: podCIDR %s is outside the cluster CIDR %s", name, cidr,
                            self.cidrs.network)
        self.assigned[name] = cidrs

    def sync(self, key):
        """Give node ``key`` a subnet if it has none; release a deleted node's."""
        self.rebuild()
        node = self.node_store.get(key)
        with self._lock:
            if node is None:
                self._release(key)
                return
            if pod_cidrs(node):
                if self.assigned.get(key) != pod_cidrs(node):
                    self._occupy(node)
                self._clear_network_unavailable(node)
                return
            if self.assigned.get(key):
                return          # we gave it one; the informer has not shown it yet
            try:
                cidr = self.cidrs.allocate_next()
            except CidrExhausted as exc:
                self._exhausted(node, exc)
                return
            self.assigned[key] = [cidr]
        try:
            self.rest.patch(kinds.NODES, None, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except NotFound:
            with self._lock:
                self._release(key)
            return
        except ApiException:
            with self._lock:
                self._release(key)
            raise
        log.info("node %s: podCIDR %s", key, cidr)

    def _release(self, name):
        cidrs = self.assigned.pop(name, [])
        for cidr in cidrs:
            self.cidrs.release(cidr)
        if cidrs:
            log.info("node %s: released %s", name, ", ".join(cidrs))
            for node in self.node_store.list():     # someone may be waiting for a subnet
                if not pod_cidrs(node):
                    self.enqueue(node)

    def _exhausted(self, node, exc):
        name = node["metadata"]["name"]
        log.warning("node %s: %s", name, exc)
        self.recorder.event(node, "Warning", "CIDRNotAvailable",
                            f"Node {name} status is now: CIDRNotAvailable")
        cond = conditions.find(node, "NetworkUnavailable")
        if cond is not None and cond.get("status") == "True":
            return
        self._set_network_unavailable(node, "True", NO_CIDR_REASON,
                                      f"no free /{self.cidrs.mask_size} in cluster CIDR "
                                      f"{self.cidrs.network}")

    def _clear_network_unavailable(self, node):
        """Clear NetworkUnavailable once the node has a subnet, if we set it."""
        cond = conditions.find(node, "NetworkUnavailable")
        if cond is not None and cond.get("status") == "True" and \
                cond.get("reason") == NO_CIDR_REASON:
            self._set_network_unavailable(node, "False", "RouteCreated",
                                          "NodeController create implicit route")

    def _set_network_unavailable(self, node, status, reason, message):
        now = meta.timestamp(self.wall_clock())
        patch = {"status": {"conditions": [{
            "type": "NetworkUnavailable", "status": status, "reason": reason,
            "message": message, "lastHeartbeatTime": now, "lastTransitionTime": now}]}}
        try:
            self.rest.patch(kinds.NODES, None, node["metadata"]["name"], patch, "strategic",
                            subresource="status")
        except ApiException as exc:
            log.warning("node %s: cannot set NetworkUnavailable: %s", node["metadata"]["name"],
                        exc)
