"""Give every controller the same shape: informers in, keys queued, sync(key) out.

This is the sample-controller pattern. Informers keep read-only caches; their
handlers only enqueue ``namespace/name`` keys; worker threads pop a key and call
``sync(key)``, which reads the caches, compares desired with actual state and
converges, idempotently. A sync that raises is retried with per-key backoff; one
that succeeds resets the backoff. Cached objects are shared: never mutate them.
"""

import logging
import threading

from control.client import Conflict, Forbidden, RateLimitingQueue, namespace_index, object_key
from control.objects import conditions

log = logging.getLogger(__name__)


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

    def enqueue_when_available(self, owner, old, new):
        """A child of ``owner`` became Ready: look again when it counts as available.

        Under minReadySeconds a pod is available only that long after Ready, and no
        event marks the moment: so the owner is queued for just after it.
        """
        min_ready = (owner.get("spec") or {}).get("minReadySeconds") or 0
        if min_ready and not conditions.is_ready(old) and conditions.is_ready(new):
            self.enqueue_after(owner, min_ready + 1)

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


def by_namespace(store, namespace):
    """The cached objects of one namespace (through the "namespace" index when present)."""
    try:
        return store.by_index("namespace", namespace)
    except KeyError:
        return [obj for obj in store.list() if namespace_index(obj) == namespace]
