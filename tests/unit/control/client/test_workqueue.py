"""RateLimitingQueue: client-go's dedup, processing, delay and rate-limit semantics."""

import threading

import pytest

from control.client.workqueue import (
    BucketRateLimiter,
    ItemExponentialRateLimiter,
    RateLimitingQueue,
)


class FakeClock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def q(clock):
    return RateLimitingQueue(clock=clock)


def drain(q):
    keys = []
    while (key := q.get(timeout=0)) is not None:
        keys.append(key)
    return keys


def test_fifo_and_dedup_while_queued(q):
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert len(q) == 3
    assert drain(q) == ["a", "b", "c"]
    assert q.get(timeout=0) is None


def test_key_added_while_processing_is_requeued_only_after_done(q):
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")
    q.add("a")
    assert q.get(timeout=0) is None, "a held key must not be handed to a second worker"
    q.done("a")
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert q.get(timeout=0) is None


def test_done_without_readd_does_not_requeue(q):
    q.add("a")
    q.get(timeout=0)
    q.done("a")
    assert len(q) == 0


def test_add_after_waits_for_the_clock_and_keeps_the_earliest_time(q, clock):
    q.add_after("a", 5)
    q.add_after("b", 2)
    q.add_after("a", 10)          # later than the pending time: ignored
    q.add_after("c", 0)           # no delay: queued now
    assert drain(q) == ["c"]
    clock.advance(2)
    assert drain(q) == ["b"]
    clock.advance(2.9)
    assert q.get(timeout=0) is None
    clock.advance(0.1)
    assert drain(q) == ["a"]
    q.add_after("d", 5)
    q.add_after("d", 1)           # earlier: wins
    clock.advance(1)
    assert drain(q) == ["d"]
    clock.advance(10)
    assert drain(q) == [], "the superseded later entry must not fire again"


def test_delayed_key_already_queued_is_not_duplicated(q, clock):
    q.add("a")
    q.add_after("a", 1)
    clock.advance(1)
    assert drain(q) == ["a"]


def test_rate_limited_backoff_doubles_per_key_and_forget_resets(q, clock):
    for expected in (0.005, 0.01, 0.02, 0.04):
        q.add_rate_limited("a")
        clock.advance(expected * 0.99)
        assert q.get(timeout=0) is None, f"due before {expected}s"
        clock.advance(expected * 0.02)
        assert q.get(timeout=0) == "a", f"not due after {expected}s"
        q.done("a")
    assert q.num_requeues("a") == 4
    assert q.num_requeues("b") == 0
    q.forget("a")
    assert q.num_requeues("a") == 0


def test_item_backoff_is_capped():
    limiter = ItemExponentialRateLimiter(0.005, 1000.0)
    delays = [limiter.when("k") for _ in range(30)]
    assert delays[0] == 0.005 and delays[1] == 0.01
    assert max(delays) == 1000.0 and delays[-1] == 1000.0
    assert limiter.when("other") == 0.005
    for _ in range(2000):
        limiter.when("k")           # no overflow however long it keeps failing
    assert limiter.when("k") == 1000.0


def test_bucket_allows_a_burst_then_paces_at_qps(clock):
    bucket = BucketRateLimiter(qps=10, burst=100, clock=clock)
    assert [bucket.when(i) for i in range(100)] == [0.0] * 100
    assert bucket.when("x") == pytest.approx(0.1)
    assert bucket.when("y") == pytest.approx(0.2)
    clock.advance(10)               # refills, but never above the burst
    assert all(bucket.when(i) == 0.0 for i in range(98))


def test_overall_bucket_limits_many_distinct_keys(q, clock):
    for i in range(110):
        q.add_rate_limited(f"k{i}")
    assert len(q) == 0, "even a first failure waits the per-item 5 ms"
    clock.advance(0.005)
    assert len(q) == 100, "then the burst of 100 is due at once"
    clock.advance(0.5)
    assert len(q) == 105
    clock.advance(0.5)
    assert len(q) == 110


def test_shutdown_drains_queued_keys_then_returns_none_and_drops_adds(q, clock):
    q.add("a")
    q.add_after("later", 1)
    q.shutdown()
    q.add("b")
    assert q.shutting_down
    assert q.get(timeout=0) == "a"
    clock.advance(5)
    assert q.get() is None          # no block after shutdown, even without a timeout


def test_get_blocks_until_add_or_shutdown():
    q = RateLimitingQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(q.get(timeout=10)))
    worker.start()
    q.add("x")
    worker.join(10)
    assert got == ["x"]
    waiter = threading.Thread(target=lambda: got.append(q.get()))
    waiter.start()
    q.shutdown()
    waiter.join(10)
    assert not waiter.is_alive() and got == ["x", None]


def test_get_times_out():
    assert RateLimitingQueue().get(timeout=0.01) is None


def test_each_key_is_processed_by_one_worker_at_a_time():
    q = RateLimitingQueue()
    active, overlaps, processed = set(), [], []
    lock = threading.Lock()

    def worker():
        while (key := q.get(timeout=5)) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            with lock:
                active.discard(key)
                processed.append(key)
            q.done(key)

    workers = [threading.Thread(target=worker) for _ in range(4)]
    for w in workers:
        w.start()
    for i in range(2000):
        q.add(f"k{i % 7}")
    q.shutdown()
    for w in workers:
        w.join(10)
    assert not overlaps
    assert set(processed) == {f"k{i}" for i in range(7)}
