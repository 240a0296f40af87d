"""Expectations: what a controller waits to see before it acts on a key again.

client-go's ControllerExpectations (with UID-tracked deletions): after asking for N
creations a controller does not act on its own key again until the informer has
shown it those N objects, so a slow watch never makes it create twice.
"""

import logging
import threading
import time

from control.client import object_key

log = logging.getLogger(__name__)

#: client-go's ExpectationsTimeout: stale expectations stop blocking after 5 minutes.
EXPECTATIONS_TIMEOUT = 300.0


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

    def hooks(self):
        """``created`` and ``deleted`` for ownership.ChildEvents: note what the informer shows."""
        return {"created": lambda owner, child: self.creation_observed(object_key(owner)),
                "deleted": lambda owner, child: self.deletion_observed(object_key(owner),
                                                                       object_key(child))}
