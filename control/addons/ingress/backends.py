"""Find the ready endpoint addresses behind an Ingress backend (a Service and its port).

As ingress-nginx does, the proxy talks to the pods themselves (their IPs from
the Service's EndpointSlices), not to the Service's cluster IP: an endpoint that
stops being ready leaves the upstream at the next reload, and nginx keeps
connections to each pod. A backend names the Service's port by number or by
name; the pods' port is that Service port's targetPort, which the EndpointSlice
ports carry resolved (by the Service port's name).
"""

from dataclasses import dataclass

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Upstream:
    """Where one backend's requests go: a stable name and its ``ip:port`` servers."""

    name: str
    servers: tuple


def service_port(service, port_ref):
    """The Service port a backend's ``port`` ({number} or {name}) names, or None."""
    for port in (service.get("spec") or {}).get("ports") or []:
        if port.get("protocol", "TCP") != "TCP":
            continue
        if port_ref.get("number") and port.get("port") == port_ref["number"]:
            return port
        if port_ref.get("name") and port.get("name") == port_ref["name"]:
            return port
    return None


def ready_addresses(slices, port_name):
    """Sorted ``ip:port`` of the ready endpoints in ``slices`` serving the port ``port_name``."""
    found = set()
    for piece in slices:
        if piece.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        numbers = [p.get("port") for p in piece.get("ports") or []
                   if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == "TCP"
                   and p.get("port")]
        if not numbers:
            continue
        for endpoint in piece.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            for address in endpoint.get("addresses") or []:
                host = f"[{address}]" if ":" in address else address
                found.add(f"{host}:{numbers[0]}")
    return tuple(sorted(found))


def upstream_for(namespace, service_backend, services, slices_by_service):
    """The Upstream of a service backend in ``namespace`` (no servers: nothing ready).

    ``services`` maps (namespace, name) to Services; ``slices_by_service`` maps
    (namespace, name) to that Service's EndpointSlices.
    """
    name = service_backend.get("name") or ""
    port_ref = service_backend.get("port") or {}
    label = port_ref.get("number") or port_ref.get("name") or ""
    upstream_name = f"{namespace}_{name}_{label}"
    service = services.get((namespace, name))
    if service is None or (service.get("spec") or {}).get("type") == "ExternalName":
        return Upstream(upstream_name, ())
    port = service_port(service, port_ref)
    if port is None:
        return Upstream(upstream_name, ())
    slices = slices_by_service.get((namespace, name), ())
    return Upstream(upstream_name, ready_addresses(slices, port.get("name") or ""))


def index_slices(slices):
    """{(namespace, service name): [EndpointSlice]} by the kubernetes.io/service-name label."""
    found = {}
    for piece in slices:
        meta = piece.get("metadata") or {}
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            found.setdefault((meta.get("namespace", ""), service), []).append(piece)
    return found
