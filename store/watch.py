"""Fan committed events out to the watchers connected to one store node.

Events are published from the Raft tick thread with ``loop.call_soon_threadsafe``,
so everything in this module runs on the server's event loop and needs no lock.
A watcher first replays the history from its start revision, then receives live
events; it remembers the last revision it delivered, which makes the replay and a
publish of the same revision racing each other harmless (no duplicate, no gap).
"""

from dataclasses import dataclass, field


def in_range(key, start, end):
    """Tell whether ``key`` lies in the etcd-style range [start, end)."""
    if end is None:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


@dataclass
class Watcher:
    """One client watch: its range, its delivery function and its progress."""

    watch_id: int
    key: bytes
    range_end: bytes | None
    prev_kv: bool
    send: callable            # send(message_dict) on the connection
    last_revision: int = 0    # newest revision delivered (or caught up to)
    pending: list = field(default_factory=list)

    def deliver(self, revision, events):
        """Send the events of one revision that touch this watcher's range."""
        if revision <= self.last_revision:
            return
        self.last_revision = revision
        mine = [self._shape(e) for e in events if in_range(e["kv"]["key"], self.key, self.range_end)]
        if mine:
            self.send({"id": self.watch_id, "watch": "events", "events": mine})

    def _shape(self, event):
        if self.prev_kv:
            return event
        return {"type": event["type"], "kv": event["kv"]}


class WatchHub:
    """Hold every watcher of this node and deliver each applied revision to them."""

    def __init__(self):
        self._watchers = {}   # (connection id, watch id) -> Watcher
        self._per_connection = {}   # connection id -> number of its watchers

    def count(self, conn_id):
        """Return how many watches connection ``conn_id`` holds open."""
        return self._per_connection.get(conn_id, 0)

    def add(self, conn_id, watcher, history, current_revision):
        """Register ``watcher`` after replaying ``history`` (events up to current)."""
        by_revision = {}
        for event in history:
            by_revision.setdefault(event["kv"]["mod_revision"], []).append(event)
        for revision in sorted(by_revision):
            watcher.deliver(revision, by_revision[revision])
        watcher.last_revision = max(watcher.last_revision, current_revision)
        if (conn_id, watcher.watch_id) not in self._watchers:
            self._per_connection[conn_id] = self.count(conn_id) + 1
        self._watchers[(conn_id, watcher.watch_id)] = watcher

    def remove(self, conn_id, watch_id):
        watcher = self._watchers.pop((conn_id, watch_id), None)
        if watcher is not None:
            left = self.count(conn_id) - 1
            if left:
                self._per_connection[conn_id] = left
            else:
                self._per_connection.pop(conn_id, None)
        return watcher

    def drop_connection(self, conn_id):
        if self._per_connection.pop(conn_id, None):
            for key in [k for k in self._watchers if k[0] == conn_id]:
                del self._watchers[key]

    def publish(self, revision, events):
        for watcher in list(self._watchers.values()):
            watcher.deliver(revision, events)

    def cancel_all(self, error):
        """End every watch with ``error`` (after a snapshot replaced the state)."""
        for watcher in list(self._watchers.values()):
            watcher.send({"id": watcher.watch_id, "watch": "canceled", "error": error})
        self._watchers.clear()
        self._per_connection.clear()

    def __len__(self):
        return len(self._watchers)
