"""Write the nftables script that implements Services on one node (pure).

The layout follows kube-proxy's nftables mode, in a table of our own:

- nat chains hooked at prerouting and output jump to ``services``, which looks up
  ``daddr . l4proto . dport`` in the map ``service-ips`` (ClusterIPs) and, for the
  node's addresses, ``l4proto . dport`` in ``service-nodeports``; each hit is a goto
  to the chain of that Service port.
- A Service port's chain marks what must be masqueraded, then goes to a balancing
  chain (all endpoints, or only this node's for the Local traffic policies), which
  honours sessionAffinity through one dynamic timeout set per endpoint and picks
  one with ``numgen random mod N vmap``; the endpoint's chain DNATs.
- Filter chains at priority -110 (before DNAT) reject *new* connections to Service
  ports without endpoints (maps ``no-endpoint-services``/``no-endpoint-nodeports``),
  and whatever else is addressed inside the service CIDR is rejected too, so a miss
  is refused at once and never routed. Only ``ct state new`` is checked: an
  established connection keeps its conntrack DNAT when its endpoint goes away.
- postrouting masquerades packets carrying the mark: hairpin (a pod reaching its own
  Service), NodePort traffic (its reply must come back through this node) and
  ClusterIP traffic from outside the cluster CIDR.

``build_ruleset`` gives the table as data (agent/network/nft_ruleset.py), whose
``script()`` deletes and recreates the table in one ``nft -f`` transaction, so the
kernel switches from the old rules to the new ones atomically; ``update_script``
there writes only the change from the table in place. The same input always gives
the same bytes, so an unchanged sync is found by comparing.
"""

import base64
import hashlib
from dataclasses import dataclass

from agent.network.nft_ruleset import Chain, NamedSet, Ruleset
from agent.network.nft_services import service_ports

TABLE = "steer-proxy"
MASQ_MARK = "0x4000"
#: Before the nat chains at -100, so the original destination is still visible.
FILTER_PRIORITY = -110
#: After the output nat chain: a ClusterIP still in place here matched no DNAT.
POST_DNAT_PRIORITY = -90


@dataclass(frozen=True)
class NodeView:
    """What the rules need to know about the node and the cluster's ranges."""

    node_name: str
    node_ips: tuple = ()          # NodePorts answer on these (empty: any local address)
    cluster_cidr: str = ""        # pods; traffic from outside it gets masqueraded
    service_cidr: str = ""        # everything here that no rule takes is rejected


def _hash(text):
    digest = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(digest).decode()[:8]


def _name(prefix, key):
    """A chain or set name: readable, and unique even if a key were cut short."""
    return f"{prefix}-{_hash(prefix + key)}-{key}"


def _endpoint_key(sp, ep):
    return f"{sp.key}__{ep.ip}/{ep.port}"


def _proto(sp):
    return sp.protocol.lower()


def _chain(name, rules, hook=""):
    return [Chain(name, hook, tuple(rules))]


def _endpoint_chain(sp, ep):
    rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]      # hairpin
    if sp.affinity_seconds:
        rules.append(f"update @{_name('affinity', _endpoint_key(sp, ep))} {{ ip saddr }}")
    rules.append(f"meta l4proto {_proto(sp)} dnat to {ep.ip}:{ep.port}")
    return _chain(_name("endpoint", _endpoint_key(sp, ep)), rules)


def _balance_rules(sp, endpoints):
    """Rules choosing one of ``endpoints``: the remembered one, else at random."""
    rules = []
    if sp.affinity_seconds:
        for ep in endpoints:
            key = _endpoint_key(sp, ep)
            rules.append(f"ip saddr @{_name('affinity', key)} goto {_name('endpoint', key)}")
    targets = [_name("endpoint", _endpoint_key(sp, ep)) for ep in endpoints]
    if len(targets) == 1:
        rules.append(f"goto {targets[0]}")
    else:
        choices = ", ".join(f"{i} : goto {t}" for i, t in enumerate(targets))
        rules.append(f"numgen random mod {len(targets)} vmap {{ {choices} }}")
    return rules


def _service_chains(sp, view):
    """Every chain of one Service port, each target before the chains that use it."""
    cluster, local = _name("cluster", sp.key), _name("local", sp.key)
    external = bool(sp.node_port and sp.endpoints)
    balance = {}            # the balancing chains something refers to: name -> endpoints
    if sp.internal_endpoints:
        balance[local if sp.internal_local else cluster] = sp.internal_endpoints
    if external:
        balance[cluster] = sp.endpoints
        if sp.external_local and sp.local_endpoints:
            balance[local] = sp.local_endpoints
    out = []
    for ep in sorted({ep for endpoints in balance.values() for ep in endpoints}):
        out += _endpoint_chain(sp, ep)
    for name in sorted(balance):
        out += _chain(name, _balance_rules(sp, balance[name]))
    if sp.internal_endpoints:
        rules = []
        if view.cluster_cidr:
            rules.append(f"ip saddr != {view.cluster_cidr} jump mark-for-masquerade")
        rules.append(f"goto {local if sp.internal_local else cluster}")
        out += _chain(_name("service", sp.key), rules)
    if external:
        out += _chain(_name("external", sp.key), _external_rules(sp, view, cluster, local))
    return out


def _external_rules(sp, view, cluster, local):
    if not sp.external_local:
        return ["jump mark-for-masquerade", f"goto {cluster}"]
    # Local policy keeps the client's address, so no masquerade for outside traffic;
    # pods and the node itself still reach every endpoint (kube-proxy's short-cuts).
    rules = [f"ip saddr {view.cluster_cidr} goto {cluster}"] if view.cluster_cidr else []
    rules += ["fib saddr type local jump mark-for-masquerade",
              f"fib saddr type local goto {cluster}",
              f"goto {local}" if sp.local_endpoints else "drop"]
    return rules


def _map_elements(ports):
    """The four verdict maps as {map name: {element key: verdict}} (first one wins)."""
    maps = {"service-ips": {}, "no-endpoint-services": {},
            "service-nodeports": {}, "no-endpoint-nodeports": {}}
    for sp in ports:
        ip_key = f"{sp.cluster_ip} . {_proto(sp)} . {sp.port}"
        if sp.internal_endpoints:
            maps["service-ips"].setdefault(ip_key, f"goto {_name('service', sp.key)}")
        else:   # nothing at all: refuse; only no local endpoint (internal Local): drop
            verdict = "drop" if sp.endpoints else "goto reject-chain"
            maps["no-endpoint-services"].setdefault(ip_key, verdict)
        if sp.node_port:
            port_key = f"{_proto(sp)} . {sp.node_port}"
            if sp.endpoints:
                maps["service-nodeports"].setdefault(port_key,
                                                     f"goto {_name('external', sp.key)}")
            else:
                maps["no-endpoint-nodeports"].setdefault(port_key, "goto reject-chain")
    return maps


MAP_TYPES = {
    "service-ips": "ipv4_addr . inet_proto . inet_service : verdict",
    "no-endpoint-services": "ipv4_addr . inet_proto . inet_service : verdict",
    "service-nodeports": "inet_proto . inet_service : verdict",
    "no-endpoint-nodeports": "inet_proto . inet_service : verdict",
}


def _node_address_match(view):
    if view.node_ips:
        return "ip daddr @nodeport-ips"
    excluded = ", ".join(["127.0.0.0/8"] + ([view.service_cidr] if view.service_cidr else []))
    return f"fib daddr type local ip daddr != {{ {excluded} }}"


def _fixed_chains(view):
    """The chains every node has, whatever its Services."""
    nodes = _node_address_match(view)
    cidr_check = [f"ip daddr {view.service_cidr} goto reject-chain"] if view.service_cidr else []
    new = "ct state new jump"
    return (
        _chain("reject-chain", ["meta l4proto tcp reject with tcp reset", "reject"])
        + _chain("mark-for-masquerade", [f"meta mark set meta mark | {MASQ_MARK}"])
        + _chain("masquerading", [f"meta mark & {MASQ_MARK} == 0 return",
                                  f"meta mark set meta mark ^ {MASQ_MARK}",
                                  "masquerade fully-random"])
        + _chain("service-endpoints-check",
                 ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"])
        + _chain("nodeport-endpoints-check",
                 [f"{nodes} meta l4proto . th dport vmap @no-endpoint-nodeports"])
        + _chain("cluster-ips-check", cidr_check)
        + _chain("services", ["ip daddr . meta l4proto . th dport vmap @service-ips",
                              f"{nodes} meta l4proto . th dport vmap @service-nodeports"])
        + _chain("filter-input", [f"{new} nodeport-endpoints-check",
                                  f"{new} service-endpoints-check",
                                  f"{new} cluster-ips-check"],
                 f"type filter hook input priority {FILTER_PRIORITY}; policy accept;")
        + _chain("filter-forward", [f"{new} service-endpoints-check",
                                    f"{new} cluster-ips-check"],
                 f"type filter hook forward priority {FILTER_PRIORITY}; policy accept;")
        + _chain("filter-output", [f"{new} nodeport-endpoints-check",
                                   f"{new} service-endpoints-check"],
                 f"type filter hook output priority {FILTER_PRIORITY}; policy accept;")
        + _chain("filter-output-post-dnat", [f"{new} cluster-ips-check"],
                 f"type filter hook output priority {POST_DNAT_PRIORITY}; policy accept;")
        + _chain("nat-prerouting", ["jump services"],
                 "type nat hook prerouting priority -100; policy accept;")
        + _chain("nat-output", ["jump services"],
                 "type nat hook output priority -100; policy accept;")
        + _chain("nat-postrouting", ["jump masquerading"],
                 "type nat hook postrouting priority 100; policy accept;"))


def _sets(ports, view):
    node_ips = ("type ipv4_addr;",)
    if view.node_ips:
        node_ips += (f"elements = {{ {', '.join(sorted(set(view.node_ips)))} }};",)
    out = [NamedSet("set", "nodeport-ips", node_ips)]
    for sp in ports:
        if not sp.affinity_seconds:
            continue
        for ep in sorted(set(sp.endpoints) | set(sp.local_endpoints)):
            out.append(NamedSet("set", _name("affinity", _endpoint_key(sp, ep)),
                                ("type ipv4_addr; flags dynamic,timeout;",
                                 f"timeout {sp.affinity_seconds}s;")))
    out += [NamedSet("map", name, (f"type {kind};",)) for name, kind in MAP_TYPES.items()]
    return out


def render(ports, view, table=TABLE):
    """The Ruleset for a list of ServicePorts (see agent/network/nft_services.py)."""
    chains = []
    for sp in ports:
        chains += _service_chains(sp, view)
    chains += _fixed_chains(view)
    elements = tuple((name, tuple(sorted(entries.items())))
                     for name, entries in _map_elements(ports).items())
    return Ruleset(table, tuple(_sets(ports, view)), tuple(chains), elements)


def build_ruleset(services, endpoint_slices, view, table=TABLE):
    """The table for these Services and EndpointSlices on this node, as data."""
    return render(service_ports(services, endpoint_slices, view.node_name), view, table)


def build_script(services, endpoint_slices, view, table=TABLE):
    """The whole nftables script (replacing the table) for these objects on this node."""
    return build_ruleset(services, endpoint_slices, view, table).script()


def delete_script(table=TABLE):
    """A script removing the table (the proxy stops); harmless if it is absent."""
    return f"add table ip {table}\ndelete table ip {table}\n"
