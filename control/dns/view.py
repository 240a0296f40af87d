"""Read what cluster DNS needs out of informer caches: Services, ready endpoints, pod IPs.

A Service's endpoints come from its EndpointSlices (discovery.k8s.io/v1) when it
has any, else from its Endpoints object: a cluster without the slice
controller, or a selectorless Service whose Endpoints were written by hand,
still resolves. The caches are ``control.client.Store``s (an informer's, or one
a test fills); nothing here does I/O, and nothing mutates a cached object.
"""

import ipaddress
import re
from dataclasses import dataclass

from control.client.cache import namespace_index

#: The label an EndpointSlice names its Service by.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: Endpoints of a Service with this annotation "true" count as ready (the old opt-in).
TOLERATE_UNREADY = "service.alpha.kubernetes.io/tolerate-unready-endpoints"

#: An endpoint hostname DNS can publish (a DNS-1123 label); others are left out.
HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")

#: Parsed endpoint lists remembered before the memo starts over.
MEMO_LIMIT = 20000

BY_NAMESPACE = "namespace"
BY_SERVICE = "dns-service"
BY_IP = "dns-ip"


@dataclass(frozen=True)
class Port:
    """A port an endpoint serves: its name ("" when unnamed), protocol and number."""

    name: str
    protocol: str
    number: int


@dataclass(frozen=True)
class Endpoint:
    """One address of a Service: its IP, its hostname (None if it has none) and ports."""

    ip: str
    hostname: str | None
    ports: tuple


def normalize_ip(text):
    """The canonical text of an IP address (IPv6 compressed, lower case), or None."""
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def _meta(obj):
    return obj.get("metadata") or {}


def _service_key_of_slice(obj):
    name = (_meta(obj).get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{_meta(obj).get('namespace', '')}/{name}" if name else None


def _slice_ips(obj):
    return [ip for ep in obj.get("endpoints") or () for ip in map(normalize_ip,
                                                                   ep.get("addresses") or ())
            if ip]


def _endpoints_ips(obj):
    return [ip for subset in obj.get("subsets") or ()
            for address in (subset.get("addresses") or []) + (subset.get("notReadyAddresses") or [])
            for ip in [normalize_ip(address.get("ip"))] if ip]


def service_ips(service):
    """The ClusterIPs of a Service (dual-stack ``clusterIPs`` first), without "None"."""
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in map(normalize_ip, ips) if ip]


def _pod_ips(obj):
    status = obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or ()] or [status.get("podIP")]
    namespace = _meta(obj).get("namespace", "")
    return [f"{namespace}/{ip}" for ip in map(normalize_ip, ips) if ip]


def _port(raw):
    return Port((raw.get("name") or "").lower(), (raw.get("protocol") or "TCP").upper(),
                int(raw.get("port") or 0))


def _hostname(raw):
    name = (raw.get("hostname") or "").lower()
    return name if HOSTNAME.match(name) else None


def is_headless(service):
    return ((service.get("spec") or {}).get("clusterIP") or "") == "None"


def publishes_unready(service):
    spec = service.get("spec") or {}
    annotations = _meta(service).get("annotations") or {}
    return bool(spec.get("publishNotReadyAddresses")) or \
        str(annotations.get(TOLERATE_UNREADY, "")).lower() == "true"


def _ensure_index(store, name, func):
    if store is not None and not store.has_index(name):
        store.add_index(name, func)


class ClusterView:
    """Answer "which Service, which endpoints, which pod" from informer caches."""

    def __init__(self, services, slices=None, endpoints=None, pods=None):
        self.services, self.slices, self.endpoints, self.pods = services, slices, endpoints, pods
        _ensure_index(services, BY_NAMESPACE, namespace_index)
        _ensure_index(services, BY_IP, service_ips)
        _ensure_index(slices, BY_SERVICE, _service_key_of_slice)
        _ensure_index(slices, BY_IP, _slice_ips)
        _ensure_index(endpoints, BY_IP, _endpoints_ips)
        _ensure_index(pods, BY_IP, _pod_ips)
        self._memo = {}

    def _parsed(self, parse, obj, include_unready):
        """``parse(obj, include_unready)``, remembered per cached object.

        Informers replace an object on every change and never mutate it, so the
        object's identity is a safe key; the memo is dropped whole when it grows.
        """
        if obj is None:
            return []
        key = (id(obj), include_unready)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        if len(self._memo) > MEMO_LIMIT:
            self._memo.clear()
        endpoints = parse(obj, include_unready)
        self._memo[key] = (obj, endpoints)
        return endpoints

    def service(self, namespace, name):
        """The Service ``namespace/name``, or None."""
        return self.services.get(f"{namespace}/{name}")

    def namespace_has_services(self, namespace):
        return bool(self.services.by_index(BY_NAMESPACE, namespace))

    def ready_endpoints(self, service):
        """The endpoints DNS publishes for ``service``: ready ones (all, if it says so)."""
        meta = _meta(service)
        key = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
        include_unready = publishes_unready(service)
        found = []
        if self.slices is not None:
            for obj in self.slices.by_index(BY_SERVICE, key):
                found.extend(self._parsed(_from_slice, obj, include_unready))
        if not found and self.endpoints is not None:
            found = self._parsed(_from_endpoints, self.endpoints.get(key), include_unready)
        unique = {}
        for endpoint in found:      # slices may repeat an endpoint while they are moved
            unique.setdefault((endpoint.ip, endpoint.hostname), endpoint)
        return list(unique.values())

    def services_with_ip(self, ip):
        """Services whose ClusterIP is ``ip`` (normally one)."""
        return self.services.by_index(BY_IP, ip)

    def services_with_endpoint_ip(self, ip):
        """Services that have an endpoint (ready or not) with address ``ip``."""
        keys = set()
        if self.slices is not None:
            keys.update(filter(None, map(_service_key_of_slice, self.slices.by_index(BY_IP, ip))))
        if self.endpoints is not None:
            keys.update(f"{_meta(o).get('namespace', '')}/{_meta(o).get('name', '')}"
                        for o in self.endpoints.by_index(BY_IP, ip))
        return [s for s in map(self.services.get, sorted(keys)) if s is not None]

    def pod_has_ip(self, namespace, ip):
        """Whether a pod in ``namespace`` has ``ip`` (False without a pod cache)."""
        return self.pods is not None and bool(self.pods.by_index(BY_IP, f"{namespace}/{ip}"))


def _from_slice(obj, include_unready):
    if obj.get("addressType") not in (None, "IPv4", "IPv6"):
        return []      # FQDN slices name hosts, not addresses
    ports = tuple(_port(p) for p in obj.get("ports") or ())
    endpoints = []
    for raw in obj.get("endpoints") or ():
        # A missing "ready" condition means ready (discovery.k8s.io/v1).
        if (raw.get("conditions") or {}).get("ready") is False and not include_unready:
            continue
        hostname = _hostname(raw)
        endpoints.extend(Endpoint(ip, hostname, ports)
                         for ip in map(normalize_ip, raw.get("addresses") or ()) if ip)
    return endpoints


def _from_endpoints(obj, include_unready):
    endpoints = []
    for subset in (obj or {}).get("subsets") or ():
        ports = tuple(_port(p) for p in subset.get("ports") or ())
        addresses = list(subset.get("addresses") or ())
        if include_unready:
            addresses += subset.get("notReadyAddresses") or []
        for address in addresses:
            ip = normalize_ip(address.get("ip"))
            if ip:
                endpoints.append(Endpoint(ip, _hostname(address), ports))
    return endpoints
