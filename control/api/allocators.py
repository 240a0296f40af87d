"""Service ClusterIPs and NodePorts, allocated as kube-apiserver allocates them.

Every allocated address or port is *claimed* by a store key of its own,
``/registry/ipallocations/<ip>`` or ``/registry/nodeportallocations/<port>``,
created with a create-only compare (pools.py). The store decides between two API
servers (or two workers) racing for one value: one create succeeds, the other moves
on to another value. A claim is made before the Service is written and released
when that write fails, so a claim can only leak if the API server dies in
between; ``repair`` (run when the API server starts, and when a range looks
full) releases claims no Service holds any more, and claims values that a
Service holds without a claim, as Kubernetes' repair controllers do. A claim
younger than ``grace`` seconds is never released by repair: it may belong to a
create that is about to write its Service.

The claim's value names its owner (namespace, name, uid) so that a release
never frees a value that has changed hands.
"""

import ipaddress
import logging
import time

from control import errors
from control.api.pools import (
    Claims,
    RangeFull,
    claim_owner,
    cluster_ip_pool,
    node_port_pool,
    release_all,
)
from control.objects import kinds

log = logging.getLogger("steer.apiserver.allocators")

DEFAULT_CLUSTER_IP_RANGE = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
#: Seconds a claim without its Service is left alone (its create may be in flight).
DEFAULT_GRACE = 60.0


def needs_cluster_ip(spec):
    return (spec.get("type") or "ClusterIP") != "ExternalName"


def has_node_ports(spec):
    """NodePort and LoadBalancer Services may hold nodePorts."""
    return (spec.get("type") or "ClusterIP") in ("NodePort", "LoadBalancer")


def allocates_node_ports(spec):
    """Ports without a nodePort get one, unless a LoadBalancer opted out
    (allocateLoadBalancerNodePorts: false keeps only the nodePorts it names)."""
    kind = spec.get("type") or "ClusterIP"
    return kind == "NodePort" or (kind == "LoadBalancer"
                                  and spec.get("allocateLoadBalancerNodePorts", True))


def _owner_of(service):
    meta = service["metadata"]
    return {"namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")}


class ServiceAllocator:
    """Fill in and claim Services' clusterIPs and nodePorts on create and update."""

    def __init__(self, registry, cluster_ip_range=DEFAULT_CLUSTER_IP_RANGE,
                 node_port_range=DEFAULT_NODE_PORT_RANGE, clock=time.time, rng=None,
                 grace=DEFAULT_GRACE):
        store = registry.checked_store()
        self.registry, self.clock, self.grace = registry, clock, grace
        self.ips = cluster_ip_pool(store, cluster_ip_range, clock=clock, rng=rng)
        self.ports = node_port_pool(store, node_port_range, clock=clock, rng=rng)

    # -- the verbs' hooks -------------------------------------------------------------
    def on_create(self, service):
        """Allocate what a new Service needs (in place); return the Claims made."""
        return self._claim(service, None)

    def on_update(self, old, new):
        """Carry over or allocate what ``new`` needs; return (Claims made, release after).

        ``release after`` is a function freeing what ``old`` held and ``new`` does not:
        call it once the update is stored.
        """
        claims = self._claim(new, old)
        kept = set(self._held(new))
        dropped = [(pool, text) for pool, text in self._held(old) if (pool, text) not in kept]
        uid = old["metadata"].get("uid")
        return claims, lambda: release_all((pool, text, uid) for pool, text in dropped)

    def on_delete(self, service):
        """Release everything a deleted Service held."""
        uid = service["metadata"].get("uid")
        release_all((pool, text, uid) for pool, text in self._held(service))

    # -- filling in -------------------------------------------------------------------
    def _claim(self, service, old):
        """Fill in ``service`` (``old``: what it was, None if new); return the Claims made.

        If filling in fails, what it claimed so far is released.
        """
        claims = Claims()
        try:
            self._fill(service, old, claims)
        except BaseException:
            claims.rollback()
            raise
        return claims

    def _fill(self, service, old, claims):
        spec = service.setdefault("spec", {})
        name = service["metadata"]["name"]
        owner = _owner_of(service)
        old_spec = (old or {}).get("spec") or {}
        if not needs_cluster_ip(spec):
            for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(field, None)
        else:
            self._fill_cluster_ip(name, spec, old_spec if old and needs_cluster_ip(old_spec)
                                  else None, owner, claims)
        if has_node_ports(spec):
            self._fill_node_ports(name, spec, old_spec if old and has_node_ports(old_spec)
                                  else None, owner, claims, allocates_node_ports(spec))
        else:
            for port in spec.get("ports") or ():
                port.pop("nodePort", None)

    def _fill_cluster_ip(self, name, spec, old_spec, owner, claims):
        wanted = spec.get("clusterIP") or (spec.get("clusterIPs") or [None])[0] or ""
        if old_spec is not None:
            held = old_spec.get("clusterIP") or ""
            if not wanted:
                wanted = held
            elif wanted != held:
                raise self._invalid(name, "spec.clusterIP", f'Invalid value: "{wanted}": '
                                    "field is immutable")
            if wanted:
                spec["clusterIP"], spec["clusterIPs"] = wanted, [wanted]
                self._families(spec)
                return
        if wanted == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        elif wanted:
            self._claim_requested_ip(name, wanted, owner, claims)
            spec["clusterIP"], spec["clusterIPs"] = wanted, [wanted]
        else:
            text = self._allocate(self.ips, owner, "failed to allocate a serviceIP")
            claims.add(self.ips, text, owner["uid"])
            spec["clusterIP"], spec["clusterIPs"] = text, [text]
        self._families(spec)

    @staticmethod
    def _families(spec):
        spec["ipFamilies"] = ["IPv4"]
        spec["ipFamilyPolicy"] = "SingleStack"

    def _claim_requested_ip(self, name, wanted, owner, claims):
        field, shown = "spec.clusterIPs", f'[]string{{"{wanted}"}}'
        try:
            address = ipaddress.ip_address(wanted)
        except ValueError:
            raise self._invalid(name, "spec.clusterIPs[0]", f'Invalid value: "{wanted}": must be '
                                "a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)") from None
        if address.version != 4:
            raise self._invalid(name, field, f"Invalid value: {shown}: failed to allocate IP "
                                f"{wanted}: IPv6 is not configured on this cluster")
        index = self.ips.to_index(wanted)
        # The first address is kept for default/kubernetes (control/api/masterservice.py).
        master = index == 1 and (owner.get("namespace"), owner.get("name")) == (
            "default", "kubernetes")
        if index is None or not 0 <= index < self.ips.size or (
                index in self.ips.reserved and not master):
            raise self._invalid(
                name, field, f"Invalid value: {shown}: failed to allocate IP {wanted}: the "
                f"provided IP ({wanted}) is not in the valid range. The range of valid IPs is "
                f"{self.ips.network}")
        if not self._claim_or_reclaim(self.ips, wanted, owner):
            raise self._invalid(name, field, f"Invalid value: {shown}: failed to allocate IP "
                                f"{wanted}: provided IP is already allocated")
        claims.add(self.ips, wanted, owner["uid"])

    def _fill_node_ports(self, name, spec, old_spec, owner, claims, allocate):
        ports = spec.get("ports") or []
        held = set()
        if old_spec is not None:
            # patchAllocatedValues: a port without a nodePort keeps the one its namesake had.
            by_name = {p.get("name", ""): p.get("nodePort") for p in old_spec.get("ports") or ()}
            held = {p.get("nodePort") for p in old_spec.get("ports") or () if p.get("nodePort")}
            used = held & {p.get("nodePort") for p in ports if p.get("nodePort")}
            for port in ports:
                previous = by_name.get(port.get("name", ""))
                if not port.get("nodePort") and previous and previous not in used:
                    port["nodePort"] = previous
                    used.add(previous)
        mine = set()
        # Requested ports first, so that an allocated one never takes a requested one.
        for index, port in enumerate(ports):
            wanted = port.get("nodePort")
            if not wanted or wanted in held or wanted in mine:
                continue
            field = f"spec.ports[{index}].nodePort"
            if not isinstance(wanted, int) or not self.ports.contains(str(wanted)):
                raise self._invalid(name, field, f"Invalid value: {wanted}: provided port is "
                                    "not in the valid range. The range of valid ports is "
                                    f"{self.ports.range_text}")
            if not self._claim_or_reclaim(self.ports, str(wanted), owner):
                raise self._invalid(name, field, f"Invalid value: {wanted}: provided port "
                                    "is already allocated")
            claims.add(self.ports, str(wanted), owner["uid"])
            mine.add(wanted)
        for port in ports if allocate else ():
            if not port.get("nodePort"):
                text = self._allocate(self.ports, owner, "failed to allocate a nodePort")
                claims.add(self.ports, text, owner["uid"])
                port["nodePort"] = int(text)

    # -- claims -------------------------------------------------------------------------
    def _allocate(self, pool, owner, what):
        try:
            return pool.allocate(owner)
        except RangeFull:
            pass
        if self.repair():
            try:
                return pool.allocate(owner)
            except RangeFull:
                pass
        raise errors.ApiError(f"Internal error occurred: {what}: range is full")

    def _claim_or_reclaim(self, pool, text, owner):
        """Claim a requested value; take it over if its claim is a stale leftover."""
        if pool.claim(text, owner):
            return True
        kvs = pool.store.get(pool.key(text))["kvs"]
        if kvs and self._stale(claim_owner(kvs[0]["value"]), pool, text):
            pool.release(text, revision=kvs[0]["mod_revision"])
            return pool.claim(text, owner)
        return False

    def _stale(self, claim, pool, text):
        """A claim is stale once it is old enough and its Service does not hold the value."""
        if self.clock() - float(claim.get("claimedAt") or 0) < self.grace:
            return False
        try:
            service = self.registry.get(kinds.SERVICES, claim.get("namespace"), claim.get("name", ""))
        except errors.NotFound:
            return True
        return (service["metadata"].get("uid") != claim.get("uid")
                or (pool, text) not in set(self._held(service)))

    def _held(self, service):
        spec = (service or {}).get("spec") or {}
        held = []
        ip = spec.get("clusterIP")
        if needs_cluster_ip(spec) and ip and ip != "None" and self.ips.contains(ip):
            held.append((self.ips, ip))
        if has_node_ports(spec):
            for port in spec.get("ports") or ():
                if port.get("nodePort") and self.ports.contains(str(port["nodePort"])):
                    held.append((self.ports, str(port["nodePort"])))
        return held

    # -- repair -------------------------------------------------------------------------
    def repair(self):
        """Make claims match the stored Services; return how many claims were released.

        Claims no Service holds (older than the grace period) are released; values a
        Service holds without a claim are claimed for it (a Service stored before
        allocation existed, or by a store restored from a snapshot).
        """
        services, released = [], 0
        continue_token = None
        while True:
            items, _, continue_token = self.registry.list(kinds.SERVICES, limit=500,
                                                          continue_token=continue_token)
            services.extend(items)
            if not continue_token:
                break
        holders = {}
        for service in services:
            for pool, text in self._held(service):
                holders[(pool.prefix, text)] = service["metadata"].get("uid")
        now = self.clock()
        for pool in (self.ips, self.ports):
            claimed = pool.claimed()
            claimed_now = set(claimed)
            for text, (claim, revision) in claimed.items():
                holder = holders.get((pool.prefix, text))
                if holder is not None and holder == claim.get("uid"):
                    continue
                if now - float(claim.get("claimedAt") or 0) < self.grace:
                    continue
                if pool.release(text, revision=revision):
                    released += 1
                    claimed_now.discard(text)
                    log.info("value=%s msg=released a claim no Service holds", text)
            for service in services:
                for held_pool, text in self._held(service):
                    if held_pool is pool and text not in claimed_now:
                        if not pool.claim(text, _owner_of(service)):
                            log.warning("service=%s/%s value=%s msg=value is held by two "
                                        "services", service["metadata"].get("namespace"),
                                        service["metadata"]["name"], text)
        return released

    @staticmethod
    def _invalid(name, field, message):
        return errors.Invalid("Service", name, [(field, "FieldValueInvalid", message)])
