"""Crash-loop backoff: kubelet's sequence, cap and reset."""

from agent.backoff import Backoff


def test_sequence_doubles_to_the_cap():
    backoff = Backoff(10, 300, 600)
    now, delays = 0.0, []
    for _ in range(8):
        delays.append(backoff.next("k", now))
        now += 1
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_first_restart_is_immediate_then_waits():
    backoff = Backoff(10, 300, 600)
    assert not backoff.in_backoff_since("k", 0.0, 0.0)     # no entry: restart at once
    backoff.next("k", 0.0)
    assert backoff.in_backoff_since("k", 1.0, 5.0)          # crashed at 1, 4 s later: wait
    assert backoff.remaining("k", 1.0, 5.0) == 6.0
    assert not backoff.in_backoff_since("k", 1.0, 11.0)


def test_reset_after_running_long_enough():
    backoff = Backoff(10, 300, 600)
    for t in range(4):
        backoff.next("k", float(t))
    assert backoff.current("k") == 80
    assert backoff.next("k", 3.0 + 601) == 10               # untouched for > 10 min
    assert not backoff.in_backoff_since("k", 5000.0, 5000.0)  # expired entries do not hold


def test_keys_are_independent_and_forgettable():
    backoff = Backoff(0.2, 1.0, 5.0)
    backoff.next("a", 0.0)
    backoff.next("a", 0.0)
    assert backoff.next("b", 0.0) == 0.2
    backoff.forget("a")
    assert backoff.next("a", 0.0) == 0.2
