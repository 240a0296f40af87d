"""Queue keys for controller workers, with dedup, delays and per-item rate limits.

The semantics are client-go's workqueue: a key is queued at most once; a key added
while a worker holds it is queued again only when the worker calls ``done``, so no
two workers ever process the same key at once; ``add_rate_limited`` requeues a
failing key after a per-key exponential backoff, combined with an overall token
bucket so that a storm of failures cannot hammer the API server.
"""

import heapq
import itertools
import threading
import time

from control.client import metrics

# client-go's workqueue metrics (k8s.io/component-base/metrics/prometheus/workqueue).
DEPTH = metrics.gauge("workqueue_depth", "Current depth of workqueue", ("name",))
ADDS = metrics.counter("workqueue_adds_total", "Total number of adds handled by workqueue",
                       ("name",))
QUEUE_DURATION = metrics.histogram(
    "workqueue_queue_duration_seconds",
    "How long in seconds an item stays in workqueue before being requested.", ("name",))
WORK_DURATION = metrics.histogram(
    "workqueue_work_duration_seconds",
    "How long in seconds processing an item from workqueue takes.", ("name",))
RETRIES = metrics.counter("workqueue_retries_total",
                          "Total number of retries handled by workqueue", ("name",))


class ItemExponentialRateLimiter:
    """Delay base * 2**failures for each key, capped (client-go: 5 ms doubling to 1000 s)."""

    def __init__(self, base=0.005, cap=1000.0):
        self.base, self.cap = base, cap
        self.failures = {}

    def when(self, key):
        failures = self.failures.get(key, 0)
        self.failures[key] = failures + 1
        # Cap the exponent too: 2**failures overflows a float after ~1000 failures.
        return min(self.cap, self.base * 2 ** min(failures, 64))

    def forget(self, key):
        self.failures.pop(key, None)

    def num_requeues(self, key):
        return self.failures.get(key, 0)


class BucketRateLimiter:
    """A token bucket shared by every key (client-go: 10 qps, burst 100).

    Each ``when`` reserves a token, possibly in the future: the answer is how long
    to wait for it, as golang.org/x/time/rate's Reserve does.
    """

    def __init__(self, qps=10.0, burst=100, clock=time.monotonic):
        self.qps, self.burst, self.clock = qps, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def when(self, key):
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.qps)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps

    def forget(self, key):
        pass

    def num_requeues(self, key):
        return 0


class MaxOfRateLimiter:
    """The longest delay any of the limiters asks for."""

    def __init__(self, *limiters):
        self.limiters = limiters

    def when(self, key):
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key):
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key):
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_rate_limiter(clock=time.monotonic):
    """client-go's DefaultControllerRateLimiter."""
    return MaxOfRateLimiter(ItemExponentialRateLimiter(0.005, 1000.0),
                            BucketRateLimiter(10.0, 100, clock))


class RateLimitingQueue:
    """A thread-safe, deduplicating, delaying, rate-limited queue of keys.

    ``clock`` (seconds, monotonic) decides when delayed keys are due; ``get``'s
    ``timeout`` is real time. Delayed keys move to the queue whenever the queue is
    looked at, so no timer thread is needed and a fake clock drives tests.
    """

    def __init__(self, rate_limiter=None, clock=time.monotonic, name=""):
        self.clock = clock
        self.name = name
        self.rate_limiter = rate_limiter or default_rate_limiter(clock)
        self._queue = []             # FIFO of keys ready to hand out
        self._dirty = set()          # keys that need processing (queued, or re-added)
        self._processing = set()     # keys a worker holds
        self._waiting = []           # heap of (due, seq, key) for add_after
        self._due = {}               # key -> earliest due time in _waiting
        self._seq = itertools.count()
        self._shutting_down = False
        self._cond = threading.Condition()
        # Metrics (only for a named queue): when each key was queued / taken, real time.
        self._queued_at, self._taken_at = {}, {}
        if name:
            DEPTH.set(name, value=0)

    # -- the basic queue ------------------------------------------------------------
    def add(self, key):
        """Queue a key, unless it is already queued (or held: then again after done)."""
        with self._cond:
            self._add(key)

    def _add(self, key):
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if self.name:
            ADDS.inc(self.name)
        if key in self._processing:
            return
        self._enqueue(key)

    def _enqueue(self, key):
        self._queue.append(key)
        if self.name:
            DEPTH.inc(self.name)
            self._queued_at.setdefault(key, metrics.now())
        self._cond.notify()

    def get(self, timeout=None):
        """Take the next key, waiting up to ``timeout`` seconds; None on timeout or shutdown.

        After ``shutdown`` the keys still queued are handed out, then None.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._promote()
                if self._queue or self._shutting_down:
                    break
                wait = None if deadline is None else deadline - time.monotonic()
                if wait is not None and wait <= 0:
                    return None
                if self._waiting:
                    until_due = max(0.0, self._waiting[0][0] - self.clock())
                    wait = until_due if wait is None else min(wait, until_due)
                    # A fake clock never advances on its own: poll, do not spin.
                    wait = max(wait, 0.001)
                self._cond.wait(wait)
            if not self._queue:
                return None
            key = self._queue.pop(0)
            self._processing.add(key)
            self._dirty.discard(key)
            if self.name:
                now = metrics.now()
                DEPTH.dec(self.name)
                QUEUE_DURATION.observe(self.name, value=now - self._queued_at.pop(key, now))
                self._taken_at[key] = now
            return key

    def done(self, key):
        """Release a key taken with ``get``; if it was added meanwhile, queue it again."""
        with self._cond:
            self._processing.discard(key)
            if self.name and key in self._taken_at:
                WORK_DURATION.observe(self.name,
                                      value=metrics.now() - self._taken_at.pop(key))
            if key in self._dirty:
                self._enqueue(key)

    def __len__(self):
        with self._cond:
            self._promote()
            return len(self._queue)

    def waiting(self):
        """How many keys wait out a delay (add_after / add_rate_limited)."""
        with self._cond:
            self._promote()
            return len(self._due)

    def shutdown(self):
        """Stop accepting keys and wake every waiting worker (queued keys still drain)."""
        with self._cond:
            self._shutting_down = True
            self._waiting.clear()
            self._due.clear()
            self._cond.notify_all()

    @property
    def shutting_down(self):
        return self._shutting_down

    # -- delays ---------------------------------------------------------------------
    def add_after(self, key, delay):
        """Queue a key after ``delay`` seconds (by the queue's clock)."""
        with self._cond:
            if self._shutting_down:
                return
            if delay <= 0:
                self._add(key)
                return
            due = self.clock() + delay
            # Already waiting: keep the earlier time, as client-go does.
            if key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._waiting, (due, next(self._seq), key))
            self._cond.notify()     # a waiter may need to wake earlier

    def _promote(self):
        """Move keys whose time has come from the waiting heap to the queue."""
        now = self.clock()
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            if self._due.get(key) != due:
                continue            # superseded by an earlier add_after of the same key
            del self._due[key]
            self._add(key)

    # -- rate limiting --------------------------------------------------------------
    def add_rate_limited(self, key):
        """Queue a key again after the rate limiter's delay (a failed sync)."""
        with self._cond:
            delay = self.rate_limiter.when(key)
        if self.name:
            RETRIES.inc(self.name)
        self.add_after(key, delay)

    def forget(self, key):
        """Reset a key's backoff (a successful sync); it stays queued if it is."""
        with self._cond:
            self.rate_limiter.forget(key)

    def num_requeues(self, key):
        with self._cond:
            return self.rate_limiter.num_requeues(key)
