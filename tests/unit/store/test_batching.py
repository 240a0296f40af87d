"""Proposal batching: one Raft entry holds many requests, each answered on its own."""

import msgpack
import pytest

from store.batching import Batcher, pack_batch, settle_batch, unpack_entry
from store.machine import Machine
from store.raft import RaftNode


def put(key, value, **extra):
    return {"op": "txn", "compare": [], "success": [{"op": "put", "key": key, "value": value}],
            "failure": [], **extra}


def packed(command):
    return msgpack.packb(command, use_bin_type=True)


def test_batch_applies_in_order_each_at_its_own_revision():
    machine = Machine()
    applied = machine.apply_batch([put(b"a", b"1"), put(b"b", b"2"), put(b"a", b"3")])
    assert [result["revision"] for result, _ in applied] == [2, 3, 4]
    assert [[event["kv"]["mod_revision"] for event in events] for _, events in applied] == \
        [[2], [3], [4]]
    assert machine.range(b"a")["kvs"][0]["value"] == b"3"
    assert machine.range(b"a")["kvs"][0]["version"] == 2


def test_one_failing_request_does_not_fail_the_others():
    machine = Machine()
    machine.apply(put(b"k", b"old"))
    failed_compare = {"op": "txn", "failure": [],
                      "compare": [{"key": b"k", "target": "value", "result": "==",
                                   "value": b"other"}],
                      "success": [{"op": "put", "key": b"k", "value": b"never"}]}
    bad_lease = {"op": "txn", "compare": [], "failure": [],
                 "success": [{"op": "put", "key": b"x", "value": b"v", "lease": 99}]}
    applied = machine.apply_batch([put(b"a", b"1"), failed_compare, bad_lease,
                                   {"op": "no_such_op"}, put(b"b", b"2")])
    results = [result for result, _ in applied]
    assert results[0]["revision"] == 3
    assert results[1]["succeeded"] is False and results[1]["revision"] == 3
    assert results[2]["error"]["code"] == "lease_not_found"
    assert results[3]["error"]["code"] == "unknown_op"
    assert results[4]["revision"] == 4
    assert [len(events) for _, events in applied] == [1, 0, 0, 0, 1]
    assert machine.range(b"k")["kvs"][0]["value"] == b"old"
    assert machine.range(b"x")["count"] == 0


def test_batch_equals_the_same_commands_applied_one_by_one():
    commands = [put(b"a", b"1", client=7, req=1), {"op": "lease_grant", "ttl": 5},
                put(b"b", b"2", client=7, req=2), {"op": "compact", "revision": 2},
                {"op": "txn", "compare": [], "failure": [],
                 "success": [{"op": "delete", "key": b"a"}]}]
    one_by_one, batched = Machine(), Machine()
    singles = [one_by_one.apply(command) for command in commands]
    assert batched.apply_batch(commands) == singles
    assert batched == one_by_one


def test_retry_of_one_request_of_a_batch_answers_as_the_first_time():
    machine = Machine()
    first = machine.apply_batch([put(b"a", b"1", client=5, req=1),
                                 put(b"b", b"2", client=5, req=2),
                                 put(b"c", b"3", client=6, req=1)])
    revision = machine.revision
    # The client lost the reply to req 2 and retries it inside a later batch.
    again = machine.apply_batch([put(b"d", b"4", client=6, req=2),
                                 put(b"b", b"2", client=5, req=2)])
    assert again[1] == (first[1][0], [])
    assert machine.revision == revision + 1
    assert machine.range(b"b")["kvs"][0]["version"] == 1


def test_a_retry_inside_the_same_batch_applies_once():
    machine = Machine()
    applied = machine.apply_batch([put(b"a", b"1", client=5, req=1),
                                   put(b"a", b"1", client=5, req=1)])
    assert applied[0][0] == applied[1][0]
    assert applied[1][1] == []
    assert machine.range(b"a")["kvs"][0]["version"] == 1


def test_apply_batch_of_a_non_list_is_an_error_result_not_an_exception():
    [(result, events)] = Machine().apply_batch("nonsense")
    assert result["error"]["code"] == "invalid" and events == []


def test_entries_round_trip_and_legacy_single_commands_still_read():
    commands = [put(b"a", b"1"), {"op": "barrier"}]
    assert unpack_entry(pack_batch([packed(c) for c in commands])) == (commands, True)
    assert unpack_entry(packed(commands[0])) == ([commands[0]], False)


def test_batcher_splits_at_the_request_cap():
    batcher = Batcher(max_requests=2, max_bytes=1 << 20)
    for i in range(5):
        batcher.add(packed({"op": "barrier", "n": i}), i)
    assert batcher.full()
    batches = batcher.take()
    assert [callbacks for _, callbacks in batches] == [[0, 1], [2, 3], [4]]
    assert [unpack_entry(entry)[0] for entry, _ in batches][2] == [{"op": "barrier", "n": 4}]
    assert len(batcher) == 0 and batcher.take() == []


def test_batcher_splits_at_the_byte_cap_and_sends_an_oversized_command_alone():
    small, big = packed({"v": b"x" * 10}), packed({"v": b"x" * 200})
    batcher = Batcher(max_requests=100, max_bytes=2 * len(small))
    for name, command in [("s1", small), ("s2", small), ("s3", small), ("big", big),
                          ("s4", small)]:
        batcher.add(command, name)
    assert [callbacks for _, callbacks in batcher.take()] == \
        [["s1", "s2"], ["s3"], ["big"], ["s4"]]


def test_batcher_refuses_caps_below_one():
    with pytest.raises(ValueError, match="--max-batch-requests"):
        Batcher(max_requests=0)


def test_settle_answers_each_request_exactly_once():
    seen = []
    callbacks = [lambda r, f, i=i: seen.append((i, r, f)) for i in range(3)]
    settle_batch(callbacks, [{"n": 0}, {"n": 1}, {"n": 2}], None)
    assert seen == [(0, {"n": 0}, None), (1, {"n": 1}, None), (2, {"n": 2}, None)]
    seen.clear()
    settle_batch(callbacks, None, "leadership changed")
    assert seen == [(i, None, "leadership changed") for i in range(3)]


def test_settle_survives_a_failing_callback_and_a_result_mismatch():
    seen = []

    def broken(result, failure):
        raise RuntimeError("boom")

    settle_batch([broken, lambda r, f: seen.append((r, f))], [{"a": 1}, {"b": 2}], None)
    assert seen == [({"b": 2}, None)]
    seen.clear()
    settle_batch([lambda r, f: seen.append((r, f))], {"n": 1}, None)
    assert seen[0][0] is None and "do not match" in seen[0][1]
    seen.clear()
    broken_entry = {"error": {"code": "invalid", "message": "entry failed to apply"}}
    settle_batch([lambda r, f: seen.append((r, f))] * 2, broken_entry, None)
    assert seen == [(broken_entry, None)] * 2


def _apply_only_node(on_applied):
    """A RaftNode with just what ``_apply`` uses (no replica, sockets or files)."""
    node = RaftNode.__new__(RaftNode)
    node.machine, node._on_applied = Machine(), on_applied
    return node


def test_raft_apply_returns_one_result_per_request_and_calls_the_hook_for_each():
    seen = []
    node = _apply_only_node(lambda command, result, events: seen.append(result["revision"]))
    results = node._apply(pack_batch([packed(put(b"a", b"1")), packed(put(b"b", b"2"))]))
    assert [result["revision"] for result in results] == [2, 3] and seen == [2, 3]
    assert node._apply(packed(put(b"c", b"3")))["revision"] == 4  # a legacy entry
