"""One store watch per resource per process, fanned out to every client watch.

A thousand `kubectl get -w` or informers watching pods would otherwise hold a
thousand store watches. Here the first client watch on a resource opens a single
store watch on the resource's whole key range; its events land in a window of
recent events and are copied into each subscriber's queue. A subscriber that
starts from a revision inside the window is replayed from it; one that starts
older than the window is served by its own store watch (the store keeps more
history); one that cannot keep up is ended and resumes, as kube-apiserver does.
"""

import collections
import threading

from control.registry import resource_prefix
from store.client import StoreError

#: Events kept per resource for subscribers that start a little in the past.
WINDOW = 10_000
#: Events a subscriber may fall behind before it is ended.
SUBSCRIBER_BACKLOG = 10_000


class Ended(Exception):
    """The subscription ended (slow consumer or store watch failure): watch again."""


class Subscription:
    """One client watch fed by a WatchCache: ``next_event``, ``cancel``, ``revision``."""

    def __init__(self, cache, namespace_prefix, since):
        self._cache = cache
        self._prefix = namespace_prefix
        self.revision = since
        self._events = collections.deque()
        self._ready = threading.Condition()
        self._ended = None
        self._closed = False

    def offer(self, revision, event):
        """Queue an event (called by the cache's reader); False if this subscriber is done."""
        if revision <= self.revision or not event["kv"]["key"].startswith(self._prefix):
            return True
        with self._ready:
            if len(self._events) >= SUBSCRIBER_BACKLOG:
                self._ended = Ended("the watch fell too far behind; watch again")
                self._ready.notify_all()
                return False
            self._events.append(event)
            self._ready.notify_all()
        return True

    def end(self, reason):
        with self._ready:
            self._ended = Ended(reason)
            self._ready.notify_all()

    def next_event(self, timeout=None):
        """Return the next event, None on timeout; raise Ended when the stream is over."""
        with self._ready:
            if not self._events and self._ended is None and not self._closed:
                self._ready.wait(timeout)
            if self._events:
                event = self._events.popleft()
                self.revision = event["kv"]["mod_revision"]
                return event
            if self._ended is not None:
                raise self._ended
            return None

    def cancel(self):
        self._closed = True
        self._cache.unsubscribe(self)


class WatchCache:
    """Follow one resource in the store and serve its events to many subscribers."""

    def __init__(self, registry, resource, window=WINDOW):
        self.registry = registry
        self.resource = resource
        self._window = collections.deque(maxlen=window)
        self._subscribers = set()
        self._lock = threading.Lock()
        self._store_watch = None
        self._start_revision = None   # events after this revision are all in the window
        self._thread = None

    def subscribe(self, namespace, since):
        """Watch events after revision ``since`` (0: from now) in ``namespace`` (None: all).

        Returns a Subscription, or None when ``since`` is older than the window
        (the caller then opens its own store watch).
        """
        prefix = resource_prefix(self.resource, namespace)
        with self._lock:
            self._ensure_running(since)
            current = self._window[-1][0] if self._window else self._start_revision
            if since == 0:
                since = current
            oldest = self._window[0][0] - 1 if len(self._window) == self._window.maxlen \
                else self._start_revision
            if since < oldest:
                return None
            subscription = Subscription(self, prefix, since)
            for revision, event in self._window:
                subscription.offer(revision, event)
            self._subscribers.add(subscription)
            return subscription

    def unsubscribe(self, subscription):
        with self._lock:
            self._subscribers.discard(subscription)

    def latest(self):
        """Return the newest revision this cache has followed to, or None when it is idle."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                return None
            return self._window[-1][0] if self._window else self._start_revision

    # -- the reader -----------------------------------------------------------------
    def _ensure_running(self, since):
        """Start following the store, from ``since`` if it is the first subscriber's start."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._store_watch = self.registry.watch(self.resource, None, since)
        self._start_revision = since if since else self._store_watch.revision
        self._window.clear()
        self._thread = threading.Thread(target=self._follow, daemon=True,
                                        name=f"watchcache-{self.resource.plural}")
        self._thread.start()

    def _follow(self):
        watch = self._store_watch
        try:
            while True:
                event = watch.next_event(timeout=5.0)
                if event is None:
                    continue
                revision = event["kv"]["mod_revision"]
                with self._lock:
                    self._window.append((revision, event))
                    dropped = [s for s in self._subscribers if not s.offer(revision, event)]
                    self._subscribers.difference_update(dropped)
        except StoreError as exc:
            # Compaction under us or the store gone: end every subscriber so each
            # resumes (or relists on 410) and the next subscribe starts afresh.
            with self._lock:
                for subscriber in self._subscribers:
                    subscriber.end(f"the store watch ended: {exc.message}")
                self._subscribers.clear()
                self._thread = None


class WatchCaches:
    """The watch caches of one process, created on first use per resource."""

    def __init__(self, registry):
        self.registry = registry
        self._caches = {}
        self._lock = threading.Lock()

    def subscribe(self, resource, namespace, since):
        with self._lock:
            key = (resource.group, resource.plural)
            cache = self._caches.get(key)
            if cache is None:
                cache = self._caches[key] = WatchCache(self.registry, resource)
        return cache.subscribe(namespace, since)

    def latest(self, resource):
        """Return the newest revision followed for ``resource``, or None (not followed)."""
        with self._lock:
            cache = self._caches.get((resource.group, resource.plural))
        return cache.latest() if cache is not None else None
