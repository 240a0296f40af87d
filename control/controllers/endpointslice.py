"""Keep each Service's EndpointSlices: Kubernetes' EndpointSlice controller.

For a Service with a selector, the slices labelled ``kubernetes.io/service-name``
and managed by ``endpointslice-controller.k8s.io`` list the pods the selector
matches, at most ``--max-endpoints-per-slice`` endpoints each; what to write is
worked out by endpointslicing.py. A Service without a selector (or of type
ExternalName) gets no slices from here: slices this controller wrote for it are
deleted, slices written by anyone else are left alone. A deleted Service's slices
are deleted (the garbage collector would also take them by their ownerReference).

Informer caches lag the controller's own writes: ``SliceTracker`` remembers the
generation of every slice it wrote or deleted, so that a sync on a cache that
has not caught up is retried instead of writing duplicates, and a change to a
managed slice by someone else is noticed and undone.
"""

import logging
import threading

from control.client import Conflict, NotFound, object_key
from control.client.events import EventRecorder, NullRecorder
from control.controllers import endpointslicing as slicing
from control.controllers.controller import Controller, by_namespace, namespace_terminating
from control.controllers.endpoints import (
    TRIGGER_TIME_ANNOTATION,
    TriggerTimeTracker,
    services_selecting,
)
from control.objects import kinds

log = logging.getLogger(__name__)

_DELETED = -1


class RetryLater(Conflict):
    """A sync that cannot finish yet and must run again (logged without a traceback)."""

    def __init__(self, message):
        super().__init__(409, "Conflict", message)


def service_key_of(endpoint_slice):
    """``namespace/service`` of a slice, from its service-name label (None without one)."""
    name = (endpoint_slice["metadata"].get("labels") or {}).get(slicing.SERVICE_NAME_LABEL)
    if not name:
        return None
    return f"{endpoint_slice['metadata'].get('namespace')}/{name}"


def is_managed(endpoint_slice):
    labels = endpoint_slice["metadata"].get("labels") or {}
    return labels.get(slicing.MANAGED_BY_LABEL) == slicing.CONTROLLER_NAME


class SliceTracker:
    """The generation of every slice this controller wrote, per Service (its tracker)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_service = {}       # service key -> {slice uid: generation or _DELETED}

    def written(self, endpoint_slice):
        meta = endpoint_slice["metadata"]
        with self._lock:
            self._by_service.setdefault(service_key_of(endpoint_slice), {})[meta["uid"]] = \
                meta.get("generation", 1)

    def deleting(self, endpoint_slice):
        with self._lock:
            self._by_service.setdefault(service_key_of(endpoint_slice), {})[
                endpoint_slice["metadata"]["uid"]] = _DELETED

    def stale(self, key, slices):
        """Whether ``slices`` (the cache's) miss a write or deletion this controller made."""
        cached = {s["metadata"].get("uid"): s["metadata"].get("generation", 1) for s in slices}
        with self._lock:
            expected = dict(self._by_service.get(key, {}))
        for uid, generation in expected.items():
            if generation == _DELETED:
                if uid in cached:
                    return True
            elif uid not in cached or cached[uid] < generation:
                return True
        return False

    def is_news(self, endpoint_slice):
        """Whether a cached change to a slice is not one of this controller's own writes."""
        meta = endpoint_slice["metadata"]
        with self._lock:
            known = self._by_service.get(service_key_of(endpoint_slice), {}).get(meta.get("uid"))
        return known is None or (known != _DELETED and meta.get("generation", 1) > known)

    def gone(self, endpoint_slice):
        """A slice left the cache; return whether that was news (not a deletion made here)."""
        key, uid = service_key_of(endpoint_slice), endpoint_slice["metadata"].get("uid")
        with self._lock:
            known = self._by_service.get(key, {}).pop(uid, None)
        return known != _DELETED

    def forget(self, key):
        with self._lock:
            self._by_service.pop(key, None)


class EndpointSliceController(Controller):
    """Converge each Service's EndpointSlices from the Service, pod, node and slice caches."""

    def __init__(self, rest, service_informer, pod_informer, slice_informer, node_informer,
                 max_endpoints_per_slice=slicing.MAX_ENDPOINTS_PER_SLICE, queue=None,
                 recorder=None):
        super().__init__("endpointslice", [service_informer, pod_informer, slice_informer,
                                           node_informer], queue)
        if not 1 <= max_endpoints_per_slice <= slicing.MAX_ENDPOINTS_LIMIT:
            raise ValueError(f"--max-endpoints-per-slice must be between 1 and "
                             f"{slicing.MAX_ENDPOINTS_LIMIT}, not {max_endpoints_per_slice}")
        self.rest = rest
        self.recorder = recorder or (EventRecorder(rest, "endpoint-slice-controller")
                                     if rest is not None else NullRecorder())
        self.max_per_slice = max_endpoints_per_slice
        self.services, self.pods = service_informer.store, pod_informer.store
        self.slices, self.nodes = slice_informer.store, node_informer.store
        self.tracker = SliceTracker()
        self.trigger_times = TriggerTimeTracker()
        service_informer.add_handler(self.enqueue, lambda old, new: self.enqueue(new),
                                     self.enqueue)
        pod_informer.add_handler(self._pod_changed, self._pod_updated, self._pod_changed)
        slice_informer.add_handler(self._slice_changed, lambda old, new: self._slice_changed(new),
                                   self._slice_deleted)
        node_informer.add_handler(None, self._node_updated, None)

    # -- handlers ---------------------------------------------------------------------
    def _pod_changed(self, pod):
        for service in services_selecting(self.services, pod):
            self.enqueue(service)

    def _pod_updated(self, old, new):
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        keys = {object_key(s) for s in services_selecting(self.services, new)}
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            keys |= {object_key(s) for s in services_selecting(self.services, old)}
        for key in keys:
            self.queue.add(key)

    def _slice_changed(self, endpoint_slice):
        key = service_key_of(endpoint_slice)
        if key and is_managed(endpoint_slice) and self.tracker.is_news(endpoint_slice):
            self.queue.add(key)

    def _slice_deleted(self, endpoint_slice):
        key = service_key_of(endpoint_slice)
        if key and is_managed(endpoint_slice) and self.tracker.gone(endpoint_slice):
            self.queue.add(key)

    def _node_updated(self, old, new):
        """A node's zone moved: every Service may have endpoints there (rare, so all)."""
        if _zone(old) != _zone(new):
            for key in self.services.keys():
                self.queue.add(key)

    # -- the reconcile ----------------------------------------------------------------
    def _zone_of(self, node_name):
        node = self.nodes.get(node_name)
        return None if node is None else _zone(node)

    def _managed_slices(self, key):
        namespace, _, name = key.rpartition("/")
        return [s for s in by_namespace(self.slices, namespace) if is_managed(s)
                and (s["metadata"].get("labels") or {}).get(slicing.SERVICE_NAME_LABEL) == name]

    def sync(self, key):
        namespace, _, _ = key.rpartition("/")
        service = self.services.get(key)
        existing = self._managed_slices(key)
        if service is None or not _wants_slices(service):
            if service is None:
                self.trigger_times.forget(key)
                if not existing:
                    self.tracker.forget(key)
            self._delete(namespace, existing)
            return
        if self.tracker.stale(key, existing):
            raise RetryLater(f"the EndpointSlice cache of service {key} is out of date")
        selector = service["spec"]["selector"]
        pods = [p for p in by_namespace(self.pods, namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v
                       for k, v in selector.items())]
        when, seen = self.trigger_times.compute(key, service, pods)
        plan = slicing.plan(service, pods, self._zone_of, existing, self.max_per_slice)
        try:
            self._write(namespace, plan, when)
        except Exception as exc:
            if not isinstance(exc, Conflict):
                self.recorder.event(service, "Warning", "FailedToUpdateEndpointSlices",
                                    f"Error updating Endpoint Slices for Service {key}: {exc}")
            raise
        self.trigger_times.remember(key, seen)
        if plan.missing_nodes:
            # Written without them; look again once their nodes are known.
            raise RetryLater(f"service {key}: skipped pods {', '.join(plan.missing_nodes)}: "
                             "their node is not known yet")

    def _write(self, namespace, plan, when):
        for endpoint_slice in plan.create:
            try:
                created = self.rest.create(kinds.ENDPOINTSLICES, namespace,
                                           _annotated(endpoint_slice, when))
            except Exception as exc:
                if namespace_terminating(exc):
                    return      # the namespace is going, and these slices with it
                raise
            self.tracker.written(created)
        for endpoint_slice in plan.update:
            self.tracker.written(self.rest.update(kinds.ENDPOINTSLICES, namespace,
                                                  _annotated(endpoint_slice, when)))
        self._delete(namespace, plan.delete)

    def _delete(self, namespace, slices):
        for endpoint_slice in slices:
            self.tracker.deleting(endpoint_slice)
            try:
                self.rest.delete(kinds.ENDPOINTSLICES, namespace,
                                 endpoint_slice["metadata"]["name"])
            except NotFound:
                pass
            except Exception:
                self.tracker.written(endpoint_slice)    # still there: expect it as it is
                raise


def _wants_slices(service):
    spec = service.get("spec") or {}
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


def _zone(node):
    return (node["metadata"].get("labels") or {}).get(slicing.ZONE_LABEL) or ""


def _annotated(endpoint_slice, when):
    """The slice with the last-change-trigger-time annotation set (or dropped: no news)."""
    meta = dict(endpoint_slice["metadata"])
    annotations = dict(meta.get("annotations") or {})
    if when:
        annotations[TRIGGER_TIME_ANNOTATION] = when
    else:
        annotations.pop(TRIGGER_TIME_ANNOTATION, None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return {**endpoint_slice, "metadata": meta}
