"""Reduce Services and EndpointSlices to what the nftables rules need (pure).

The proxy programs the kernel per Service *port*: a ClusterIP:port/protocol, maybe a
NodePort, and the endpoints (address:targetPort) behind it, split into those on this
node and all of them, because the traffic policies choose between the two sets. This
module does only that reduction; agent/network/nft_rules.py turns it into a script.
Everything is sorted so that the same objects always give the same plan.
"""

import ipaddress
from dataclasses import dataclass

#: The label tying an EndpointSlice to its Service (discovery.k8s.io/v1).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROTOCOLS = ("TCP", "UDP", "SCTP")
DEFAULT_AFFINITY_SECONDS = 10800


@dataclass(frozen=True, order=True)
class Endpoint:
    """One backend of a Service port: where DNAT sends a new connection."""

    ip: str
    port: int
    node_name: str = ""


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with the endpoints that may serve it."""

    namespace: str
    name: str
    protocol: str              # "TCP", "UDP" or "SCTP"
    port: int
    cluster_ip: str
    node_port: int             # 0: none
    endpoints: tuple           # usable endpoints cluster-wide, sorted
    local_endpoints: tuple     # the subset on this node, sorted
    affinity_seconds: int      # 0: no sessionAffinity
    external_local: bool       # externalTrafficPolicy: Local
    internal_local: bool       # internalTrafficPolicy: Local

    @property
    def key(self):
        """A name unique per Service port: namespace/name/protocol/port."""
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port}"

    @property
    def internal_endpoints(self):
        """The endpoints ClusterIP traffic may use (internalTrafficPolicy)."""
        return self.local_endpoints if self.internal_local else self.endpoints


def _meta(obj):
    return obj.get("metadata") or {}


def _is_ipv4(text):
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def cluster_ip_of(spec):
    """The Service's IPv4 ClusterIP, or None (headless, ExternalName, IPv6 only)."""
    if spec.get("type") == "ExternalName":
        return None
    for ip in [spec.get("clusterIP"), *(spec.get("clusterIPs") or ())]:
        if ip and ip != "None" and _is_ipv4(ip):
            return ip
    return None


def affinity_seconds_of(spec):
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    client_ip = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    return int(client_ip.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)


def _conditions(endpoint):
    """(ready, serving, terminating) with the API's defaults for missing fields."""
    cond = endpoint.get("conditions") or {}
    ready = cond.get("ready") is not False           # nil means ready
    serving = ready if cond.get("serving") is None else bool(cond.get("serving"))
    return ready, serving, bool(cond.get("terminating"))


def usable_endpoints(candidates):
    """Keep the ready endpoints; when none is ready, the serving terminating ones.

    The fallback is kube-proxy's: a Service whose every pod is shutting down keeps
    answering through the pods that still serve, rather than refusing at once.
    """
    ready = {ep for ep, (r, _s, _t) in candidates if r}
    if ready:
        return tuple(sorted(ready))
    return tuple(sorted({ep for ep, (_r, s, t) in candidates if s and t}))


def slices_by_service(slices):
    """{(namespace, service name): [slice, ...]} for IPv4 EndpointSlices."""
    grouped = {}
    for item in slices or ():
        meta = _meta(item)
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if not service or (item.get("addressType") or "IPv4") != "IPv4":
            continue
        grouped.setdefault((meta.get("namespace") or "", service), []).append(item)
    return grouped


def _candidates(slices, port_name, protocol):
    """[(Endpoint, conditions)] of every address serving the named port."""
    found = []
    for item in slices:
        target = next((p.get("port") for p in item.get("ports") or ()
                       if (p.get("name") or "") == port_name
                       and (p.get("protocol") or "TCP") == protocol), None)
        if not target:
            continue
        for endpoint in item.get("endpoints") or ():
            state = _conditions(endpoint)
            for ip in endpoint.get("addresses") or ():
                if _is_ipv4(ip):
                    found.append((Endpoint(ip, int(target), endpoint.get("nodeName") or ""),
                                  state))
    return found


def service_ports(services, slices, node_name):
    """Every ServicePort the proxy must program, sorted by key."""
    grouped = slices_by_service(slices)
    result = []
    for service in services or ():
        meta, spec = _meta(service), service.get("spec") or {}
        cluster_ip = cluster_ip_of(spec)
        if not cluster_ip:
            continue
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        own_slices = grouped.get((namespace, name), ())
        has_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
        for port in spec.get("ports") or ():
            protocol = port.get("protocol") or "TCP"
            if protocol not in PROTOCOLS or not port.get("port"):
                continue
            candidates = _candidates(own_slices, port.get("name") or "", protocol)
            local = [c for c in candidates if c[0].node_name == node_name]
            result.append(ServicePort(
                namespace=namespace, name=name, protocol=protocol, port=int(port["port"]),
                cluster_ip=cluster_ip,
                node_port=int(port.get("nodePort") or 0) if has_node_ports else 0,
                endpoints=usable_endpoints(candidates),
                local_endpoints=usable_endpoints(local),
                affinity_seconds=affinity_seconds_of(spec),
                external_local=spec.get("externalTrafficPolicy") == "Local",
                internal_local=spec.get("internalTrafficPolicy") == "Local"))
    return sorted(result, key=lambda sp: sp.key)
