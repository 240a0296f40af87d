"""The nftables proxy's sync policy: debounce, serialization, backoff, resync (fake clock)."""

import threading

import pytest

from agent.network.sync_runner import SyncRunner


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Recorder:
    """A sync that records (time, full) and fails while ``failing`` is set."""

    def __init__(self, clock):
        self.clock, self.calls, self.failing = clock, [], False

    def __call__(self, full):
        self.calls.append((self.clock(), full))
        if self.failing:
            raise RuntimeError("nft said no")


@pytest.fixture
def setup():
    clock = Clock()
    sync = Recorder(clock)
    done = []
    runner = SyncRunner(sync, clock=clock, wall=lambda: clock.now + 5e8, debounce=0.125,
                        resync=60, backoff_initial=1, backoff_max=8,
                        on_done=lambda triggers, now: done.append((triggers, now)))
    return clock, sync, runner, done


def first_sync(clock, sync, runner):
    assert runner.step() == pytest.approx(60)
    assert sync.calls == [(clock.now, True)]


def test_the_first_sync_is_full_and_immediate(setup):
    clock, sync, runner, _ = setup
    first_sync(clock, sync, runner)


def test_requests_within_the_debounce_window_share_one_sync(setup):
    clock, sync, runner, _ = setup
    first_sync(clock, sync, runner)
    clock.now += 5
    runner.request()
    assert runner.step() == pytest.approx(0.125)    # not yet: the window is open
    clock.now += 0.0625
    runner.request()
    runner.request()
    assert runner.step() == pytest.approx(0.0625)
    clock.now += 0.0625
    runner.step()
    assert sync.calls[1:] == [(clock.now, False)]
    assert runner.syncs == 2
    runner.step()                                   # nothing pending: no more syncs
    assert len(sync.calls) == 2


def test_a_request_during_a_sync_opens_the_next_window(setup):
    clock, sync, runner, _ = setup
    first_sync(clock, sync, runner)

    def sync_that_sees_a_change(full):
        sync.calls.append((clock.now, full))
        runner.request()                            # an event arrives meanwhile
    runner._sync = sync_that_sees_a_change
    clock.now += 1
    runner.request()
    clock.now += 0.125
    assert runner.step() == pytest.approx(0.125)    # the next one, a window later
    clock.now += 0.125
    runner._sync = sync
    runner.step()
    assert len(sync.calls) == 3


def test_syncs_never_overlap_when_run_on_its_thread():
    """Requests from many threads; the sync itself notices any overlap."""
    active, overlaps, count = [0], [], [0]
    lock = threading.Lock()

    def sync(full):
        with lock:
            active[0] += 1
            if active[0] > 1:
                overlaps.append(True)
        threading.Event().wait(0.001)
        with lock:
            active[0] -= 1
            count[0] += 1

    runner, stop = SyncRunner(sync, debounce=0.001), threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    thread.start()
    try:
        workers = [threading.Thread(target=lambda: [runner.request() for _ in range(200)])
                   for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        done = threading.Event()
        runner._on_done = lambda *_: done.set()
        runner.request()
        assert done.wait(10)
    finally:
        stop.set()
        runner.wake()
        thread.join(10)
    assert not overlaps and 1 <= count[0] <= 802


def test_a_failure_is_retried_with_growing_backoff_and_keeps_its_triggers(setup):
    clock, sync, runner, done = setup
    first_sync(clock, sync, runner)
    sync.failing = True
    runner.request(trigger=123.0)
    clock.now += 0.125
    assert runner.step() == pytest.approx(1)        # failed: retry in 1 s
    runner.request(trigger=124.0)                   # a new change waits for the retry too
    clock.now += 0.5
    assert runner.step() == pytest.approx(0.5)
    assert len(sync.calls) == 2
    clock.now += 0.5
    assert runner.step() == pytest.approx(2)        # failed again: 2 s
    assert runner.errors == 2 and runner.last_error == "nft said no"
    sync.failing = False
    clock.now += 2
    runner.step()
    assert runner.last_error is None and runner.syncs == 2
    assert done[-1] == ([123.0, 124.0], clock.now + 5e8)
    clock.now += 0.125
    runner.request()
    assert runner.step() == pytest.approx(0.125)    # backoff reset: a normal window


def test_backoff_is_capped(setup):
    clock, sync, runner, _ = setup
    sync.failing = True
    waits = []
    for _ in range(6):
        waits.append(runner.step())
        clock.now += waits[-1]
    assert waits == [1, 2, 4, 8, 8, 8]


def test_a_full_resync_runs_periodically(setup):
    clock, sync, runner, _ = setup
    first_sync(clock, sync, runner)
    clock.now += 30
    assert runner.step() == pytest.approx(30)
    clock.now += 30
    runner.step()
    assert sync.calls[-1] == (clock.now, True)
