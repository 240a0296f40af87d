"""Record Events about objects, as client-go's EventRecorder does (what `kubectl describe` shows).

An event repeated for the same object with the same reason and message is not
created again: the recorder patches the existing Event's ``count`` and
``lastTimestamp`` (client-go's event correlation, without its spam filter).
Recording never raises: an Event is a report, and losing one must not fail the
work it reports on.
"""

import logging
import threading
import time

from control.client.errors import ApiException, NotFound
from control.objects import kinds, meta

log = logging.getLogger(__name__)

#: Repeats remembered per recorder; the oldest are forgotten first.
MAX_REMEMBERED = 4096


def now_rfc3339():
    """The current time as an Event's timestamps spell it (the recorder's default clock)."""
    return meta.timestamp(meta.utcnow())


def object_reference(obj):
    """The ``involvedObject`` naming ``obj``."""
    ometa = obj.get("metadata") or {}
    ref = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": ometa.get("name"),
           "uid": ometa.get("uid"), "resourceVersion": ometa.get("resourceVersion")}
    if ometa.get("namespace"):
        ref["namespace"] = ometa["namespace"]
    return ref


class EventRecorder:
    """Write Events as ``component`` (e.g. "deployment-controller") from ``instance``."""

    def __init__(self, rest, component, instance="", clock=now_rfc3339):
        self.rest, self.component, self.instance = rest, component, instance
        self.clock = clock
        self._lock = threading.Lock()
        self._seen = {}         # (uid, type, reason, message) -> (namespace, event name, count)

    def event(self, obj, event_type, reason, message):
        """Record that ``reason`` happened to ``obj``; ``event_type`` is Normal or Warning."""
        try:
            self._record(obj, event_type, reason, message)
        except ApiException as exc:
            log.warning("cannot record event %s on %s/%s: %s", reason,
                        obj.get("kind"), obj.get("metadata", {}).get("name"), exc)

    def _record(self, obj, event_type, reason, message):
        ometa, now = obj["metadata"], self.clock()
        # Cluster-scoped objects' events live in "default", as in Kubernetes.
        namespace = ometa.get("namespace") or "default"
        key = (ometa.get("uid"), event_type, reason, message)
        with self._lock:
            previous = self._seen.get(key)
        if previous is not None:
            _, name, count = previous
            try:
                self.rest.patch(kinds.EVENTS, namespace, name,
                                {"count": count + 1, "lastTimestamp": now})
                self._remember(key, (namespace, name, count + 1))
                return
            except NotFound:
                pass            # expired or deleted: start a new one
        name = f"{ometa['name']}.{time.time_ns():x}"
        self.rest.create(kinds.EVENTS, namespace, {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": object_reference(obj),
            "reason": reason, "message": message, "type": event_type,
            "source": {"component": self.component},
            "reportingComponent": self.component, "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1})
        self._remember(key, (namespace, name, 1))

    def _remember(self, key, value):
        with self._lock:
            self._seen.pop(key, None)
            self._seen[key] = value
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.pop(next(iter(self._seen)))


class NullRecorder:
    """A recorder that records nothing (unit tests that do not look at events)."""

    def event(self, obj, event_type, reason, message):
        pass
