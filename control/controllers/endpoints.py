"""Keep each Service's Endpoints: Kubernetes' endpoint controller.

For a Service with a selector, the Endpoints object of the same name lists the
IPs of the pods the selector matches: ready pods under ``addresses``, the rest
under ``notReadyAddresses``, grouped into subsets by the set of ports they serve
(a named targetPort may resolve to different numbers on different pods). A
Service without a selector has manually managed Endpoints, which are left
alone; when a Service is deleted, its Endpoints go too. Nothing is written when
the computed Endpoints equal the stored ones.

``compute_subsets`` is pure, so the judgement can be tested without a cluster.
"""

import logging
import threading

from control.client import Forbidden, NotFound, object_key
from control.client.events import EventRecorder, NullRecorder
from control.controllers import pods as podutil
from control.controllers.controller import Controller, by_namespace, split_key
from control.objects import conditions, kinds
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)


#: endpointscontroller.LabelManagedBy and its value, ControllerName.
LABEL_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
#: Set on the Endpoints of a Service with clusterIP None.
LABEL_HEADLESS = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
TOLERATE_UNREADY_ANNOTATION = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
#: Kubernetes truncates an Endpoints object to this many addresses.
MAX_CAPACITY = 1000


class PortNotFound(Exception):
    """A Service port's named targetPort is not a containerPort of the pod."""


def find_port(pod, service_port):
    """The container port number ``service_port`` targets on ``pod`` (FindPort)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return port["containerPort"]
    raise PortNotFound(f"no container port named {target!r} ({protocol}) in pod "
                       f"{object_key(pod)}")


def tolerates_unready(service):
    """publishNotReadyAddresses, or the older tolerate-unready annotation."""
    annotations = service["metadata"].get("annotations") or {}
    return bool((service.get("spec") or {}).get("publishNotReadyAddresses")) or \
        str(annotations.get(TOLERATE_UNREADY_ANNOTATION, "")).lower() == "true"


def should_be_listed(pod, include_terminating):
    """Kubernetes' ShouldPodBeInEndpoints: has an IP, not finished, not going away."""
    status = pod.get("status") or {}
    if status.get("phase") in podutil.TERMINAL_PHASES:
        return False
    if not status.get("podIP"):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def _address(pod, service):
    meta, spec = pod["metadata"], pod.get("spec") or {}
    address = {"ip": pod["status"]["podIP"]}
    # A pod with hostname and subdomain == the Service's name gets a DNS name.
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        address["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta.get("namespace"),
                            "name": meta["name"], "uid": meta.get("uid")}
    return address


def _endpoint_port(service_port, number):
    port = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _port_key(port):
    return (port.get("name", ""), port["port"], port["protocol"], port.get("appProtocol", ""))


def compute_subsets(service, pods):
    """The Endpoints subsets of ``service`` given the pods its selector matched.

    Returns (subsets, skipped) where ``skipped`` lists (pod key, reason) for
    ports that could not be resolved, for logs and events. Each subset holds the
    addresses sharing one exact set of ports; addresses are sorted by IP.
    """
    spec = service.get("spec") or {}
    tolerate = tolerates_unready(service)
    headless = spec.get("clusterIP") == "None"
    service_ports = spec.get("ports") or []
    by_ip = {}          # ip -> (address, ready, set of port keys)
    ports_by_key = {}
    skipped = []
    for pod in pods:
        if not should_be_listed(pod, tolerate):
            continue
        ready = tolerate or podutil.is_ready(pod)
        keys = set()
        for service_port in service_ports:
            try:
                port = _endpoint_port(service_port, find_port(pod, service_port))
            except PortNotFound as exc:
                skipped.append((object_key(pod), str(exc)))
                continue
            key = _port_key(port)
            ports_by_key[key] = port
            keys.add(key)
        if not keys and not (headless and not service_ports):
            continue        # nothing to reach on this pod
        by_ip.setdefault(pod["status"]["podIP"], (_address(pod, service), ready, frozenset(keys)))
    groups = {}
    for ip in sorted(by_ip):
        address, ready, keys = by_ip[ip]
        group = groups.setdefault(keys, ([], []))
        group[0 if ready else 1].append(address)
    subsets = []
    for keys in sorted(groups, key=lambda ks: sorted(ks)):
        ready, not_ready = groups[keys]
        subset = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if keys:
            subset["ports"] = [ports_by_key[k] for k in sorted(keys)]
        subsets.append(subset)
    return subsets, skipped


def truncate(subsets, limit=MAX_CAPACITY):
    """Keep at most ``limit`` addresses, ready ones first; return (subsets, truncated?)."""
    total = sum(len(s.get("addresses", ())) + len(s.get("notReadyAddresses", ()))
                for s in subsets)
    if total <= limit:
        return subsets, False
    room, kept = limit, [dict(s) for s in subsets]
    for field in ("addresses", "notReadyAddresses"):
        for subset in kept:
            if field in subset:
                subset[field] = subset[field][:room]
                room -= len(subset[field])
                if not subset[field]:
                    del subset[field]
    return [s for s in kept if s.get("addresses") or s.get("notReadyAddresses")], True


def pod_trigger_time(pod):
    """A pod's last change that matters to Endpoints: (Ready status, its transition
    time), or None without a Ready condition. The status is kept because times have
    whole seconds: a flip back and forth within one must still count as a change."""
    cond = conditions.find(pod, "Ready")
    if not cond or not cond.get("lastTransitionTime"):
        return None
    return cond.get("status"), cond["lastTransitionTime"]


class TriggerTimeTracker:
    """Kubernetes' TriggerTimeTracker: when did the change a sync reflects happen?

    It remembers, per Service, the trigger times it last saw (the Service's
    creation, each pod's Ready transition) and answers with the earliest one that
    is new since the previous sync, or None when nothing new happened (then the
    annotation is dropped, though that alone never causes a write).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._state = {}        # service key -> (service time, {pod name: time})

    def compute(self, key, service, pods):
        """Return (trigger time or None, the state to ``remember`` once it is written)."""
        service_time = service["metadata"].get("creationTimestamp")
        pod_times = {p["metadata"]["name"]: pod_trigger_time(p) for p in pods}
        with self._lock:
            seen_service, seen_pods = self._state.get(key, (None, {}))
        changed = [t[1] for name, t in pod_times.items() if t and seen_pods.get(name) != t]
        if service_time and service_time != seen_service:
            changed.append(service_time)
        return (min(changed) if changed else None), (service_time, pod_times)

    def remember(self, key, state):
        """Note what a sync reflected, once its write (if any) succeeded: a failed
        write is retried with the same trigger time."""
        with self._lock:
            self._state[key] = state

    def forget(self, key):
        with self._lock:
            self._state.pop(key, None)


def desired_endpoints(service, pods, current=None, when=None):
    """The Endpoints ``service`` should have (built on ``current`` if it exists), and
    the (pod key, reason) of ports that could not be resolved. ``when`` is the
    last-change-trigger-time to note, if any."""
    subsets, skipped = compute_subsets(service, pods)
    subsets, truncated = truncate(subsets)
    smeta = service["metadata"]
    labels = dict(smeta.get("labels") or {})
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[LABEL_HEADLESS] = ""
    cmeta = (current or {}).get("metadata") or {}
    annotations = dict(cmeta.get("annotations") or {})
    annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    if when:
        annotations[TRIGGER_TIME_ANNOTATION] = when
    else:
        annotations.pop(TRIGGER_TIME_ANNOTATION, None)
    meta = {k: v for k, v in cmeta.items() if k not in ("labels", "annotations")}
    meta.update(name=smeta["name"], namespace=smeta["namespace"], labels=labels)
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
            "subsets": subsets}, skipped


def needs_update(current, desired):
    """Whether ``current`` differs from ``desired`` in subsets, labels or capacity note.

    The trigger-time annotation alone never causes a write, as in Kubernetes.
    """
    if current is None:
        return True
    if _normal(current.get("subsets")) != _normal(desired.get("subsets")):
        return True
    if (current["metadata"].get("labels") or {}) != desired["metadata"]["labels"]:
        return True
    over = (desired["metadata"].get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION)
    return (current["metadata"].get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION) != over


def _normal(subsets):
    """Subsets with defaults filled in and empty lists dropped, for comparison."""
    out = []
    for subset in subsets or ():
        entry = {k: v for k, v in subset.items() if v}
        if "ports" in entry:
            entry["ports"] = [{"protocol": "TCP", **p} for p in entry["ports"]]
        out.append(entry)
    return out


def services_selecting(services, pod):
    """The cached Services in the pod's namespace whose selector matches the pod's labels."""
    labels = pod["metadata"].get("labels") or {}
    return [s for s in by_namespace(services, pod["metadata"].get("namespace"))
            if (selector := (s.get("spec") or {}).get("selector"))
            and all(labels.get(k) == v for k, v in selector.items())]


class EndpointsController(Controller):
    """Converge each Service's Endpoints from the Service and pod caches."""

    def __init__(self, rest, service_informer, pod_informer, endpoints_informer, queue=None,
                 recorder=None):
        super().__init__("endpoint", [service_informer, pod_informer, endpoints_informer], queue)
        self.rest = rest
        self.recorder = recorder or (EventRecorder(rest, CONTROLLER_NAME) if rest is not None
                                     else NullRecorder())
        self.services = service_informer.store
        self.pods = pod_informer.store
        self.endpoints = endpoints_informer.store
        self.trigger_times = TriggerTimeTracker()
        service_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                     self.enqueue)
        pod_informer.add_handler(self._pod_changed, self._pod_updated, self._pod_changed)
        endpoints_informer.add_handler(_ignore, _ignore, self.enqueue)

    def wait_for_sync(self, stop_event, poll=0.05):
        """After the caches fill, look once at every Endpoints (checkLeftoverEndpoints)."""
        if not super().wait_for_sync(stop_event, poll):
            return False
        for key in self.endpoints.keys():
            self.queue.add(key)
        return True

    # -- handlers: map pod changes to the Services that select the pod -----------------
    def _services_for(self, pod):
        return services_selecting(self.services, pod)

    def _pod_changed(self, pod):
        for service in self._services_for(pod):
            self.enqueue(service)

    def _pod_updated(self, old, new):
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        keys = {object_key(s) for s in self._services_for(new)}
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            keys |= {object_key(s) for s in self._services_for(old)}
        for key in keys:
            self.queue.add(key)

    # -- the reconcile --------------------------------------------------------------
    def sync(self, key):
        namespace, name = split_key(key)
        service = self.services.get(key)
        current = self.endpoints.get(key)
        if service is None:
            self.trigger_times.forget(key)
            if current is not None:
                # The Service is gone: so are its Endpoints (as Kubernetes does).
                try:
                    self.rest.delete(kinds.ENDPOINTS, namespace, name)
                except NotFound:
                    pass
            return
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            return          # Endpoints managed by hand (or by another controller)
        try:
            LabelSelector.from_object({"matchLabels": selector})
        except SelectorError as exc:
            log.warning("service %s has an invalid selector: %s", key, exc)
            return
        pods = [p for p in by_namespace(self.pods, namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v
                       for k, v in selector.items())]
        when, seen = self.trigger_times.compute(key, service, pods)
        listed = [p for p in pods if should_be_listed(p, tolerates_unready(service))]
        desired, skipped = desired_endpoints(service, listed, current, when)
        for pod_key, reason in skipped:
            log.info("service %s: skipping a port of pod %s: %s", key, pod_key, reason)
        if not needs_update(current, desired):
            self.trigger_times.remember(key, seen)
            return
        try:
            if current is None:
                self.rest.create(kinds.ENDPOINTS, namespace, desired)
            else:
                self.rest.update(kinds.ENDPOINTS, namespace, desired)
            self.trigger_times.remember(key, seen)
        except Exception as exc:
            if current is None and isinstance(exc, Forbidden) and \
                    "being terminated" in str(exc):
                return  # the namespace is going away, and these Endpoints with it
            # As Kubernetes, even for a Conflict (a stale cache): the retry fixes it.
            if current is None:
                self.recorder.event(desired, "Warning", "FailedToCreateEndpoint",
                                    f"Failed to create endpoint for service {key}: {exc}")
            else:
                self.recorder.event(desired, "Warning", "FailedToUpdateEndpoint",
                                    f"Failed to update endpoint {key}: {exc}")
            raise


def _ignore(*args):
    """An informer event this controller has no use for."""
