"""Keep the `default/kubernetes` Service pointing at this API server, as kube-apiserver does.

Pods find the API server through this Service: its ClusterIP is the first address
of the service range, port 443 ("https"), and it has no selector; its Endpoints and
its EndpointSlice (both named "kubernetes") list the address the server is reached
at from the cluster's network (--advertise-address, --advertise-port). Every API
server writes them at start and on every system-namespaces round, so a deleted or
edited object comes back. Only when an advertise address is configured: a server
nobody in the cluster can reach publishes nothing.
"""

import ipaddress
import logging

from control import errors
from control.objects import kinds

log = logging.getLogger("steer.apiserver")

NAME, NAMESPACE = "kubernetes", "default"
PORT_NAME = "https"
SERVICE_PORT = 443
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def first_address(cidr):
    """The ClusterIP of `kubernetes`: the first usable address of the service range."""
    network = ipaddress.ip_network(cidr, strict=False)
    return str(network.network_address + 1)


def service_body(cluster_ip):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "sessionAffinity": "None",
                     "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP",
                                "targetPort": None}]}}


def endpoints_body(address, port):
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "subsets": [{"addresses": [{"ip": address}],
                         "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}]}


def slice_body(address, port):
    family = "IPv6" if ipaddress.ip_address(address).version == 6 else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": family,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}]}


def ensure(service, cidr, address, port):
    """Create or repair the Service, its Endpoints and its EndpointSlice; log failures."""
    if not address:
        return
    body = service_body(first_address(cidr))
    body["spec"]["ports"][0]["targetPort"] = port
    wanted = ((kinds.SERVICES, body, ("spec",)),
              (kinds.ENDPOINTS, endpoints_body(address, port), ("subsets",)),
              (kinds.ENDPOINTSLICES, slice_body(address, port), ("endpoints", "ports")))
    for resource, obj, compared in wanted:
        try:
            _ensure_one(service, resource, obj, compared)
        except errors.ApiError as exc:
            log.warning("event=master_service_failed resource=%s error=%r",
                        resource.plural, exc.message)
        except Exception as exc:    # noqa: BLE001 - the store away: the next round retries
            log.warning("event=master_service_failed resource=%s error=%r",
                        resource.plural, exc)


def _ensure_one(service, resource, obj, compared):
    try:
        current = service.get(resource, NAMESPACE, NAME)
    except errors.NotFound:
        try:
            service.create(resource, NAMESPACE, obj)
        except errors.AlreadyExists:
            pass            # another API server (or worker) was first
        return
    if resource is kinds.SERVICES:
        # The allocator owns the ClusterIP once it is set; compare only the ports.
        if _ports(current) == _ports(obj):
            return
        spec = dict(current.get("spec") or {}, ports=obj["spec"]["ports"])
        update = dict(current, spec=spec)
    else:
        if all(current.get(field) == obj.get(field) for field in compared):
            return
        update = dict(current, **{field: obj[field] for field in compared})
    try:
        service.update(resource, NAMESPACE, NAME, update)
    except errors.Conflict:
        pass                # changed meanwhile: the next round looks again


def _ports(obj):
    return [(p.get("name"), p.get("port"), p.get("protocol"), p.get("targetPort"))
            for p in (obj.get("spec") or {}).get("ports") or ()]
