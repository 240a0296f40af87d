"""Give every controller the same shape: informers in, keys queued, sync(key) out.

This is the sample-controller pattern. Informers keep read-only caches; their
handlers only enqueue ``namespace/name`` keys; worker threads pop a key and call
``sync(key)``, which reads the caches, compares desired with actual state and
converges, idempotently. A sync that raises is retried with per-key backoff; one
that succeeds resets the backoff. Cached objects are shared: never mutate them.

``Expectations`` is client-go's ControllerExpectations (with UID-tracked
deletions): after asking for N creations a controller does not act on its own key
again until the informer has shown it those N pods, so a slow watch never makes
it create twice. ``controller_ref`` and ``get_controller_of`` handle ownerReferences.
"""

import concurrent.futures
import logging
import threading
import time

from control.client import Conflict, Forbidden, RateLimitingQueue, namespace_index, object_key

log = logging.getLogger(__name__)

#: client-go's ExpectationsTimeout: stale expectations stop blocking after 5 minutes.
EXPECTATIONS_TIMEOUT = 300.0
#: Threads per batch of API calls; bounded so one sync cannot open hundreds of connections.
MAX_PARALLEL = 16


def namespace_terminating(exc):
    """True if ``exc`` is the API refusing a create because the namespace is being deleted.

    Controllers drop such creates instead of retrying them (Kubernetes' controllers
    check the NamespaceTerminating cause the same way): the namespace is going away.
    """
    if not isinstance(exc, Forbidden):
        return False
    causes = exc.details.get("causes") or ()
    return any(c.get("reason") == "NamespaceTerminating" for c in causes) or \
        "being terminated" in str(exc)


def split_key(key):
    """Split ``namespace/name`` (or ``name``) into (namespace or None, name)."""
    namespace, _, name = key.rpartition("/")
    return namespace or None, name


class Controller:
    """A named reconcile loop over informer caches; subclasses implement ``sync``."""

    def __init__(self, name, informers=(), queue=None):
        self.name = name
        self.informers = list(informers)
        # "is None": an empty queue is falsy.
        self.queue = queue if queue is not None else RateLimitingQueue(name=name)

    def enqueue(self, obj):
        """Queue the key of ``obj`` (``namespace/name``); handlers should do only this."""
        self.queue.add(object_key(obj))

    def enqueue_after(self, obj, delay):
        self.queue.add_after(object_key(obj), delay)

    def sync(self, key):
        """Converge the object named ``key``; raise to be retried with backoff."""
        raise NotImplementedError

    def process_next(self, timeout=None):
        """Sync one key from the queue; return False once the queue is shut down."""
        key = self.queue.get(timeout)
        if key is None:
            return not self.queue.shutting_down
        try:
            self.sync(key)
        except Conflict as exc:
            # A stale cache: normal, and the retry reads a newer one. No traceback.
            log.info("%s: syncing %s: %s; retrying", self.name, key, exc)
            self.queue.add_rate_limited(key)
        except Exception:       # noqa: BLE001 - a worker must survive any sync failure
            log.exception("%s: syncing %s failed; retrying (%d requeues so far)", self.name,
                          key, self.queue.num_requeues(key))
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
        finally:
            self.queue.done(key)
        return True

    def wait_for_sync(self, stop_event, poll=0.05):
        """Wait until every informer has listed once; False if stopped first."""
        while not all(informer.has_synced() for informer in self.informers):
            if stop_event.wait(poll):
                return False
        return True

    def run(self, workers, stop_event):
        """Wait for the caches, then sync keys on ``workers`` threads until ``stop_event``."""
        log.info("starting %s controller", self.name)
        if not self.wait_for_sync(stop_event):
            return
        threads = [threading.Thread(target=self._work, name=f"{self.name}-{i}", daemon=True)
                   for i in range(workers)]
        for thread in threads:
            thread.start()
        stop_event.wait()
        self.queue.shutdown()
        for thread in threads:
            thread.join(10)
        log.info("stopped %s controller", self.name)

    def _work(self):
        while self.process_next():
            pass


class _Expectation:
    __slots__ = ("add", "delete_keys", "timestamp")

    def __init__(self, add, delete_keys, timestamp):
        self.add, self.delete_keys, self.timestamp = add, set(delete_keys), timestamp


class Expectations:
    """Creations and deletions a controller waits to see, per controller key.

    ``clock`` is monotonic seconds; expectations older than ``timeout`` count as
    satisfied, so a lost watch event cannot wedge a controller forever.
    Deletions are tracked by pod key, so seeing one deletion twice (a graceful
    delete's update, then the delete) lowers the count only once.
    """

    def __init__(self, clock=time.monotonic, timeout=EXPECTATIONS_TIMEOUT):
        self.clock, self.timeout = clock, timeout
        self._lock = threading.Lock()
        self._items = {}

    def expect_creations(self, key, count):
        with self._lock:
            self._items[key] = _Expectation(count, (), self.clock())

    def expect_deletions(self, key, object_keys):
        with self._lock:
            self._items[key] = _Expectation(0, object_keys, self.clock())

    def expect(self, key, count, object_keys):
        """Expect ``count`` creations and the deletion of ``object_keys`` at once."""
        with self._lock:
            self._items[key] = _Expectation(count, object_keys, self.clock())

    def creation_observed(self, key):
        """Lower the creations expected for ``key`` by one (an add event, or a failed create)."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                item.add -= 1

    def deletion_observed(self, key, object_key_):
        """Note that ``object_key_`` is gone (or going); only the first notice counts."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                item.delete_keys.discard(object_key_)

    def satisfied(self, key):
        """True if ``key`` may act: nothing pending, all observed, or expectations expired."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return True
            if item.add <= 0 and not item.delete_keys:
                return True
            if self.clock() - item.timestamp > self.timeout:
                log.info("expectations of %s expired (add %d, delete %d)", key, item.add,
                         len(item.delete_keys))
                return True
            return False

    def pending(self, key):
        """(creations, deletions) still expected for ``key``; for tests and logs."""
        with self._lock:
            item = self._items.get(key)
            return (0, 0) if item is None else (max(item.add, 0), len(item.delete_keys))

    def delete(self, key):
        with self._lock:
            self._items.pop(key, None)


def by_namespace(store, namespace):
    """The cached objects of one namespace (through the "namespace" index when present)."""
    try:
        return store.by_index("namespace", namespace)
    except KeyError:
        return [obj for obj in store.list() if namespace_index(obj) == namespace]


def significant(status):
    """Status without zero or empty fields, which a server may omit when it stores them:
    compare two statuses by this to skip writes that change nothing."""
    return {k: v for k, v in status.items() if v not in (0, None, "", [], {})}


def controller_ref(owner, api_version, kind):
    """An ownerReference naming ``owner`` as the managing controller of a dependent."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def get_controller_of(obj):
    """The ownerReference of ``obj`` with ``controller: true``, or None."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def create_owned(rest, resource, namespace, body, owner, api_version, kind):
    """Create ``body`` (not mutated) with ``owner`` as its controller; return the result."""
    meta = dict(body.get("metadata") or {})
    refs = [r for r in meta.get("ownerReferences") or () if not r.get("controller")]
    meta["ownerReferences"] = refs + [controller_ref(owner, api_version, kind)]
    return rest.create(resource, namespace, {**body, "metadata": meta})


def slow_start_batch(count, initial, func):
    """Call ``func()`` ``count`` times in batches of 1, 2, 4, ...; stop after a failing batch.

    Returns (successes, the first error or None). A quota or admission failure thus
    costs one request, not ``count``, as in Kubernetes' slowStartBatch.
    """
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        errors = _call_batch(func, batch)
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def _call_batch(func, size):
    """Call ``func()`` ``size`` times at once; return the exceptions raised."""
    errors = []

    def call(_):
        try:
            func()
        except Exception as exc:    # noqa: BLE001 - reported to the caller
            errors.append(exc)

    parallel(call, range(size))
    return errors


_POOL_PREFIX = "api-calls"
_pool = None
_pool_lock = threading.Lock()


def _shared_pool():
    """One pool for every controller's parallel API calls.

    Its threads live on, and with them their keep-alive connections to the API
    server (RestClient keeps one per thread): a pool per batch would open a new
    TCP connection for every call.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(MAX_PARALLEL,
                                                          thread_name_prefix=_POOL_PREFIX)
        return _pool


def parallel(func, items):
    """Call ``func(item)`` for every item, on up to MAX_PARALLEL threads; wait for all."""
    items = list(items)
    # From inside the pool, waiting on the pool could deadlock: run in line instead.
    if len(items) <= 1 or threading.current_thread().name.startswith(_POOL_PREFIX):
        for item in items:
            func(item)
        return
    for future in [_shared_pool().submit(func, item) for item in items]:
        future.result()
