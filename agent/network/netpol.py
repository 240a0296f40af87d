"""Work out what NetworkPolicies let each of this node's pods send and receive.

Kubernetes' semantics (networking.k8s.io/v1), as a pure function of the objects:
a pod that no policy of a type (Ingress, Egress) selects is unrestricted in that
direction; a selected pod gets only what some rule of some selecting policy allows
(rules and policies OR together). A rule's peers are pods of the policy's namespace
(podSelector), every pod of the selected namespaces (namespaceSelector), both
together (pods matching the podSelector inside those namespaces), or addresses
(ipBlock minus its excepts); no peers means any address, no ports any port. A named
port is resolved on the pod the traffic goes to: the local pod for ingress, each
destination pod for egress (an address that is no pod has no named ports).

The output, one PodAccess per isolated local pod, is turned into nftables rules by
agent/network/netpol_rules.py.
"""

import ipaddress
from dataclasses import dataclass

from control.objects.selectors import LabelSelector, SelectorError

INGRESS, EGRESS = "Ingress", "Egress"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_FINISHED_PHASES = ("Succeeded", "Failed")     # their IPs may already belong to new pods


@dataclass(frozen=True)
class Allow:
    """What one rule lets through: networks (None: any address), ports (None: any).

    ``ports`` holds (protocol, range) pairs: range "8080", "8080-8090", or "" for
    every port of the protocol.
    """

    networks: tuple = None
    ports: tuple = None


@dataclass(frozen=True)
class PodAccess:
    """A local pod's allowed traffic; None in a direction means not isolated there."""

    namespace: str
    name: str
    ips: tuple
    ingress: tuple = None
    egress: tuple = None


def pod_ips(pod):
    status = pod.get("status") or {}
    ips = [entry.get("ip") for entry in status.get("podIPs") or () if entry.get("ip")]
    return tuple(ips or ([status["podIP"]] if status.get("podIP") else []))


def _meta(obj):
    return obj.get("metadata") or {}


def _is_addressable(pod):
    """Whether the pod has an IP of its own that policy can name (not host network)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    return (bool(pod_ips(pod)) and not spec.get("hostNetwork")
            and status.get("phase") not in _FINISHED_PHASES)


def _selector(selector):
    """A LabelSelector; a malformed one (the API refuses them) selects nothing."""
    try:
        return LabelSelector.from_object(selector if selector is not None else {})
    except SelectorError:
        return LabelSelector(nothing=True)


def policy_types(policy):
    """spec.policyTypes, or Kubernetes' default: Ingress, plus Egress if it has rules."""
    spec = policy.get("spec") or {}
    if spec.get("policyTypes"):
        return tuple(spec["policyTypes"])
    return (INGRESS, EGRESS) if spec.get("egress") else (INGRESS,)


def selects(policy, pod):
    return (_meta(policy).get("namespace") == _meta(pod).get("namespace")
            and _selector((policy.get("spec") or {}).get("podSelector"))
            .matches(_meta(pod).get("labels")))


def _network(text):
    return ipaddress.ip_network(text, strict=False)


def _collapse(networks):
    """Non-overlapping networks, IPv4 first, in address order (deterministic text)."""
    by_version = {4: [], 6: []}
    for net in networks:
        by_version[net.version].append(net)
    return tuple(str(n) for version in (4, 6)
                 for n in ipaddress.collapse_addresses(by_version[version]))


def ip_block_networks(block):
    """The block's cidr minus each of its excepts (those outside the cidr change nothing)."""
    remaining = [_network(block["cidr"])]
    for text in block.get("except") or ():
        hole = _network(text)
        pieces = []
        for net in remaining:
            if net.version != hole.version or not hole.overlaps(net):
                pieces.append(net)
            elif not net.subnet_of(hole):
                pieces.extend(net.address_exclude(hole))
        remaining = pieces
    return remaining


class Cluster:
    """The pods and namespace labels that peers are chosen from."""

    def __init__(self, pods, namespaces):
        self.pods = [p for p in pods if _is_addressable(p)]
        self.namespace_labels = {}
        for ns in namespaces:
            name = _meta(ns).get("name", "")
            # The API server sets this label on every Namespace; older objects may lack it.
            self.namespace_labels[name] = {NAMESPACE_NAME_LABEL: name,
                                           **(_meta(ns).get("labels") or {})}

    def peer_pods(self, peer, policy_namespace):
        if "podSelector" not in peer and "namespaceSelector" not in peer:
            return []
        pods_match = _selector(peer.get("podSelector"))
        if "namespaceSelector" in peer:
            ns_match = _selector(peer["namespaceSelector"])

            def in_namespace(ns):
                return ns_match.matches(self.namespace_labels.get(ns, {NAMESPACE_NAME_LABEL: ns}))
        else:
            def in_namespace(ns):
                return ns == policy_namespace
        return [p for p in self.pods if in_namespace(_meta(p).get("namespace"))
                and pods_match.matches(_meta(p).get("labels"))]


def _port_range(entry):
    port, end = entry.get("port"), entry.get("endPort")
    if port is None:
        return ""
    return f"{port}-{end}" if end and int(end) > int(port) else str(port)


def _is_named(entry):
    port = entry.get("port")
    return isinstance(port, str) and not port.isdigit()


def resolve_named_port(pod, name, protocol):
    """The containerPort a pod calls ``name`` for ``protocol``, or None."""
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == name and (port.get("protocol") or "TCP") == protocol:
                return port.get("containerPort")
    return None


def _sorted_ports(ports):
    return tuple(sorted(set(ports)))


def _rule_allows(rule, peers_key, policy_ns, local_pod, direction, cluster):
    """The Allow entries of one ingress or egress rule (several for egress named ports)."""
    peers = rule.get(peers_key) or []
    entries = rule.get("ports") or []
    if peers:
        peer_pods, networks = [], []
        for peer in peers:
            found = cluster.peer_pods(peer, policy_ns)
            peer_pods += found
            networks += [_network(ip) for pod in found for ip in pod_ips(pod)]
            if peer.get("ipBlock"):
                networks += ip_block_networks(peer["ipBlock"])
        networks = _collapse(networks)
        if not networks:
            return []
    else:
        networks = None
    if not entries:
        return [Allow(networks, None)]
    numbered = [((e.get("protocol") or "TCP"), _port_range(e)) for e in entries
                if not _is_named(e)]
    named = [e for e in entries if _is_named(e)]
    if direction == INGRESS:
        for entry in named:
            protocol = entry.get("protocol") or "TCP"
            number = resolve_named_port(local_pod, entry["port"], protocol)
            if number is not None:
                numbered.append((protocol, str(number)))
        return [Allow(networks, _sorted_ports(numbered))] if numbered else []
    allows = [Allow(networks, _sorted_ports(numbered))] if numbered else []
    if named:
        allows += _egress_named(named, networks, cluster)
    return allows


def _egress_named(entries, networks, cluster):
    """Egress to named ports: each destination pod inside ``networks`` on its own number."""
    inside = None if networks is None else [_network(n) for n in networks]
    by_port = {}
    for pod in cluster.pods:
        ips = [ip for ip in pod_ips(pod) if inside is None
               or any(ipaddress.ip_address(ip) in n for n in inside)]
        for entry in entries:
            protocol = entry.get("protocol") or "TCP"
            number = resolve_named_port(pod, entry["port"], protocol)
            if ips and number is not None:
                by_port.setdefault((protocol, str(number)), []).extend(
                    _network(ip) for ip in ips)
    return [Allow(_collapse(nets), (port,)) for port, nets in sorted(by_port.items())]


def _direction(policies, pod, direction, cluster):
    """None when no policy isolates ``pod`` in ``direction``; else its sorted Allows."""
    rules_key, peers_key = ("ingress", "from") if direction == INGRESS else ("egress", "to")
    isolating = [p for p in policies if direction in policy_types(p) and selects(p, pod)]
    if not isolating:
        return None
    allows = set()
    for policy in isolating:
        for rule in (policy.get("spec") or {}).get(rules_key) or ():
            allows.update(_rule_allows(rule or {}, peers_key, _meta(policy).get("namespace"),
                                       pod, direction, cluster))
    return tuple(sorted(allows, key=_allow_key))


def _allow_key(allow):
    return (allow.networks is not None, allow.networks or (), allow.ports is not None,
            allow.ports or ())


def compute(policies, pods, namespaces, node_name):
    """PodAccess for every pod on ``node_name`` that some policy isolates, sorted by name."""
    cluster = Cluster(pods, namespaces)
    local = sorted((p for p in cluster.pods
                    if (p.get("spec") or {}).get("nodeName") == node_name),
                   key=lambda p: (_meta(p).get("namespace", ""), _meta(p).get("name", "")))
    result = []
    for pod in local:
        ingress = _direction(policies, pod, INGRESS, cluster)
        egress = _direction(policies, pod, EGRESS, cluster)
        if ingress is not None or egress is not None:
            result.append(PodAccess(_meta(pod).get("namespace", ""), _meta(pod).get("name", ""),
                                    pod_ips(pod), ingress, egress))
    return tuple(result)
