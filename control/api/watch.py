"""Stream watch events as newline-delimited JSON, as kube-apiserver does.

A watch starts after ``resourceVersion`` (or now), ends after ``timeoutSeconds``
(default: a random 30–60 minutes, like kube-apiserver's), and reports a compacted
start as one ERROR event carrying a 410 Status, after which the client relists.
Watches are served from the process's watch cache when their start is inside its
window (control/api/watchcache.py), otherwise from a store watch of their own.
A ``resourceVersion`` the store has not reached yet is waited for a little, then
refused with kube-apiserver's 504 "Too large resource version" (the client
retries): it never becomes the start of the shared watch cache.
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
#: Seconds a watch from a future resourceVersion waits for the store to reach it.
TOO_NEW_WAIT = 3.0
TOO_NEW_POLL = 0.1


class WatchSource:
    """Open a watch from the watch cache, or from the store when it starts too early."""

    def __init__(self, registry, use_cache=True, clock=time.monotonic, sleep=time.sleep):
        self.registry = registry
        self.caches = WatchCaches(registry) if use_cache else None
        self.clock, self.sleep = clock, sleep

    def open(self, resource, namespace, since):
        if since:
            self._wait_until_reached(resource, since)
        if self.caches is not None:
            try:
                subscription = self.caches.subscribe(resource, namespace, since)
            except errors.Gone:
                subscription = None     # the store watch below reports the 410
            if subscription is not None:
                return subscription
        return self.registry.watch(resource, namespace, since)

    def _wait_until_reached(self, resource, since):
        """Return once the store's revision is at least ``since``; 504 after TOO_NEW_WAIT."""
        known = self.caches.latest(resource) if self.caches is not None else None
        if known is not None and since <= known:
            return
        deadline = self.clock() + TOO_NEW_WAIT
        while True:
            current = self.registry.list(resource, None, limit=1)[1]
            if since <= current:
                return
            if self.clock() >= deadline:
                raise errors.Timeout(f"Too large resource version: {since}, current: {current}",
                                     causes=[{"reason": "ResourceVersionTooLarge",
                                              "message": "Too large resource version"}],
                                     retry_after=1)
            self.sleep(TOO_NEW_POLL)


def open_watch(source, resource, namespace, since):
    """Open a watch now, so that a refusal (504) is the response's status.

    Returns the watch, or the Gone error a too-old start gets (sent as an ERROR event).
    """
    try:
        return source.open(resource, namespace, since)
    except errors.Gone as exc:
        return exc


class EventStream:
    """The response body of a watch: its events, and the watch cancelled on close.

    A generator closed before its first event would never reach its ``finally``.
    """

    def __init__(self, watch, events):
        self._watch, self._events = watch, events
        self._started = False

    def __iter__(self):
        return self

    def __next__(self):
        self._started = True
        return next(self._events)

    def close(self):
        self._events.close()    # a started generator cancels the watch itself
        if not self._started and not isinstance(self._watch, errors.ApiError):
            self._started = True
            self._watch.cancel()


def stream(source, resource, namespace, since, timeout, bookmarks, matches,
           clock=time.monotonic, transform=None, opened=None, encode=None):
    """Return the encoded watch events until the timeout or the client goes away.

    ``transform(event_type, obj)``, when given, replaces each ADDED, MODIFIED,
    DELETED and BOOKMARK object (a Table for ``kubectl get -w``); ERRORs pass as is.
    ``opened`` is what ``open_watch`` returned, when the caller opened it already.
    ``encode(event_type, obj)`` writes one event (JSON lines unless given: protobuf
    frames, control/api/protobuf/negotiation.py).
    """
    watch = open_watch(source, resource, namespace, since) if opened is None else opened
    return EventStream(watch, _events(watch, resource, since, timeout, bookmarks, matches,
                                      clock, transform, encode or _line))


def _events(watch, resource, since, timeout, bookmarks, matches, clock, transform, encode):
    emit = transform or (lambda kind, obj: obj)
    deadline = clock() + (timeout if timeout else random.uniform(1800, 3600))
    if isinstance(watch, errors.Gone):
        yield encode("ERROR", watch.status())
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
                yield encode("ERROR", gone.status())
                return
            except Ended:
                return      # the client watches again from its last resourceVersion
            except StoreError as exc:
                yield encode("ERROR", errors.ServiceUnavailable(exc.message).status())
                return
            if event is not None:
                kind, obj = watch_event(event)
                if resource.conversion is not None:     # a version served by conversion
                    obj = resource.conversion.from_storage(obj)
                revision = event["kv"]["mod_revision"]
                if matches(obj):
                    yield encode(kind, emit(kind, obj))
            elif bookmarks and clock() - last_bookmark >= BOOKMARK_INTERVAL:
                last_bookmark = clock()
                bookmark = {"kind": resource.kind, "apiVersion": resource.api_version,
                            "metadata": {"resourceVersion": str(revision or watch.revision)}}
                yield encode("BOOKMARK", emit("BOOKMARK", bookmark))
    finally:
        watch.cancel()


def _line(kind, obj):
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()
