"""An in-memory stand-in for ``store.client.StoreClient``, backed by the real machine.

The state machine is the store's own (store/machine.py), so revisions, txns,
compaction and watch history behave exactly as in a cluster, without processes.
"""

import threading

from store.client import error_from
from store.machine import Machine


class FakeWatch:
    """A watch that replays history from the machine and waits for new revisions."""

    def __init__(self, store, key, range_end, start_revision, prev_kv):
        self._store, self._key, self._range_end = store, key, range_end
        self._prev_kv = prev_kv
        with store.lock:
            current = store.machine.revision
        self.revision = start_revision - 1 if start_revision > 0 else current
        self._buffer = []
        self._closed = False
        if start_revision > 0:
            self._fill()

    def _fill(self):
        with self._store.lock:
            result = self._store.machine.events_since(self.revision + 1, self._key, self._range_end)
        if "error" in result:
            raise error_from(result["error"])
        fresh = [e for e in result["events"] if e["kv"]["mod_revision"] > self.revision]
        if fresh:
            self._buffer.extend(fresh)
            self.revision = fresh[-1]["kv"]["mod_revision"]

    def next_event(self, timeout=None):
        with self._store.changed:
            if not self._buffer and not self._closed:
                self._store.changed.wait_for(
                    lambda: self._closed or self._store.machine.revision > self.revision, timeout)
        if not self._buffer and not self._closed:
            self._fill()
        return self._buffer.pop(0) if self._buffer else None

    def cancel(self):
        self._closed = True


class FakeStore:
    """Answer the StoreClient calls the control plane uses, in memory."""

    def __init__(self):
        self.machine = Machine()
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._req = 0

    def _apply(self, command):
        with self.lock:
            self._req += 1
            result, _events = self.machine.apply({**command, "client": 1, "req": self._req})
            self.changed.notify_all()
        if "error" in result:
            raise error_from(result["error"])
        return {**result, "header": {"revision": self.machine.revision}}

    def get(self, key, range_end=None, revision=0, limit=0, serializable=False,
            keys_only=False, count_only=False, timeout=None):
        with self.lock:
            result = self.machine.range(key, range_end, revision=revision, limit=limit,
                                        keys_only=keys_only, count_only=count_only)
        if "error" in result:
            raise error_from(result["error"])
        return {**result, "header": {"revision": self.machine.revision}}

    def put(self, key, value, lease=0, prev_kv=False, timeout=None):
        return self.txn(success=[{"op": "put", "key": key, "value": value, "lease": lease,
                                  "prev_kv": prev_kv}])

    def txn(self, compare=(), success=(), failure=(), timeout=None):
        return self._apply({"op": "txn", "compare": list(compare), "success": list(success),
                            "failure": list(failure)})

    def compact(self, revision, timeout=None):
        return self._apply({"op": "compact", "revision": revision})

    def watch(self, key, range_end=None, start_revision=0, prev_kv=False, resume_timeout=None):
        return FakeWatch(self, key, range_end, start_revision, prev_kv)

    def status(self, timeout=None):
        return {"revision": self.machine.revision}

    def close(self):
        pass
