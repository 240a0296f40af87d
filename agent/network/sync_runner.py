"""Decide when the nftables proxy syncs: debounced, one at a time, retried, resynced.

Informer events arrive in bursts (a Deployment scaled by ten writes ten slices), and
one ``nft -f`` per burst is cheaper and just as fast as one per event. So a request
starts a short window (``debounce``) and every request inside it joins the same
sync. Syncs run on one thread only, so they never overlap; a request arriving
during a sync opens the next window. A failed sync is retried after an exponential
backoff; every ``resync`` seconds a full sync runs anyway (the caller forgets what
it applied first, so a table deleted by hand comes back).

The policy is ``step(now)``, driven by an injected clock: tests step a fake clock
instead of sleeping. ``run`` is the thread's loop around it.
"""

import logging
import threading
import time

log = logging.getLogger(__name__)

DEBOUNCE = 0.1
RESYNC = 60.0
BACKOFF_INITIAL, BACKOFF_MAX = 0.5, 30.0


class SyncRunner:
    """Call ``sync(full)`` when asked (debounced), after failures, and periodically.

    ``sync(full)`` returns nothing and raises on failure; ``full`` is True for the
    periodic resync and for the very first sync. ``on_done(triggers, now)`` is told,
    after a successful sync, the trigger times (``wall`` clock) it covered.
    """

    def __init__(self, sync, clock=time.monotonic, wall=time.time, debounce=DEBOUNCE,
                 resync=RESYNC, backoff_initial=BACKOFF_INITIAL, backoff_max=BACKOFF_MAX,
                 on_done=None, what="service rules"):
        self._sync, self.clock, self.wall = sync, clock, wall
        self.what = what               # names the rules in log lines
        self.debounce, self.resync = debounce, resync
        self.backoff_initial, self.backoff_max = backoff_initial, backoff_max
        self._on_done = on_done
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending_since = None     # clock time of the first request not yet synced
        self._triggers = []            # wall times of the changes the next sync covers
        self._failures = 0
        self._retry_at = None
        self._last_full = None         # clock time of the last successful full sync
        self.syncs = self.errors = 0
        self.last_duration = None
        self.last_error = None

    # -- requests (any thread) -------------------------------------------------------
    def request(self, trigger=None):
        """Ask for a sync soon; ``trigger`` is the wall time of the change, if known."""
        with self._lock:
            if self._pending_since is None:
                self._pending_since = self.clock()
            if trigger is not None:
                self._triggers.append(trigger)
        self._wake.set()

    # -- the policy --------------------------------------------------------------------
    def next_due(self):
        """Clock time of the next sync (None: nothing to do until a request)."""
        with self._lock:
            if self._last_full is None:
                # The first sync: at once (unless it failed and is backing off).
                return self._retry_at if self._retry_at is not None else float("-inf")
            due = self._last_full + self.resync
            if self._pending_since is not None:
                due = min(due, self._pending_since + self.debounce)
            if self._retry_at is not None:
                return self._retry_at      # backing off: new requests wait for it too
            return due

    def step(self, now=None):
        """Sync if one is due at ``now``; return seconds until the next one is due."""
        now = self.clock() if now is None else now
        due = self.next_due()
        if due > now:
            return due - now
        with self._lock:
            full = self._last_full is None or now >= self._last_full + self.resync
            triggers, self._triggers = self._triggers, []
            self._pending_since = None
        started = self.clock()
        try:
            self._sync(full)
        except Exception as exc:   # noqa: BLE001 - any failure is retried, never fatal
            self._failed(exc, triggers)
        else:
            self._succeeded(full, started, triggers)
        return max(0.0, self.next_due() - self.clock())

    def _failed(self, exc, triggers):
        with self._lock:
            self.errors += 1
            self._failures += 1
            self.last_error = str(exc)
            delay = min(self.backoff_max,
                        self.backoff_initial * 2 ** min(self._failures - 1, 16))
            self._retry_at = self.clock() + delay
            # The changes are still not in place: the next sync covers them.
            self._triggers = triggers + self._triggers
            if self._pending_since is None:
                self._pending_since = self.clock()
        log.warning("msg=%s sync failed, retrying delay=%.1fs error=%s",
                    self.what, delay, exc)

    def _succeeded(self, full, started, triggers):
        now = self.clock()
        with self._lock:
            self.syncs += 1
            self.last_duration = now - started
            self._failures, self._retry_at, self.last_error = 0, None, None
            if full:
                self._last_full = now
        if self._on_done is not None:
            self._on_done(triggers, self.wall())

    # -- the thread --------------------------------------------------------------------
    def run(self, stop):
        """Step until ``stop`` (a threading.Event) is set."""
        while not stop.is_set():
            wait = self.step()
            if self._wake.wait(wait):
                self._wake.clear()

    def wake(self):
        """Make ``run`` look again at once (to stop it promptly)."""
        self._wake.set()


def run_when_synced(informers, runner, stop):
    """Wait until every informer holds a full list, then run ``runner`` until ``stop``.

    A sync from half-listed caches would remove rules of objects not listed yet.
    """
    for informer in informers:
        while not informer.wait_for_sync(0.5):
            if stop.is_set():
                return
    runner.run(stop)
