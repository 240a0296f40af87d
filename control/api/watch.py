"""Stream watch events as newline-delimited JSON, as kube-apiserver does.

A watch starts after ``resourceVersion`` (or now), ends after ``timeoutSeconds``
(default: a random 30–60 minutes, like kube-apiserver's), and reports a compacted
start as one ERROR event carrying a 410 Status, after which the client relists.
Watches are served from the process's watch cache when their start is inside its
window (control/api/watchcache.py), otherwise from a store watch of their own.
"""

import json
import random
import time

from control import errors
from control.api.watchcache import Ended, WatchCaches
from control.registry import watch_event
from store.client import Compacted, StoreError

BOOKMARK_INTERVAL = 60.0
POLL = 1.0


class WatchSource:
    """Open a watch from the watch cache, or from the store when it starts too early."""

    def __init__(self, registry, use_cache=True):
        self.registry = registry
        self.caches = WatchCaches(registry) if use_cache else None

    def open(self, resource, namespace, since):
        if self.caches is not None:
            try:
                subscription = self.caches.subscribe(resource, namespace, since)
            except errors.Gone:
                subscription = None     # the store watch below reports the 410
            if subscription is not None:
                return subscription
        return self.registry.watch(resource, namespace, since)


def stream(source, resource, namespace, since, timeout, bookmarks, matches,
           clock=time.monotonic, transform=None):
    """Yield encoded watch events until the timeout or the client goes away.

    ``transform(event_type, obj)``, when given, replaces each ADDED, MODIFIED,
    DELETED and BOOKMARK object (a Table for ``kubectl get -w``); ERRORs pass as is.
    """
    emit = transform or (lambda kind, obj: obj)
    deadline = clock() + (timeout if timeout else random.uniform(1800, 3600))
    try:
        watch = source.open(resource, namespace, since)
    except errors.Gone as exc:
        yield _line("ERROR", exc.status())
        return
    # An empty first chunk makes the WSGI server send the status and headers now,
    # as kube-apiserver does, instead of at the first event (which may be far off).
    yield b""
    last_bookmark = clock()
    revision = since
    try:
        while clock() < deadline:
            try:
                event = watch.next_event(timeout=min(POLL, max(0.0, deadline - clock())))
            except Compacted as exc:
                gone = errors.Gone(f"too old resource version: {exc.message}")
                yield _line("ERROR", gone.status())
                return
            except Ended:
                return      # the client watches again from its last resourceVersion
            except StoreError as exc:
                yield _line("ERROR", errors.ServiceUnavailable(exc.message).status())
                return
            if event is not None:
                kind, obj = watch_event(event)
                revision = event["kv"]["mod_revision"]
                if matches(obj):
                    yield _line(kind, emit(kind, obj))
            elif bookmarks and clock() - last_bookmark >= BOOKMARK_INTERVAL:
                last_bookmark = clock()
                bookmark = {"kind": resource.kind, "apiVersion": resource.api_version,
                            "metadata": {"resourceVersion": str(revision or watch.revision)}}
                yield _line("BOOKMARK", emit("BOOKMARK", bookmark))
    finally:
        watch.cancel()


def _line(kind, obj):
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()
