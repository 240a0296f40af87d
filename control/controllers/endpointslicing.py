"""Work out a Service's EndpointSlices: Kubernetes' EndpointSlice reconciler, as pure functions.

``plan(service, pods, zone_of, existing, max_per_slice)`` compares the endpoints
the Service should have (one per listed pod: its address of the slice's family,
ready/serving/terminating conditions, nodeName, zone, targetRef) with the slices
the controller already wrote, and returns the slices to create, update and delete.

As Kubernetes' reconciler does, endpoints are grouped by address type and by the
exact set of ports they serve (a named targetPort may resolve to different numbers
on different pods), and churn is kept low: an endpoint stays in the slice it is
in, changed slices are filled up first (the fullest first), leftovers go into the
one unchanged slice they fill closest to full, and only then into new slices; a
create paired with a delete becomes an update of the slice that would go. A
Service with no endpoints keeps one empty placeholder slice.
"""

import copy
from typing import NamedTuple

from control.controllers import endpoints as ep
from control.controllers import pods as podutil
from control.controllers.ownership import controller_ref, get_controller_of
from control.objects import endpointslices

API_VERSION = "discovery.k8s.io/v1"
#: discovery.LabelManagedBy and the controller's value for it.
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
#: Labels the controller sets itself; a Service's own values for them are ignored.
RESERVED_LABELS = (MANAGED_BY_LABEL, SERVICE_NAME_LABEL, HEADLESS_LABEL)
#: kube-controller-manager's --max-endpoints-per-slice default; the API allows 1000.
MAX_ENDPOINTS_PER_SLICE = 100
MAX_ENDPOINTS_LIMIT = 1000


class Plan(NamedTuple):
    """The writes that converge one Service's slices."""

    create: list
    update: list
    delete: list
    #: Pods left out because their node is not known (yet): the sync is retried.
    missing_nodes: list


# -- what a Service wants ---------------------------------------------------------------

def address_types(service):
    """The address types of the Service's slices: its ipFamilies, else its clusterIP's."""
    spec = service.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        return ["IPv6" if family == "IPv6" else "IPv4" for family in families]
    ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
    return ["IPv6" if ips and ":" in ips[0] else "IPv4"]


def is_headless(service):
    return (service.get("spec") or {}).get("clusterIP") in (None, "", "None")


def slice_labels(service):
    """A slice's labels: the Service's own, then the ones the controller reserves."""
    labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items()
              if k not in RESERVED_LABELS}
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = service["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def owned_by(endpoint_slice, service):
    ref = get_controller_of(endpoint_slice)
    return ref is not None and ref.get("uid") == service["metadata"].get("uid") and \
        ref.get("kind") == "Service"


def pod_addresses(pod, address_type):
    """The pod's IP of the slice's family (podIPs, else podIP), as a one-item list or []."""
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or () if p.get("ip")]
    ips = ips or ([status["podIP"]] if status.get("podIP") else [])
    want_v6 = address_type == "IPv6"
    # An address the API refuses (loopback, link-local: a host-network pod of a
    # node on 127.0.1.N) would fail the whole slice's write: leave it out.
    return [ip for ip in ips if (":" in ip) == want_v6
            and not endpointslices.endpoint_ip_errors(ip)][:1]


def endpoint_ports(service, pod):
    """The slice ports of ``pod``: each Service port its pod resolves (names may differ)."""
    ports = []
    for service_port in (service.get("spec") or {}).get("ports") or ():
        try:
            number = ep.find_port(pod, service_port)
        except ep.PortNotFound:
            continue
        port = {"name": service_port.get("name") or "", "port": number,
                "protocol": service_port.get("protocol") or "TCP"}
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        ports.append(port)
    return ports


def port_key(ports):
    """Slices hold endpoints serving one exact set of ports: the set, order aside."""
    return tuple(sorted((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports or ()))


def pod_endpoint(pod, service, zone, address_type):
    """Kubernetes' podToEndpoint: a terminating pod is never ready unless published anyway."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    serving = podutil.is_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    endpoint = {"addresses": pod_addresses(pod, address_type),
                "conditions": {"ready": publish or (serving and not terminating),
                               "serving": serving, "terminating": terminating}}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        endpoint["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        endpoint["nodeName"] = spec["nodeName"]
    if zone:
        endpoint["zone"] = zone
    endpoint["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"),
                             "name": meta["name"], "uid": meta.get("uid")}
    return endpoint


def endpoint_key(endpoint):
    """Who an endpoint is (Kubernetes' endpoint hash): addresses, hostname and its pod."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(sorted(endpoint.get("addresses") or ())), endpoint.get("hostname") or "",
            ref.get("namespace") or "", ref.get("name") or "")


def desired_endpoints(service, pods, zone_of, address_type):
    """{port key: (ports, {endpoint key: endpoint})} and the pods whose node is unknown.

    ``zone_of(node name)`` is the node's zone label ("" without one), or None when
    the node is not known: such a pod is left out, unless the Service publishes
    not-ready addresses anyway (as Kubernetes does).
    """
    publish = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    wanted, missing = {}, []
    for pod in pods:
        if not ep.should_be_listed(pod, include_terminating=True):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        zone = zone_of(node) if node else ""
        if zone is None and not publish:
            missing.append(pod["metadata"]["name"])
            continue
        endpoint = pod_endpoint(pod, service, zone, address_type)
        if not endpoint["addresses"]:
            continue
        ports = endpoint_ports(service, pod)
        _, group = wanted.setdefault(port_key(ports), (ports, {}))
        group[endpoint_key(endpoint)] = endpoint
    return wanted, missing


# -- slices ---------------------------------------------------------------------------

def new_slice(service, ports, address_type):
    """An empty slice owned by the Service, named by the server from "<service>-"."""
    smeta = service["metadata"]
    return {"apiVersion": API_VERSION, "kind": "EndpointSlice",
            "metadata": {"generateName": smeta["name"] + "-", "namespace": smeta.get("namespace"),
                         "labels": slice_labels(service),
                         "ownerReferences": [controller_ref(service, "v1", "Service")]},
            "addressType": address_type, "endpoints": [], "ports": copy.deepcopy(ports)}


def _is_placeholder_of(existing, placeholder):
    """placeholderSliceCompare: the same empty slice, by namespace, labels and content."""
    return (existing["metadata"].get("namespace") == placeholder["metadata"]["namespace"]
            and (existing["metadata"].get("labels") or {}) == placeholder["metadata"]["labels"]
            and existing.get("addressType") == placeholder["addressType"]
            and not existing.get("endpoints") and not existing.get("ports"))


def _with(existing, **changes):
    """A copy of a cached slice with some fields replaced (a cached object is never mutated)."""
    changed = copy.deepcopy(existing)
    for field, value in changes.items():
        if field == "labels":
            changed["metadata"]["labels"] = value
        else:
            changed[field] = value
    return changed


def _fill(target, wanted, limit):
    """Move endpoints from ``wanted`` (in key order) into ``target`` until it is full."""
    for key in sorted(wanted)[:max(0, limit - len(target["endpoints"]))]:
        target["endpoints"].append(wanted.pop(key))


def _slice_to_fill(candidates, count, limit):
    """The unchanged slice that ``count`` more endpoints bring closest to full, or None."""
    best, best_room = None, limit
    for candidate in candidates:
        room = limit - count - len(candidate.get("endpoints") or ())
        if 0 <= room < best_room:
            best, best_room = candidate, room
    return best


def reconcile_ports(service, existing, wanted, ports, address_type, limit):
    """Kubernetes' reconcileByPortMapping for one set of ports: (create, update, delete)."""
    labels = slice_labels(service)
    wanted = dict(wanted)
    updated, unchanged, deleted = {}, [], []
    # 1. Keep the endpoints still wanted where they are; note the slices that change.
    for current in existing:
        kept, changed = [], False
        for endpoint in current.get("endpoints") or ():
            desired = wanted.pop(endpoint_key(endpoint), None)
            if desired is not None:
                kept.append(desired)
                changed |= desired != endpoint
        name = current["metadata"]["name"]
        relabel = (current["metadata"].get("labels") or {}) != labels
        if changed or len(kept) != len(current.get("endpoints") or ()):
            if kept:
                updated[name] = _with(current, endpoints=kept, labels=labels)
            else:
                deleted.append(current)
        elif relabel:
            updated[name] = _with(current, labels=labels)
        else:
            unchanged.append(current)
    # 2. Fill the slices that change anyway, the fullest first.
    for target in sorted(updated.values(), key=lambda s: -len(s["endpoints"])):
        _fill(target, wanted, limit)
    # 3. The rest: into the unchanged slice they fill best, else into new slices.
    created = []
    while wanted:
        target = None
        if len(wanted) < limit and unchanged:
            target = _slice_to_fill(unchanged, len(wanted), limit)
        if target is None:
            target = new_slice(service, ports, address_type)
            created.append(target)
        else:
            unchanged.remove(target)
            target = updated[target["metadata"]["name"]] = copy.deepcopy(target)
        _fill(target, wanted, limit)
    return created, list(updated.values()), deleted


def _pair_creates_with_deletes(service, create, update, delete):
    """Recycle a slice that would be deleted as one that would be created (same type)."""
    delete = list(delete)
    for fresh in list(reversed(create)):
        match = next((old for old in delete if old.get("addressType") == fresh["addressType"]
                      and owned_by(old, service)), None)
        if match is None:
            continue
        delete.remove(match)
        create.remove(fresh)
        meta = fresh["metadata"]
        meta.pop("generateName", None)
        meta["name"] = match["metadata"]["name"]
        meta["resourceVersion"] = match["metadata"].get("resourceVersion")
        update.append(fresh)
    return create, update, delete


def _plan_address_type(service, pods, zone_of, existing, address_type, limit):
    create, update, delete = [], [], []
    groups = {}
    for current in existing:
        if owned_by(current, service):
            groups.setdefault(port_key(current.get("ports")), []).append(current)
        else:
            delete.append(current)      # left by an older Service of the same name
    wanted, missing = desired_endpoints(service, pods, zone_of, address_type)
    for key in sorted(wanted):
        ports, endpoints = wanted[key]
        c, u, d = reconcile_ports(service, groups.get(key, []), endpoints, ports, address_type,
                                  limit)
        create, update, delete = create + c, update + u, delete + d
    for key in sorted(set(groups) - set(wanted)):
        delete += groups[key]
    if len(existing) == len(delete) and not create:
        placeholder = new_slice(service, [], address_type)
        if len(delete) == 1 and _is_placeholder_of(delete[0], placeholder):
            delete = []
        else:
            create.append(placeholder)
    create, update, delete = _pair_creates_with_deletes(service, create, update, delete)
    if service["metadata"].get("deletionTimestamp"):
        create = []     # the garbage collector is about to take them: create nothing new
    return create, update, delete, missing


def plan(service, pods, zone_of, existing, max_per_slice=MAX_ENDPOINTS_PER_SLICE):
    """The writes that give ``service`` (with a selector) the slices its ``pods`` call for.

    ``existing`` are the slices this controller manages for a Service of this name;
    ``zone_of(node)`` gives a node's zone label, "" without one, None if unknown.
    """
    types = address_types(service)
    create, update, missing = [], [], []
    delete = [s for s in existing if s.get("addressType") not in types]
    for address_type in types:
        mine = [s for s in existing if s.get("addressType") == address_type]
        c, u, d, m = _plan_address_type(service, pods, zone_of, mine, address_type,
                                        max_per_slice)
        create, update, delete, missing = create + c, update + u, delete + d, missing + m
    return Plan(create, update, delete, sorted(set(missing)))
