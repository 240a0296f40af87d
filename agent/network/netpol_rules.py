"""NetworkPolicy as one nftables table: ``inet steer-netpol``, built as data.

    chain forward (hook forward, policy accept)
        ct state established,related accept      replies to allowed connections
        ip saddr vmap @egress_v4                  local isolated pod -> its out/ chain
        ip daddr vmap @ingress_v4                 local isolated pod -> its in/ chain
        (and ip6 with the _v6 maps)
    chain out/<ns>/<pod>   the pod itself, allowed destinations: return (on to ingress)
    chain in/<ns>/<pod>    the pod itself, allowed sources: accept

each per-pod chain ending in ``counter drop``. Pods no policy isolates are in no
map and pass. Traffic between pods on the same node's bridge reaches the forward
hook only with br_netfilter (net.bridge.bridge-nf-call-iptables=1, the default
where it is built in; kubelet needs the same). Traffic between a pod and its own
node (kubelet probes) never crosses the forward hook, so it always passes, as most
Kubernetes network plugins allow. A Service's DNAT (agent/network/nft_rules.py)
happens before forward, so rules see pod IPs; a masqueraded source (hairpin,
NodePort) shows as the node's bridge address.
"""

import hashlib
import ipaddress

from agent.network.nft_ruleset import Chain, NamedSet, Ruleset

TABLE = "steer-netpol"
FAMILY = "inet"
_MAX_CHAIN_NAME = 200        # nft allows 255 bytes; longer pod names get a digest
_MAPS = (("egress_v4", "ipv4_addr"), ("egress_v6", "ipv6_addr"),
         ("ingress_v4", "ipv4_addr"), ("ingress_v6", "ipv6_addr"))
FORWARD_HOOK = "type filter hook forward priority filter; policy accept;"


def chain_name(prefix, namespace, name):
    """``in/<ns>/<pod>``: "/" cannot occur in either name, so names never collide."""
    text = f"{prefix}/{namespace}/{name}"
    if len(text) > _MAX_CHAIN_NAME:
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        text = f"{prefix}/{namespace}/{name[:100]}-{digest}"
    return text


def _address_matches(field, networks):
    """``ip saddr { ... }`` / ``ip6 saddr { ... }`` per family; [""] for any address."""
    if networks is None:
        return [""]
    parts = []
    for family, version in (("ip", 4), ("ip6", 6)):
        nets = [n for n in networks if ipaddress.ip_network(n).version == version]
        if nets:
            parts.append(f"{family} {field} {{ {', '.join(nets)} }} ")
    return parts


def _port_matches(ports):
    """One match per protocol: ``tcp dport { 80, 8080-8090 } `` or ``meta l4proto udp ``."""
    if ports is None:
        return [""]
    by_protocol = {}
    for protocol, span in ports:
        by_protocol.setdefault(protocol.lower(), []).append(span)
    matches = []
    for protocol, spans in sorted(by_protocol.items()):
        if "" in spans:
            matches.append(f"meta l4proto {protocol} ")
        else:
            matches.append(f"{protocol} dport {{ {', '.join(_port_order(spans))} }} ")
    return matches


def _port_order(spans):
    return sorted(set(spans), key=lambda s: tuple(int(x) for x in s.split("-")))


def _chain_rules(allows, field, verdict, own_ips):
    # A pod reaching itself through its Service (hairpin: DNAT to its own IP) crosses
    # the bridge; no policy can block a pod from itself.
    rules = [f"{match}{verdict}" for match in _address_matches(
        field, [str(ipaddress.ip_network(ip)) for ip in own_ips])]
    for allow in allows:
        for address in _address_matches(field, allow.networks):
            for port in _port_matches(allow.ports):
                rules.append(f"{address}{port}{verdict}")
    # Two Allows may spell the same rule (an any-address one, say): keep the first.
    return tuple(dict.fromkeys(rules)) + ("counter drop",)


def build_ruleset(accesses):
    """The steer-netpol table for these PodAccess entries (agent/network/netpol.py)."""
    chains, elements = [], {name: [] for name, _ in _MAPS}
    for access in accesses:
        for direction, allows, field, verdict in (("out", access.egress, "daddr", "return"),
                                                  ("in", access.ingress, "saddr", "accept")):
            if allows is None:
                continue
            name = chain_name(direction, access.namespace, access.name)
            chains.append(Chain(name, "", _chain_rules(allows, field, verdict, access.ips)))
            prefix = "egress" if direction == "out" else "ingress"
            for ip in access.ips:
                version = ipaddress.ip_address(ip).version
                elements[f"{prefix}_v{version}"].append((ip, f"jump {name}"))
    forward = Chain("forward", FORWARD_HOOK, (
        "ct state established,related accept",
        "ip saddr vmap @egress_v4", "ip6 saddr vmap @egress_v6",
        "ip daddr vmap @ingress_v4", "ip6 daddr vmap @ingress_v6"))
    sets = tuple(NamedSet("map", name, (f"type {key} : verdict;",)) for name, key in _MAPS)
    return Ruleset(TABLE, sets, tuple(chains) + (forward,),
                   tuple((name, tuple(sorted(entries))) for name, entries in
                         sorted(elements.items())), family=FAMILY)
