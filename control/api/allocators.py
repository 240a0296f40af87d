"""Service ClusterIPs and NodePorts, allocated as kube-apiserver allocates them.

Every allocated address or port is *claimed* by a store key of its own,
``/registry/ipallocations/<ip>`` or ``/registry/nodeportallocations/<port>``,
created with a create-only compare. The store decides between two API servers
(or two workers) racing for one value: one create succeeds, the other moves on
to another value. A claim is made before the Service is written and released
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
import json
import logging
import random
import time

from control import errors
from control.objects import kinds
from control.registry import _store_call
from store.client import prefix_end

log = logging.getLogger("steer.apiserver.allocators")

SERVICES = kinds.lookup("", "v1", "services")
DEFAULT_CLUSTER_IP_RANGE = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
#: Seconds a claim without its Service is left alone (its create may be in flight).
DEFAULT_GRACE = 60.0


def parse_port_range(text):
    """Parse "30000-32767" (or a single port) into (first, last), inclusive."""
    first, _, last = str(text).partition("-")
    try:
        first, last = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want FIRST-LAST") from None
    if not 0 < first <= last < 65536:
        raise ValueError(f"invalid port range {text!r}: want 1 <= FIRST <= LAST <= 65535")
    return first, last


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


class RangeFull(Exception):
    """Every value of a pool is claimed."""


class _Checked:
    """The store's get and txn, with store failures turned into API errors."""

    def __init__(self, store):
        self.store = store

    def get(self, *args, **kwargs):
        return _store_call(self.store.get, *args, **kwargs)

    def txn(self, *args, **kwargs):
        return _store_call(self.store.txn, *args, **kwargs)


class Pool:
    """Values 0..size-1 of one range, each claimable once through a store key."""

    def __init__(self, store, prefix, size, to_text, to_index, reserved=(), clock=time.time,
                 rng=None):
        self.store, self.prefix, self.size = store, prefix, size
        self.to_text, self.to_index = to_text, to_index
        self.reserved = frozenset(reserved)
        self.clock, self.rng = clock, rng or random.Random()

    def key(self, text):
        return self.prefix + text.encode()

    def claimed(self):
        """Return {value text: (claim owner dict, mod_revision)} for every claim."""
        result = self.store.get(self.prefix, range_end=prefix_end(self.prefix))
        return {kv["key"][len(self.prefix):].decode(): (_owner(kv["value"]), kv["mod_revision"])
                for kv in result["kvs"]}

    def claim(self, text, owner):
        """Claim one value for ``owner``; return False if it is claimed already."""
        value = json.dumps({**owner, "claimedAt": self.clock()}, sort_keys=True).encode()
        key = self.key(text)
        result = self.store.txn(
            compare=[{"key": key, "target": "create", "result": "==", "value": 0}],
            success=[{"op": "put", "key": key, "value": value}],
            failure=[{"op": "range", "key": key}])
        if result["succeeded"]:
            return True
        kvs = result["responses"][0]["kvs"]
        # Claiming again what the owner holds already (a retried request) is fine.
        return bool(kvs) and _owner(kvs[0]["value"]).get("uid") == owner.get("uid")

    def allocate(self, owner):
        """Claim a free value, starting at a random one; raise RangeFull if none is left."""
        taken = set(self.claimed())
        start = self.rng.randrange(self.size)
        for step in range(self.size):
            index = (start + step) % self.size
            if index in self.reserved:
                continue
            text = self.to_text(index)
            if text in taken:
                continue
            if self.claim(text, owner):
                return text
            taken.add(text)
        raise RangeFull()

    def release(self, text, uid=None, revision=None):
        """Delete a claim if ``uid`` (when given) still owns it; return whether it went."""
        key = self.key(text)
        if revision is None:
            kvs = self.store.get(key)["kvs"]
            if not kvs:
                return False
            if uid is not None and _owner(kvs[0]["value"]).get("uid") != uid:
                return False
            revision = kvs[0]["mod_revision"]
        result = self.store.txn(
            compare=[{"key": key, "target": "mod", "result": "==", "value": revision}],
            success=[{"op": "delete", "key": key}])
        return result["succeeded"]

    def contains(self, text):
        index = self.to_index(text)
        return index is not None and 0 <= index < self.size


def _owner(raw):
    try:
        owner = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _owner_of(service):
    meta = service["metadata"]
    return {"namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")}


def cluster_ip_pool(store, cidr, **kwargs):
    """The pool of a service CIDR, without its network address and its first address
    (kube-apiserver keeps the first for the ``kubernetes`` Service) and, for IPv4,
    its broadcast address."""
    network = ipaddress.ip_network(cidr, strict=True)
    base = int(network.network_address)

    def to_index(text):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return None
        if address.version != network.version:
            return None
        return int(address) - base

    size = network.num_addresses
    reserved = {0, 1, size - 1} if network.version == 4 and size > 4 else {0}
    pool = Pool(store, b"/registry/ipallocations/", size,
                lambda index: str(ipaddress.ip_address(base + index)), to_index,
                reserved=reserved, **kwargs)
    pool.network = network
    return pool


def node_port_pool(store, port_range, **kwargs):
    first, last = parse_port_range(port_range)

    def to_index(text):
        try:
            return int(text) - first
        except (TypeError, ValueError):
            return None

    pool = Pool(store, b"/registry/nodeportallocations/", last - first + 1,
                lambda index: str(first + index), to_index, **kwargs)
    pool.range_text = f"{first}-{last}"
    return pool


class Claims:
    """Values claimed during one request, released again if the request fails."""

    def __init__(self):
        self.made = []          # (pool, text, uid)

    def add(self, pool, text, uid):
        self.made.append((pool, text, uid))

    def rollback(self):
        for pool, text, uid in self.made:
            try:
                pool.release(text, uid)
            except Exception:  # noqa: BLE001 - repair will find it
                log.warning("value=%s msg=could not release a claim; repair will", text)
        self.made = []


class ServiceAllocator:
    """Fill in and claim Services' clusterIPs and nodePorts on create and update."""

    def __init__(self, registry, cluster_ip_range=DEFAULT_CLUSTER_IP_RANGE,
                 node_port_range=DEFAULT_NODE_PORT_RANGE, clock=time.time, rng=None,
                 grace=DEFAULT_GRACE):
        store = _Checked(registry.store)
        self.registry, self.clock, self.grace = registry, clock, grace
        self.ips = cluster_ip_pool(store, cluster_ip_range, clock=clock, rng=rng)
        self.ports = node_port_pool(store, node_port_range, clock=clock, rng=rng)

    # -- the verbs' hooks -------------------------------------------------------------
    def on_create(self, service):
        """Allocate what a new Service needs (in place); return the Claims made."""
        claims = Claims()
        try:
            self._fill(service, None, claims)
        except BaseException:
            claims.rollback()
            raise
        return claims

    def on_update(self, old, new):
        """Carry over or allocate what ``new`` needs; return (Claims made, release after).

        ``release after`` is a function freeing what ``old`` held and ``new`` does not:
        call it once the update is stored.
        """
        claims = Claims()
        try:
            self._fill(new, old, claims)
        except BaseException:
            claims.rollback()
            raise
        kept = set(self._held(new))
        dropped = [(pool, text) for pool, text in self._held(old) if (pool, text) not in kept]
        uid = old["metadata"].get("uid")
        return claims, lambda: self._release(dropped, uid)

    def on_delete(self, service):
        """Release everything a deleted Service held."""
        self._release(self._held(service), service["metadata"].get("uid"))

    # -- filling in -------------------------------------------------------------------
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
        if index is None or not 0 <= index < self.ips.size or index in self.ips.reserved:
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
        if kvs and self._stale(_owner(kvs[0]["value"]), pool, text):
            pool.release(text, revision=kvs[0]["mod_revision"])
            return pool.claim(text, owner)
        return False

    def _stale(self, claim, pool, text):
        """A claim is stale once it is old enough and its Service does not hold the value."""
        if self.clock() - float(claim.get("claimedAt") or 0) < self.grace:
            return False
        try:
            service = self.registry.get(SERVICES, claim.get("namespace"), claim.get("name", ""))
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

    def _release(self, held, uid):
        for pool, text in held:
            try:
                pool.release(text, uid)
            except Exception:  # noqa: BLE001 - repair will find it
                log.warning("value=%s msg=could not release a claim; repair will", text)

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
            items, _, continue_token = self.registry.list(SERVICES, limit=500,
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
