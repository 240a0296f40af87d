"""Keep a local, indexed, read-only cache of one resource, fed by list and watch.

This is client-go's shared informer, pared down: a *reflector* thread lists (in
pages), then watches from the list's resourceVersion, resuming from the last
version it saw when a stream ends or drops, and listing again when the server
says that version is gone (410). It hands what it reads, in order, to a
*processor* thread, which updates the cache and then calls the event handlers,
so a handler always finds the cache at least as new as the event it is given.

Handlers run one at a time on the processor thread and should only enqueue keys
(see workqueue.py). The objects they get, and those the store returns, are the
cached dicts themselves: never mutate them; deep-copy before changing anything.
"""

import logging
import queue
import random
import threading
import time

from control.client import errors
from control.client.cache import Store
from control.client.rest import object_key

log = logging.getLogger(__name__)

#: client-go restarts a watch after a random 5–10 minutes so that watches spread out.
WATCH_TIMEOUT = 300
PAGE_SIZE = 500


class Informer:
    """List and watch one resource into a ``Store``, calling handlers on changes."""

    def __init__(self, rest, resource, namespace=None, label_selector=None, field_selector=None,
                 resync=0, watch_timeout=WATCH_TIMEOUT, page_size=PAGE_SIZE,
                 backoff_initial=0.8, backoff_max=30.0):
        self.rest, self.resource = rest, resource
        self.namespace, self.label_selector = namespace, label_selector
        self.field_selector = field_selector
        self.resync = resync
        self.watch_timeout, self.page_size = watch_timeout, page_size
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self.store = Store()
        self._handlers = []
        self._deltas = queue.Queue()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._watch = None
        self._watch_lock = threading.Lock()
        self._threads = []
        #: The resourceVersion the reflector last saw (for tests and debugging).
        self.last_resource_version = None
        #: Counts of lists and watches started, so tests can see resumes and relists.
        self.lists = self.watches = 0

    # -- configuration ------------------------------------------------------------
    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        """Call ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)`` on changes.

        A handler added after ``start`` first gets an add for each cached object.
        """
        handler = (on_add, on_update, on_delete)
        if self._threads:
            self._deltas.put(("handler", handler, None))
        else:
            self._handlers.append(handler)

    def add_index(self, name, func):
        if self._threads:
            raise RuntimeError("add indexes before the informer starts")
        self.store.add_index(name, func)

    # -- lifecycle ----------------------------------------------------------------
    def start(self):
        """Start the reflector and processor threads (daemons); return at once."""
        if self._threads:
            raise RuntimeError("an informer starts once")
        name = f"informer-{self.resource.qualified}"
        self._threads = [threading.Thread(target=self._reflect, name=name + "-reflector",
                                          daemon=True),
                         threading.Thread(target=self._process, name=name, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout=10):
        """Stop both threads; wait up to ``timeout`` seconds for them."""
        self._stop.set()
        with self._watch_lock:
            if self._watch is not None:
                self._watch.close()
        self._deltas.put(("stop", None, None))
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def has_synced(self):
        """True once the first full list is in the cache and its handlers have run."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout=None):
        return self._synced.wait(timeout)

    # -- the reflector: list, then watch ------------------------------------------
    def _reflect(self):
        failures = 0
        while not self._stop.is_set():
            try:
                self._list_and_watch()
                failures = 0
            except Exception as exc:        # noqa: BLE001 - keep the informer alive
                if self._stop.is_set():
                    return
                log.warning("informer %s: %s; listing again", self.resource.qualified, exc)
                failures += 1
                self._stop.wait(self._backoff(failures))

    def _list_and_watch(self):
        items, rv = self.rest.list_all(self.resource, self.namespace, self.label_selector,
                                       self.field_selector, page_size=self.page_size)
        self.lists += 1
        self._deltas.put(("replace", items, rv))
        self.last_resource_version = rv
        failures = 0
        while not self._stop.is_set():
            try:
                expired = self._watch_once()
                failures = 0
            except (errors.ConnectionFailed, errors.TooManyRequests, errors.ServerError) as exc:
                # A dropped or refused watch: resume from the last version seen,
                # which the server can still serve unless it has compacted past it.
                failures += 1
                log.info("informer %s: watch interrupted (%s); resuming from %s",
                         self.resource.qualified, exc, self.last_resource_version)
                self._stop.wait(self._backoff(failures))
                continue
            except errors.Gone:
                expired = True
            if expired:
                log.info("informer %s: resourceVersion %s is gone; listing again",
                         self.resource.qualified, self.last_resource_version)
                return

    def _watch_once(self):
        """Watch from the last seen version until the stream ends; True if it expired."""
        timeout = int(self.watch_timeout * (1 + random.random()))
        watch = self.rest.watch(self.resource, self.namespace,
                                resource_version=self.last_resource_version,
                                timeout_seconds=max(1, timeout),
                                label_selector=self.label_selector,
                                field_selector=self.field_selector)
        with self._watch_lock:
            if self._stop.is_set():
                watch.close()
                return False
            self._watch = watch
            self.watches += 1
        try:
            for kind, obj in watch:
                if self._stop.is_set():
                    return False
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return True
                    raise errors.from_status(obj.get("code") or 500, obj)
                rv = obj.get("metadata", {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._deltas.put((kind, obj, rv))
                elif kind != "BOOKMARK":
                    log.warning("informer %s: unknown watch event %r", self.resource.qualified,
                                kind)
                    continue
                if rv:
                    self.last_resource_version = rv
            return False
        finally:
            with self._watch_lock:
                self._watch = None
            watch.close()

    def _backoff(self, failures):
        delay = min(self.backoff_max, self.backoff_initial * 2 ** min(failures - 1, 16))
        return delay * (0.5 + random.random() / 2)

    # -- the processor: cache, then handlers --------------------------------------
    def _process(self):
        next_resync = time.monotonic() + self.resync if self.resync else None
        while True:
            wait = None if next_resync is None else max(0.0, next_resync - time.monotonic())
            try:
                kind, obj, extra = self._deltas.get(timeout=wait)
            except queue.Empty:
                kind = "resync"
            if kind == "stop" or self._stop.is_set():
                return
            if kind == "resync":
                next_resync = time.monotonic() + self.resync
                for cached in self.store.list():
                    self._fire(1, cached, cached)
            elif kind == "replace":
                self._replace(obj)
                self._synced.set()
            elif kind == "handler":
                self._handlers.append(obj)
                for cached in self.store.list():
                    self._call(obj[0], cached)
            elif kind == "DELETED":
                self.store._delete(object_key(obj))
                self._fire(2, obj)
            else:
                old = self.store._put(object_key(obj), obj)
                if old is None:
                    self._fire(0, obj)
                else:
                    self._fire(1, old, obj)

    def _replace(self, items):
        """Swap the cache for a fresh list; tell handlers what changed since the last one."""
        fresh = {object_key(obj): obj for obj in items}
        old = self.store._replace(fresh)
        for key, obj in fresh.items():
            previous = old.get(key)
            if previous is None:
                self._fire(0, obj)
            elif _rv(previous) != _rv(obj):
                self._fire(1, previous, obj)
        for key, previous in old.items():
            if key not in fresh:
                # Deleted while we were not watching: this is its last known state.
                self._fire(2, previous)

    def _fire(self, which, *args):
        for handler in self._handlers:
            self._call(handler[which], *args)

    def _call(self, func, *args):
        if func is None:
            return
        try:
            func(*args)
        except Exception:           # noqa: BLE001 - one bad handler must not stop the cache
            log.exception("informer %s: event handler failed", self.resource.qualified)


def _rv(obj):
    return obj.get("metadata", {}).get("resourceVersion")
