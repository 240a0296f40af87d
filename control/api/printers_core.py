"""Table cells for core kinds with involved status logic: pods, services, nodes, events.

Follows printPod, printService, printEndpoints, printNode and printEvent of
k8s.io/kubernetes/pkg/printers/internalversion/printers.go (1.32), wide form.
"""

from control.api.printers import (
    age,
    created_age,
    format_labels,
    metadata_of,
    spec_of,
    status_of,
)
from control.objects import conditions
from control.objects.meta import parse_time

NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
NODE_ROLE_LABEL = "kubernetes.io/role"
LOAD_BALANCER_WIDTH = 16


# --------------------------------------------------------------------- pods

def _terminated_reason(terminated, prefix=""):
    if terminated.get("reason"):
        return prefix + terminated["reason"]
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


def _later(current, terminated):
    """Keep the latest ``finishedAt`` of a last termination state."""
    finished = parse_time((terminated or {}).get("finishedAt"))
    if finished is not None and (current is None or finished > current):
        return finished
    return current


def _init_progress(pod, restartable):
    """Walk init container statuses: (reason or None, restarts, last restart, ready)."""
    restarts, last, ready = 0, None, 0
    statuses = status_of(pod).get("initContainerStatuses") or []
    total = len(spec_of(pod).get("initContainers") or [])
    for index, status in enumerate(statuses):
        restarts += int(status.get("restartCount") or 0)
        last = _later(last, (status.get("lastState") or {}).get("terminated"))
        state = status.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and terminated.get("exitCode", 0) == 0:
            continue
        if status.get("name") in restartable and status.get("started"):
            ready += 1 if status.get("ready") else 0
            continue
        if terminated:
            return _terminated_reason(terminated, "Init:"), restarts, last, ready
        if waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return "Init:" + waiting["reason"], restarts, last, ready
        return f"Init:{index}/{total}", restarts, last, ready
    return None, restarts, last, ready


def _restartable_restarts(pod, restartable):
    restarts, last = 0, None
    for status in status_of(pod).get("initContainerStatuses") or []:
        if status.get("name") in restartable:
            restarts += int(status.get("restartCount") or 0)
            last = _later(last, (status.get("lastState") or {}).get("terminated"))
    return restarts, last


def _containers_reason(pod, reason):
    """Apply the regular containers' states: (reason, restarts, last restart, ready)."""
    restarts, last, ready, running = 0, None, 0, False
    for status in reversed(status_of(pod).get("containerStatuses") or []):
        restarts += int(status.get("restartCount") or 0)
        last = _later(last, (status.get("lastState") or {}).get("terminated"))
        state = status.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated")
        if waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated is not None:
            reason = _terminated_reason(terminated)
        elif status.get("ready") and state.get("running") is not None:
            running = True
            ready += 1
    if reason == "Completed" and running:
        reason = "Running" if conditions.is_ready(pod) else "NotReady"
    return reason, restarts, last, ready


def pod_summary(pod):
    """Return (ready "n/m", status reason, restarts, last restart time) as kubectl shows."""
    spec, status = spec_of(pod), status_of(pod)
    restartable = {c.get("name") for c in spec.get("initContainers") or []
                   if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + len(restartable)
    phase = status.get("phase", "")
    reason = status.get("reason") or phase
    if (conditions.find(pod, "PodScheduled") or {}).get("reason") == "SchedulingGated":
        reason = "SchedulingGated"
    init_reason, restarts, last, ready = _init_progress(pod, restartable)
    if init_reason is not None:
        reason = init_reason
    if init_reason is None or conditions.is_true(pod, "Initialized"):
        restarts, last = _restartable_restarts(pod, restartable)
        reason, more, last_main, ready_main = _containers_reason(pod, reason)
        restarts, ready = restarts + more, ready + ready_main
        last = max((t for t in (last, last_main) if t is not None), default=None)
    if metadata_of(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return f"{ready}/{total}", reason, restarts, last


def _readiness_gates(pod):
    gates = spec_of(pod).get("readinessGates") or []
    if not gates:
        return "<none>"
    passed = sum(1 for g in gates if conditions.is_true(pod, g.get("conditionType")))
    return f"{passed}/{len(gates)}"


def print_pod(obj, now):
    ready, reason, restarts, last = pod_summary(obj)
    restarts_text = str(restarts)
    if restarts and last is not None:
        restarts_text = f"{restarts} ({age(last.isoformat(), now)} ago)"
    status = status_of(obj)
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else "") or "<none>"
    return [metadata_of(obj).get("name", ""), ready, reason, restarts_text, created_age(obj, now),
            pod_ip, spec_of(obj).get("nodeName") or "<none>",
            status.get("nominatedNodeName") or "<none>", _readiness_gates(obj)]


# ----------------------------------------------------------------- services

def _load_balancer_ips(service, wide):
    found = set()
    for ingress in (status_of(service).get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip") or ingress.get("hostname"):
            found.add(ingress.get("ip") or ingress.get("hostname"))
    text = ",".join(sorted(found))
    if not wide and len(text) > LOAD_BALANCER_WIDTH:
        text = text[:LOAD_BALANCER_WIDTH - 3] + "..."
    return text


def service_external_ip(service, wide=True):
    """Return the EXTERNAL-IP cell as getServiceExternalIP does."""
    spec = spec_of(service)
    kind, external = spec.get("type") or "ClusterIP", spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if kind == "LoadBalancer":
        balancer = _load_balancer_ips(service, wide)
        if external:
            return ",".join(([balancer] if balancer else []) + external)
        return balancer or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName", "")
    return "<unknown>"


def service_ports(ports):
    """Return the PORT(S) cell: "80/TCP", "80:30080/TCP", comma-joined, or "<none>"."""
    pieces = []
    for port in ports or []:
        protocol = port.get("protocol") or "TCP"
        node_port = port.get("nodePort") or 0
        pieces.append(f"{port.get('port')}:{node_port}/{protocol}" if node_port > 0
                      else f"{port.get('port')}/{protocol}")
    return ",".join(pieces) or "<none>"


def print_service(obj, now):
    spec = spec_of(obj)
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [metadata_of(obj).get("name", ""), spec.get("type") or "ClusterIP",
            cluster_ips[0] if cluster_ips else "<none>", service_external_ip(obj),
            service_ports(spec.get("ports")), created_age(obj, now),
            format_labels(spec.get("selector"))]


def format_endpoints(endpoints, limit=3):
    """Return the ENDPOINTS cell: up to three ip:port, then "+ N more..."."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown, count = [], 0
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        targets = ([(ip, None) for ip in addresses] if not ports else
                   [(ip, p.get("port")) for p in ports for ip in addresses])
        count += len(targets)
        for ip, port in targets:
            if len(shown) < limit:
                shown.append(ip if port is None else _join_host_port(ip, port))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


def _join_host_port(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def print_endpoints(obj, now):
    return [metadata_of(obj).get("name", ""), format_endpoints(obj), created_age(obj, now)]


# -------------------------------------------------------------------- nodes

def node_roles(labels):
    """Return the ROLES cell from node-role.kubernetes.io/* and kubernetes.io/role labels."""
    roles = set()
    for key, value in (labels or {}).items():
        if key.startswith(NODE_ROLE_PREFIX) and key[len(NODE_ROLE_PREFIX):]:
            roles.add(key[len(NODE_ROLE_PREFIX):])
        elif key == NODE_ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node, kind):
    for address in status_of(node).get("addresses") or []:
        if address.get("type") == kind:
            return address.get("address", "")
    return "<none>"


def print_node(obj, now):
    status = status_of(obj)
    ready = conditions.find(obj, "Ready")
    states = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True"
              else "NotReady"]
    if spec_of(obj).get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [metadata_of(obj).get("name", ""), ",".join(states), node_roles(metadata_of(obj).get("labels")),
            created_age(obj, now), info.get("kubeletVersion", ""),
            _node_address(obj, "InternalIP"), _node_address(obj, "ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


# ------------------------------------------------------------------- events

def _event_source(event):
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    instance = source.get("host") or event.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def print_event(obj, now):
    first = age(obj.get("firstTimestamp") or obj.get("eventTime"), now)
    last = age(obj["lastTimestamp"], now) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 1
    if obj.get("series"):
        last = age(obj["series"].get("lastObservedTime"), now)
        count = obj["series"].get("count") or 0
    involved = obj.get("involvedObject") or {}
    target = involved.get("kind", "").lower()
    if involved.get("name"):
        target = f"{target}/{involved['name']}"
    return [last, obj.get("type", ""), obj.get("reason", ""), target,
            involved.get("fieldPath", ""), _event_source(obj), (obj.get("message") or "").strip(),
            first, count, metadata_of(obj).get("name", "")]


def _first_three(items):
    """Up to three items joined by commas, then " + N more...", or "<unset>" when none."""
    items = list(items)
    text = ",".join(items[:3])
    if len(items) > 3:
        return f"{text} + {len(items) - 3} more..."
    return text or "<unset>"


def format_slice_ports(ports):
    """The PORTS cell of an EndpointSlice: numbers, a name when unset, else "*"."""
    return _first_three(str(p["port"]) if p.get("port") is not None
                        else p["name"] if p.get("name") is not None else "*"
                        for p in ports or [])


def format_slice_endpoints(endpoints):
    """The ENDPOINTS cell of an EndpointSlice: every endpoint's addresses, in order."""
    return _first_three(address for endpoint in endpoints or []
                        for address in (endpoint or {}).get("addresses") or [])


def print_endpointslice(obj, now):
    return [metadata_of(obj).get("name", ""), obj.get("addressType") or "",
            format_slice_ports(obj.get("ports")), format_slice_endpoints(obj.get("endpoints")),
            created_age(obj, now)]
