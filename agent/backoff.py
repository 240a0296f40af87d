"""Crash-loop backoff, as kubelet's flowcontrol.Backoff does it.

The first restart of a crashed container is immediate; each further one waits
twice as long as the last (10 s, 20 s, ... capped at 300 s by default). An entry
left untouched for ``reset_after`` seconds (kubelet: 10 minutes, twice the cap)
is forgotten, so a container that ran that long starts again from the base delay.
"""

import threading

DEFAULT_BASE = 10.0
DEFAULT_MAX = 300.0
DEFAULT_RESET = 600.0


class Backoff:
    """Per-key exponential delays; ``now`` is passed in (no clock read here)."""

    def __init__(self, base=DEFAULT_BASE, maximum=DEFAULT_MAX, reset_after=DEFAULT_RESET):
        self.base, self.maximum, self.reset_after = base, maximum, reset_after
        self._entries = {}          # key -> (delay, last update)
        self._lock = threading.Lock()

    def _live(self, key, now):
        entry = self._entries.get(key)
        if entry is not None and now - entry[1] > self.reset_after:
            del self._entries[key]
            return None
        return entry

    def in_backoff_since(self, key, event_time, now):
        """True while ``now`` is within the current delay after ``event_time``."""
        with self._lock:
            entry = self._live(key, now)
            return entry is not None and now - event_time < entry[0]

    def remaining(self, key, event_time, now):
        """Seconds left before a restart after ``event_time`` is allowed (0 if none)."""
        with self._lock:
            entry = self._live(key, now)
            return max(0.0, event_time + entry[0] - now) if entry else 0.0

    def current(self, key):
        with self._lock:
            entry = self._entries.get(key)
            return entry[0] if entry else 0.0

    def next(self, key, now):
        """Record a restart at ``now``: the first delay is ``base``, then it doubles."""
        with self._lock:
            entry = self._live(key, now)
            delay = self.base if entry is None else min(entry[0] * 2, self.maximum)
            self._entries[key] = (delay, now)
            return delay

    def forget(self, key):
        with self._lock:
            self._entries.pop(key, None)
