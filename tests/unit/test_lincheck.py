"""Tests for the linearizability checker in tests/support/lincheck.py."""

import itertools
import random
import threading

import pytest

from tests.support.lincheck import History, Op, check, check_history

_ids = itertools.count()


def op(kind, call, ret, value=None, output=None, key=b"k", status="ok", client=0):
    """Build an Op with an explicit [call, ret] interval."""
    return Op(next(_ids), client, kind, key, value, call, ret, output, status)


def w(call, ret, value, **kw):
    return op("write", call, ret, value, **kw)


def r(call, ret, output, **kw):
    return op("read", call, ret, output=output, **kw)


def cas(call, ret, expected, new, output, **kw):
    return op("cas", call, ret, (expected, new), output, **kw)


def delete(call, ret, **kw):
    return op("delete", call, ret, **kw)


def assert_ok(ops, **kw):
    result = check_history(ops, **kw)
    assert result.ok is True, result.explanation


def assert_bad(ops, key=b"k", **kw):
    result = check_history(ops, **kw)
    assert result.ok is False, "history should not be linearizable"
    assert result.key == key
    assert "could not linearize" in result.explanation
    return result


# --- Known-good histories -------------------------------------------------------


def test_empty_history_passes():
    assert check_history([]).ok is True


def test_sequential_history_passes():
    assert_ok([r(0, 1, None), w(2, 3, b"1"), r(4, 5, b"1"), w(6, 7, b"2"), r(8, 9, b"2")])


def test_overlapping_writes_and_reads_that_can_be_ordered_pass():
    # w2 must take effect before the first read, w1 after it; both fit their intervals.
    assert_ok([
        w(0, 10, b"1", client=1),
        w(1, 11, b"2", client=2),
        r(2, 3, b"2", client=3),
        r(4, 5, b"1", client=3),
        r(12, 13, b"1", client=3),
    ])


def test_read_concurrent_with_write_may_see_either_value():
    assert_ok([w(0, 1, b"old"), w(2, 10, b"new"), r(3, 4, b"new"), r(5, 6, b"new")])
    assert_ok([w(0, 1, b"old"), w(2, 10, b"new"), r(3, 4, b"old"), r(5, 6, b"new")])


def test_ambiguous_write_that_took_effect_passes():
    assert_ok([w(0, 1, b"1"), w(2, 3, b"2", status="info"), r(50, 51, b"2")])


def test_ambiguous_write_that_never_took_effect_passes():
    assert_ok([w(0, 1, b"1"), w(2, 3, b"2", status="info"), r(50, 51, b"1")])


def test_ambiguous_write_may_take_effect_long_after_the_client_gave_up():
    # Its completion counts as +infinity: the write may still land between the reads.
    assert_ok([w(0, 1, b"1"), w(2, 3, b"2", status="info"), r(10, 11, b"1"), r(20, 21, b"2")])


def test_never_completed_op_is_treated_as_ambiguous():
    assert_ok([w(0, None, b"1", status="pending"), r(5, 6, b"1"), r(7, None, b"x", status="pending")])


def test_failed_and_ambiguous_reads_are_dropped():
    assert_ok([w(0, 1, b"1"), r(2, 3, b"junk", status="info"), r(4, 5, b"junk", status="fail")])


def test_delete_makes_key_absent():
    assert_ok([w(0, 1, b"1"), delete(2, 3), r(4, 5, None), w(6, 7, b"2"), r(8, 9, b"2")])


def test_cas_success_and_failure_pass_when_consistent():
    assert_ok([
        w(0, 1, b"1"),
        cas(2, 3, b"1", b"2", True),
        cas(4, 5, b"1", b"3", False),
        r(6, 7, b"2"),
        cas(8, 9, b"2", b"4", None, status="info"),
        r(10, 11, b"4"),
    ])


def test_touching_intervals_count_as_concurrent():
    # Equal timestamps cannot tell us the order, so the read may precede the write.
    assert_ok([w(0, 5, b"1"), r(5, 6, None)])


def test_initial_values_are_respected():
    assert_ok([r(0, 1, b"0")], initial={b"k": b"0"})
    assert_bad([r(0, 1, b"0")])


def test_keys_are_checked_independently():
    # Per key both are fine even though the two keys' writes interleave.
    assert_ok([
        w(0, 1, b"1", key=b"a"),
        w(2, 3, b"1", key=b"b"),
        r(4, 5, b"1", key=b"a"),
        r(4, 5, b"1", key=b"b"),
    ])


# --- Known-bad histories --------------------------------------------------------


def test_stale_read_after_completed_write_fails():
    result = assert_bad([w(0, 1, b"1"), w(2, 3, b"2"), r(4, 5, b"1")])
    # The explanation names the offending read and its interval.
    assert "read -> b'1' [4, 5]" in result.explanation


def test_read_of_value_never_written_fails():
    assert_bad([w(0, 1, b"1"), r(2, 3, b"ghost")])


def test_non_monotonic_sequential_reads_fail():
    # The two reads are sequential, so once "2" is seen "1" may not come back.
    assert_bad([
        w(0, 1, b"1"),
        w(2, 20, b"2", client=1),
        r(3, 4, b"2", client=2),
        r(5, 6, b"1", client=2),
    ])


def test_lost_acknowledged_write_fails():
    assert_bad([w(0, 1, b"1"), r(2, 3, b"1"), w(4, 5, b"2"), r(6, 7, b"1")])
    assert_bad([w(0, 1, b"1"), r(2, 3, None)])


def test_cas_against_value_that_could_not_be_current_fails():
    assert_bad([w(0, 1, b"1"), w(2, 3, b"2"), cas(4, 5, b"1", b"3", True)])


def test_cas_reporting_failure_when_it_must_have_matched_fails():
    assert_bad([w(0, 1, b"1"), cas(2, 3, b"1", b"3", False)])


def test_ambiguous_write_cannot_take_effect_before_its_invoke():
    assert_bad([w(0, 1, b"1"), r(2, 3, b"2"), w(4, 5, b"2", status="info")])


def test_ambiguous_write_cannot_take_effect_and_then_be_undone():
    assert_bad([w(0, 1, b"1"), w(2, 3, b"2", status="info"), r(10, 11, b"2"), r(20, 21, b"1")])


def test_failed_write_must_not_be_observed():
    assert_bad([w(0, 1, b"1"), w(2, 3, b"2", status="fail"), r(4, 5, b"2")])


def test_read_after_completed_delete_must_see_absent():
    assert_bad([w(0, 1, b"1"), delete(2, 3), r(4, 5, b"1")])


def test_failing_key_is_named_among_good_ones():
    ops = [
        w(0, 1, b"1", key=b"good"),
        w(0, 1, b"1", key=b"bad"),
        r(2, 3, b"1", key=b"good"),
        r(2, 3, None, key=b"bad"),
    ]
    assert_bad(ops, key=b"bad")


# --- Search budget --------------------------------------------------------------


def hard_history(key=b"hard", writers=16):
    """Return overlapping writes then a bogus read: exponential work to refute."""
    ops = [w(0, 10, i, key=key, client=i) for i in range(writers)]
    return ops + [r(20, 21, "never", key=key)]


def test_step_budget_gives_unknown_instead_of_hanging():
    result = check_history(hard_history(), max_steps=1000)
    assert result.ok is None
    assert result.key == b"hard"
    assert "gave up" in result.explanation


def test_timeout_gives_unknown_instead_of_hanging():
    result = check_history(hard_history(), timeout=0.05)
    assert result.ok is None
    assert "timed out" in result.explanation


def test_definite_failure_wins_over_unknown():
    ops = hard_history() + [w(0, 1, b"1", key=b"bad"), r(2, 3, b"2", key=b"bad")]
    result = check_history(ops, max_steps=1000)
    assert result.ok is False and result.key == b"bad"


# --- History recording ----------------------------------------------------------


def test_history_records_intervals_and_statuses_with_injected_clock():
    h = History(clock=itertools.count().__next__)
    a = h.invoke(1, "write", b"k", b"1")
    b = h.invoke(2, "read", b"k")
    h.ok(a)
    h.ok(b, b"1")
    c = h.invoke(1, "cas", b"k", (b"1", b"2"))
    h.info(c)
    d = h.invoke(2, "delete", b"k")
    h.fail(d)
    assert [(o.call, o.ret, o.status) for o in h.ops] == [
        (0, 2, "ok"), (1, 3, "ok"), (4, 5, "info"), (6, 7, "fail")]
    assert check(h).ok is True


def test_history_rejects_misuse():
    h = History()
    with pytest.raises(ValueError):
        h.invoke(1, "increment", b"k")
    with pytest.raises(ValueError):
        h.invoke(1, "cas", b"k", b"not-a-pair")
    c = h.invoke(1, "cas", b"k", (None, b"1"))
    with pytest.raises(ValueError):
        h.ok(c)  # a completed cas must say whether it succeeded
    h.ok(c, True)
    with pytest.raises(ValueError):
        h.fail(c)  # already completed


def test_threaded_clients_on_a_real_register_pass():
    h, store, lock = History(), {}, threading.Lock()

    def client(cid):
        rng = random.Random(cid)
        for _ in range(50):
            key = rng.choice([b"a", b"b"])
            kind = rng.choice(["read", "write", "delete"])
            o = h.invoke(cid, kind, key, f"{cid}-{rng.random()}" if kind == "write" else None)
            with lock:  # the register's single linearization point
                out = store.get(key)
                if kind == "write":
                    store[key] = o.value
                elif kind == "delete":
                    store.pop(key, None)
            h.ok(o, out if kind == "read" else None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = check(h)
    assert result.ok is True, result.explanation


# --- Randomized: linearizable by construction, then corrupted -------------------


def random_history(rng, clients=5, ops_per_client=30, keys=(b"a", b"b", b"c")):
    """Run a sequential register under a random interleaving and record it.

    Each op is invoked, takes effect at one later step (its linearization point),
    then completes, with other clients' steps interleaved at random. Some ops fail
    (never applied) or end ambiguous (applied before, after or never), so the
    result is linearizable by construction and exercises every status.
    """
    h = History(clock=itertools.count().__next__)
    register, values = {}, itertools.count()
    budget = {c: ops_per_client for c in range(clients)}
    inflight = {}  # client -> [op, fate, applied, output]
    zombies = []  # ambiguous ops whose client gave up but which may still apply

    def apply(o):
        current = register.get(o.key)
        if o.kind == "write":
            register[o.key] = o.value
        elif o.kind == "delete":
            register.pop(o.key, None)
        elif o.kind == "cas":
            if current != o.value[0]:
                return False
            register[o.key] = o.value[1]
            return True
        return current

    while inflight or any(budget.values()) or zombies:
        if zombies and rng.random() < 0.05:
            zombie = zombies.pop(rng.randrange(len(zombies)))
            if rng.random() < 0.5:
                apply(zombie)
            continue
        idle = [c for c, n in budget.items() if n and c not in inflight]
        c = rng.choice(list(inflight) + idle) if inflight or idle else None
        if c is None:
            zombies.clear()
            continue
        if c not in inflight:
            budget[c] -= 1
            kind = rng.choice(["read", "read", "write", "delete", "cas"])
            key = rng.choice(keys)
            value = f"v{next(values)}".encode()
            if kind == "cas":
                value = (register.get(key) if rng.random() < 0.5 else b"v0", value)
            elif kind != "write":
                value = None
            fate = rng.choices(["ok", "fail", "info"], weights=[8, 1, 1])[0]
            inflight[c] = [h.invoke(c, kind, key, value), fate, False, None]
            continue
        o, fate, applied, _ = entry = inflight[c]
        if fate == "ok" and not applied:
            entry[2], entry[3] = True, apply(o)
        elif fate == "info" and not applied and rng.random() < 0.5:
            entry[2] = True
            apply(o)
        else:
            del inflight[c]
            if fate == "ok":
                h.ok(o, entry[3] if o.kind in ("read", "cas") else None)
            elif fate == "fail":
                h.fail(o)
            else:
                h.info(o)
                if not applied:
                    zombies.append(o)
    return h


@pytest.mark.parametrize("seed", range(25))
def test_random_linearizable_history_passes_and_corruption_fails(seed):
    rng = random.Random(seed)
    h = random_history(rng)
    result = check(h, timeout=5)
    assert result.ok is True, result.explanation

    reads = [o for o in h.ops if o.kind == "read" and o.status == "ok"]
    victim = rng.choice(reads)
    victim.output = b"never-written"
    result = check(h, timeout=5)
    assert result.ok is False
    assert result.key == victim.key
    assert "never-written" in result.explanation


# --- Cross-check against brute force on tiny arbitrary histories ----------------


def brute_force_linearizable(ops):
    """Try every order of every subset of ambiguous ops: slow but obviously right."""
    ops = [o for o in ops if o.status != "fail" and not (o.kind == "read" and o.ambiguous)]
    definite = [o for o in ops if not o.ambiguous]
    maybe = [o for o in ops if o.ambiguous]

    def ret(o):
        return float("inf") if o.ambiguous else o.ret

    def legal(order):
        state = None
        for i, o in enumerate(order):
            # Real-time order: nothing placed later may have returned before o began.
            if any(ret(later) < o.call for later in order[i + 1:]):
                return False
            if o.kind == "read" and o.output != state:
                return False
            if o.kind == "write":
                state = o.value
            elif o.kind == "delete":
                state = None
            elif o.kind == "cas":
                matched = state == o.value[0]
                if not o.ambiguous and o.output != matched:
                    return False
                state = o.value[1] if matched else state
        return True

    for size in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, size):
            if any(legal(p) for p in itertools.permutations(definite + list(chosen))):
                return True
    return False


def tiny_random_history(rng):
    values = [None, b"1", b"2"]
    ops = []
    for client in range(rng.randint(1, 6)):
        call = rng.randint(0, 8)
        ret = call + rng.randint(0, 4)
        kind = rng.choice(["read", "read", "write", "delete", "cas"])
        status = rng.choices(["ok", "fail", "info"], weights=[6, 1, 2])[0]
        value = output = None
        if kind == "write":
            value = rng.choice(values[1:])
        elif kind == "cas":
            value = (rng.choice(values), rng.choice(values[1:]))
        if status == "ok" and kind == "read":
            output = rng.choice(values)
        elif status == "ok" and kind == "cas":
            output = rng.random() < 0.5
        ops.append(op(kind, call, ret, value, output, status=status, client=client))
    return ops


def test_agrees_with_brute_force_on_tiny_random_histories():
    rng = random.Random(1234)
    verdicts = set()
    for _ in range(400):
        ops = tiny_random_history(rng)
        expected = brute_force_linearizable(ops)
        result = check_history(ops)
        assert result.ok is expected, "\n".join(map(str, ops))
        verdicts.add(expected)
    assert verdicts == {True, False}  # the generator must produce both kinds
