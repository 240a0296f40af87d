"""Pools of values claimed through store keys: service IPs and node ports.

A pool is a range of values (a service CIDR, a node port range), each claimed by
a key of its own, created with a create-only compare, so that the store decides
between two API servers racing for one value. A claim's value names its owner
(namespace, name, uid), so that a release never frees a value that changed hands.
``Claims`` collects the claims of one request, to release them if it fails.
"""

import ipaddress
import json
import logging
import random
import time

from store.client import prefix_end

log = logging.getLogger("steer.apiserver.allocators")


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


class RangeFull(Exception):
    """Every value of a pool is claimed."""


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
        return {kv["key"][len(self.prefix):].decode(): (claim_owner(kv["value"]), kv["mod_revision"])
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
        return bool(kvs) and claim_owner(kvs[0]["value"]).get("uid") == owner.get("uid")

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
            if uid is not None and claim_owner(kvs[0]["value"]).get("uid") != uid:
                return False
            revision = kvs[0]["mod_revision"]
        result = self.store.txn(
            compare=[{"key": key, "target": "mod", "result": "==", "value": revision}],
            success=[{"op": "delete", "key": key}])
        return result["succeeded"]

    def contains(self, text):
        index = self.to_index(text)
        return index is not None and 0 <= index < self.size


def claim_owner(raw):
    """Return the owner a claim's stored value names ({} if unreadable)."""
    try:
        owner = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


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
        release_all(self.made)
        self.made = []


def release_all(claims):
    """Release each (pool, value text, owner uid); one that fails is left to repair."""
    for pool, text, uid in claims:
        try:
            pool.release(text, uid)
        except Exception:  # noqa: BLE001 - repair will find it
            log.warning("value=%s msg=could not release a claim; repair will", text)
