"""Unit tests of the MVCC state machine against store/MACHINE_SPEC.md."""

import msgpack
import pytest

from store.dedupe import RequestCache
from store.machine import Machine, prefix_end

# ------------------------------------------------------------------ helpers


def put(key, value=b"v", lease=0, prev_kv=False):
    return {"op": "put", "key": key, "value": value, "lease": lease, "prev_kv": prev_kv}


def delete(key, range_end=None, prev_kv=False):
    return {"op": "delete", "key": key, "range_end": range_end, "prev_kv": prev_kv}


def rng(key, range_end=None, **options):
    return {"op": "range", "key": key, "range_end": range_end, **options}


def cmp(key, target, result, value):
    return {"key": key, "target": target, "result": result, "value": value}


def txn(*success, compare=(), failure=(), **extra):
    return {"op": "txn", "compare": list(compare), "success": list(success),
            "failure": list(failure), **extra}


def ok(machine, command):
    result, events = machine.apply(command)
    assert "error" not in result, result
    return result, events


def error_code(result):
    return result["error"]["code"]


def keys_of(result):
    return [kv["key"] for kv in result["kvs"]]


def values(machine):
    return {kv["key"]: kv["value"] for kv in machine.range(b"\0", b"\0")["kvs"]}


def machine_with(*keys):
    machine = Machine()
    for key in keys:
        ok(machine, txn(put(key, b"v-" + key)))
    return machine


# ------------------------------------------------------------- prefix_end


@pytest.mark.parametrize("prefix, end", [
    (b"a", b"b"),
    (b"/reg/pods/", b"/reg/pods0"),
    (b"a\xff", b"b"),
    (b"ab\xff\xff", b"ac"),
    (b"\xff", b"\0"),
    (b"\xff\xff", b"\0"),
    (b"", b"\0"),
])
def test_prefix_end(prefix, end):
    assert prefix_end(prefix) == end


# ---------------------------------------------------------------- basics


def test_new_machine_is_empty_at_revision_one():
    machine = Machine()
    assert (machine.revision, machine.compact_revision) == (1, 0)
    assert machine.range(b"\0", b"\0") == {"revision": 1, "kvs": [], "count": 0, "more": False}
    assert machine.lease_ids() == [] and machine.members() == {}


def test_put_creates_then_updates_then_recreates_after_delete():
    machine = Machine()
    ok(machine, txn(put(b"k", b"1")))
    ok(machine, txn(put(b"k", b"2", prev_kv=True)))
    assert machine.range(b"k")["kvs"] == [{"key": b"k", "value": b"2", "create_revision": 2,
                                           "mod_revision": 3, "version": 2, "lease": 0}]
    ok(machine, txn(delete(b"k")))
    ok(machine, txn(put(b"k", b"3")))
    kv = machine.range(b"k")["kvs"][0]
    assert (kv["create_revision"], kv["mod_revision"], kv["version"]) == (5, 5, 1)


def test_put_returns_prev_kv_only_when_asked():
    machine = machine_with(b"k")
    result, _ = ok(machine, txn(put(b"k", b"new")))
    assert result["responses"] == [{"op": "put", "prev_kv": None}]
    result, _ = ok(machine, txn(put(b"k", b"newer", prev_kv=True)))
    assert result["responses"][0]["prev_kv"]["value"] == b"new"
    result, _ = ok(machine, txn(put(b"fresh", prev_kv=True)))
    assert result["responses"][0]["prev_kv"] is None


def test_put_defaults_lease_and_prev_kv():
    machine = Machine()
    ok(machine, {"op": "txn", "success": [{"op": "put", "key": b"k", "value": b"v"}]})
    assert machine.range(b"k")["kvs"][0]["lease"] == 0


def test_value_size_limit_is_inclusive():
    machine = Machine()
    ok(machine, txn(put(b"big", b"x" * Machine.MAX_VALUE_BYTES)))
    result, events = machine.apply(txn(put(b"bigger", b"x" * (Machine.MAX_VALUE_BYTES + 1))))
    assert error_code(result) == "value_too_large" and events == []
    assert machine.revision == 2


# ---------------------------------------------------------------- ranges

RANGE_KEYS = (b"a", b"ab", b"abc", b"b", b"c\xff", b"d")


@pytest.mark.parametrize("key, range_end, expected", [
    (b"ab", None, [b"ab"]),
    (b"ab", b"", [b"ab"]),
    (b"zz", None, []),
    (b"a", b"b", [b"a", b"ab", b"abc"]),
    (b"ab", prefix_end(b"ab"), [b"ab", b"abc"]),
    (b"c\xff", prefix_end(b"c\xff"), [b"c\xff"]),
    (b"b", b"\0", [b"b", b"c\xff", b"d"]),
    (b"\0", b"\0", list(RANGE_KEYS)),
    (b"d", b"a", []),
    (b"b", b"b", []),
])
def test_key_range_selection(key, range_end, expected):
    machine = machine_with(*RANGE_KEYS)
    assert keys_of(machine.range(key, range_end)) == expected


@pytest.mark.parametrize("limit, count_only, kvs, more", [
    (0, False, 6, False),
    (2, False, 2, True),
    (6, False, 6, False),
    (7, False, 6, False),
    (0, True, 0, False),
    (2, True, 0, False),
])
@pytest.mark.parametrize("at_past_revision", [False, True])
def test_limit_count_more(limit, count_only, kvs, more, at_past_revision):
    machine = machine_with(*RANGE_KEYS)
    revision = machine.revision
    if at_past_revision:
        ok(machine, txn(delete(b"\0", b"\0")))
    result = machine.range(b"\0", b"\0", revision=revision if at_past_revision else 0,
                           limit=limit, count_only=count_only)
    assert (len(result["kvs"]), result["count"], result["more"]) == (kvs, 6, more)
    assert keys_of(result) == list(RANGE_KEYS[:kvs])
    assert result["revision"] == revision


def test_keys_only_blanks_values():
    machine = machine_with(b"a")
    kv = machine.range(b"a", keys_only=True)["kvs"][0]
    assert kv["value"] == b"" and kv["version"] == 1


def test_range_at_past_revisions_sees_old_values_and_deleted_keys():
    machine = Machine()
    ok(machine, txn(put(b"a", b"1"), put(b"b", b"1")))       # rev 2
    ok(machine, txn(put(b"a", b"2")))                          # rev 3
    ok(machine, txn(delete(b"b")))                             # rev 4
    ok(machine, txn(put(b"b", b"3")))                          # rev 5
    expected = {
        1: {},
        2: {b"a": b"1", b"b": b"1"},
        3: {b"a": b"2", b"b": b"1"},
        4: {b"a": b"2"},
        5: {b"a": b"2", b"b": b"3"},
    }
    for revision, state in expected.items():
        result = machine.range(b"\0", b"\0", revision=revision)
        assert {kv["key"]: kv["value"] for kv in result["kvs"]} == state
        assert result["revision"] == revision
    assert machine.range(b"b", revision=3)["kvs"][0]["mod_revision"] == 2


@pytest.mark.parametrize("kwargs, code", [
    ({"revision": 9}, "future_revision"),
    ({"revision": -1}, "invalid"),
    ({"revision": True}, "invalid"),
    ({"limit": -1}, "invalid"),
    ({"limit": "2"}, "invalid"),
    ({"keys_only": 1}, "invalid"),
    ({"range_end": "b"}, "invalid"),
])
def test_range_argument_errors(kwargs, code):
    assert error_code(machine_with(b"a").range(b"a", **kwargs)) == code


def test_range_refuses_non_bytes_key():
    result = Machine().range("a")
    assert error_code(result) == "invalid" and "bytes" in result["error"]["message"]


# ------------------------------------------------------------------ txn

COMPARE_CASES = [
    # (target, result, value, holds) against key b"k" = b"m" at version 2, create 2, mod 3
    ("value", "==", b"m", True),
    ("value", "!=", b"m", False),
    ("value", "<", b"n", True),
    ("value", ">", b"n", False),
    ("version", "==", 2, True),
    ("version", ">", 1, True),
    ("version", "<", 2, False),
    ("create", "==", 2, True),
    ("mod", "==", 3, True),
    ("mod", "!=", 3, False),
    ("lease", "==", 1, True),
    ("lease", "==", 0, False),
]


@pytest.mark.parametrize("target, result, value, holds", COMPARE_CASES)
def test_compare_on_existing_key(target, result, value, holds):
    machine = Machine()
    ok(machine, {"op": "lease_grant", "ttl": 10})
    ok(machine, txn(put(b"k", b"a", lease=1)))
    ok(machine, txn(put(b"k", b"m", lease=1)))
    outcome, _ = ok(machine, txn(compare=[cmp(b"k", target, result, value)]))
    assert outcome["succeeded"] is holds


@pytest.mark.parametrize("target, result, value, holds", [
    ("value", "==", b"", False),
    ("value", "!=", b"x", False),   # etcd: any value compare on a missing key is false
    ("value", ">", b"", False),
    ("version", "==", 0, True),
    ("create", "==", 0, True),
    ("mod", "<", 1, True),
    ("lease", "==", 0, True),
    ("version", ">", 0, False),
])
def test_compare_on_missing_key(target, result, value, holds):
    outcome, _ = ok(Machine(), txn(compare=[cmp(b"nope", target, result, value)]))
    assert outcome["succeeded"] is holds


def test_txn_runs_failure_branch_when_any_compare_fails():
    machine = machine_with(b"a")
    result, events = ok(machine, txn(put(b"s"), compare=[cmp(b"a", "version", "==", 1),
                                                         cmp(b"a", "version", "==", 5)],
                                     failure=[put(b"f")]))
    assert result["succeeded"] is False
    assert [e["kv"]["key"] for e in events] == [b"f"]
    assert values(machine).keys() == {b"a", b"f"}


def test_txn_writes_share_one_revision_and_events_are_in_op_order():
    machine = machine_with(b"old", b"x1", b"x2")
    result, events = ok(machine, txn(put(b"b"), delete(b"x", prefix_end(b"x")), put(b"a"),
                                     rng(b"old")))
    assert result["revision"] == machine.revision == 5
    assert [(e["type"], e["kv"]["key"]) for e in events] == [
        ("put", b"b"), ("delete", b"x1"), ("delete", b"x2"), ("put", b"a")]
    assert {e["kv"]["mod_revision"] for e in events} == {5}
    assert [r.get("op") for r in result["responses"]] == ["put", "delete", "put", None]
    assert result["responses"][1] == {"op": "delete", "deleted": 2, "prev_kvs": []}


def test_range_inside_txn_sees_earlier_writes_of_the_txn():
    machine = machine_with(b"a")
    result, _ = ok(machine, txn(rng(b"\0", b"\0"), put(b"b"), rng(b"\0", b"\0")))
    before, after = result["responses"][0], result["responses"][2]
    assert (keys_of(before), before["revision"]) == ([b"a"], 2)
    assert (keys_of(after), after["revision"]) == ([b"a", b"b"], 3)
    assert after == machine.range(b"\0", b"\0")


@pytest.mark.parametrize("command", [
    txn(),
    txn(rng(b"a")),
    txn(delete(b"missing"), delete(b"m", b"n")),
    txn(put(b"never"), compare=[cmp(b"a", "version", "==", 9)]),
])
def test_txn_that_writes_nothing_keeps_the_revision(command):
    machine = machine_with(b"a")
    result, events = ok(machine, command)
    assert events == [] and result["revision"] == machine.revision == 2
    assert machine.events_since(1, b"\0", b"\0")["events"][-1]["kv"]["mod_revision"] == 2


@pytest.mark.parametrize("ops", [
    [put(b"k"), put(b"k")],
    [put(b"k"), delete(b"k")],
    [delete(b"a", b"z"), put(b"k")],
    [delete(b"\0", b"\0"), put(b"k")],
])
def test_txn_refuses_writing_a_key_twice(ops):
    machine = machine_with(b"k")
    before = machine.to_snapshot()
    result, events = machine.apply(txn(*ops))
    assert error_code(result) == "invalid" and "duplicate key" in result["error"]["message"]
    assert events == [] and machine.to_snapshot() == before


def test_txn_allows_overlapping_deletes_and_checks_branches_separately():
    machine = machine_with(b"a", b"b")
    result, events = ok(machine, txn(delete(b"a", b"c"), delete(b"b"), failure=[put(b"a")]))
    assert result["responses"][1]["deleted"] == 0 and len(events) == 2


def test_delete_reports_count_and_prev_kvs_when_asked():
    machine = machine_with(b"a", b"b", b"c")
    result, events = ok(machine, txn(delete(b"a", b"c", prev_kv=True)))
    response = result["responses"][0]
    assert response["deleted"] == 2
    assert [kv["key"] for kv in response["prev_kvs"]] == [b"a", b"b"]
    assert events[0] == {
        "type": "delete",
        "kv": {"key": b"a", "value": b"", "create_revision": 0, "mod_revision": 5,
               "version": 0, "lease": 0},
        "prev_kv": {"key": b"a", "value": b"v-a", "create_revision": 2, "mod_revision": 2,
                    "version": 1, "lease": 0},
    }
    assert keys_of(machine.range(b"\0", b"\0")) == [b"c"]


def test_put_events_carry_prev_kv_always():
    machine = machine_with(b"k")
    _, events = ok(machine, txn(put(b"k", b"2")))
    assert events[0]["type"] == "put" and events[0]["prev_kv"]["value"] == b"v-k"
    assert events[0]["kv"]["version"] == 2


# --------------------------------------------------------------- errors

BAD_COMMANDS = [
    (None, "invalid"),
    ([], "invalid"),
    ({}, "invalid"),
    ({"op": 5}, "invalid"),
    ({"op": "watch"}, "unknown_op"),
    ({"op": "txn", "success": "put"}, "invalid"),
    ({"op": "txn", "success": [5]}, "invalid"),
    ({"op": "txn", "success": [{"op": "get", "key": b"a"}]}, "unknown_op"),
    ({"op": "txn", "success": [{"key": b"a"}]}, "invalid"),
    (txn(put("a")), "invalid"),
    (txn(put(b"")), "invalid"),
    (txn(put(b"a", "text")), "invalid"),
    (txn(put(b"a", lease="1")), "invalid"),
    (txn(put(b"a", lease=-1)), "invalid"),
    (txn(put(b"a", prev_kv=1)), "invalid"),
    (txn(delete(b"a", range_end=3)), "invalid"),
    (txn(rng(b"a", limit=-1)), "invalid"),
    (txn(compare=[cmp(b"a", "value", "==", 1)]), "invalid"),
    (txn(compare=[cmp(b"a", "version", "==", b"1")]), "invalid"),
    (txn(compare=[cmp(b"a", "version", "==", True)]), "invalid"),
    (txn(compare=[cmp(b"a", "size", "==", 1)]), "invalid"),
    (txn(compare=[cmp(b"a", "version", ">=", 1)]), "invalid"),
    (txn(compare=[cmp("a", "version", "==", 1)]), "invalid"),
    (txn(compare=["a"]), "invalid"),
    (txn(put(b"a"), failure=[put(b"b", "bad")]), "invalid"),   # both branches validated
    (txn(put(b"x"), client=1), "invalid"),
    (txn(put(b"x"), req=1), "invalid"),
    (txn(put(b"x"), client="c", req=1), "invalid"),
    (txn(put(b"a", lease=99)), "lease_not_found"),
    ({"op": "lease_grant", "ttl": 0}, "invalid"),
    ({"op": "lease_grant", "ttl": "5"}, "invalid"),
    ({"op": "lease_grant", "ttl": 5.0}, "invalid"),
    ({"op": "lease_grant"}, "invalid"),
    ({"op": "lease_revoke", "id": 99}, "lease_not_found"),
    ({"op": "lease_revoke", "id": "1"}, "invalid"),
    ({"op": "lease_keepalive", "id": 99}, "lease_not_found"),
    ({"op": "compact", "revision": 0}, "compacted"),
    ({"op": "compact", "revision": 99}, "future_revision"),
    ({"op": "compact", "revision": "2"}, "invalid"),
    ({"op": "member_set", "peer": "p:1", "name": "n"}, "invalid"),
    ({"op": "member_set", "peer": 1, "name": "n", "client": "c"}, "invalid"),
    ({"op": "member_del"}, "invalid"),
]


@pytest.mark.parametrize("command, code", BAD_COMMANDS)
def test_bad_commands_fail_cleanly_and_change_nothing(command, code):
    machine = machine_with(b"a", b"b")
    ok(machine, {"op": "lease_grant", "ttl": 5})
    before = machine.to_snapshot()
    result, events = machine.apply(command)
    assert set(result) == {"error"} and error_code(result) == code
    assert isinstance(result["error"]["message"], str) and len(result["error"]["message"]) > 10
    assert events == [] and machine.to_snapshot() == before


def test_unexpected_exception_becomes_invalid_and_changes_nothing(monkeypatch):
    machine = machine_with(b"a")
    before = machine.to_snapshot()

    def explode(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr("store.machine.compare_holds", explode)
    result, events = machine.apply(txn(put(b"b"), compare=[cmp(b"a", "version", "==", 1)]))
    assert error_code(result) == "invalid" and "boom" in result["error"]["message"]
    assert events == [] and machine.to_snapshot() == before


def test_lease_not_found_only_checks_the_chosen_branch():
    machine = machine_with(b"a")
    result, _ = ok(machine, txn(put(b"x", lease=42), compare=[cmp(b"a", "version", "==", 9)],
                                failure=[put(b"y")]))
    assert result["succeeded"] is False
    result, _ = machine.apply(txn(put(b"y"), put(b"x", lease=42)))
    assert error_code(result) == "lease_not_found" and b"y" in values(machine)  # from before


# --------------------------------------------------------------- leases


def test_lease_ids_count_from_one_and_grant_does_not_bump_revision():
    machine = Machine()
    grants = [ok(machine, {"op": "lease_grant", "ttl": ttl})[0] for ttl in (5, 7, 9)]
    assert [(g["id"], g["ttl"], g["revision"]) for g in grants] == [(1, 5, 1), (2, 7, 1), (3, 9, 1)]
    assert machine.lease_ids() == [(1, 5), (2, 7), (3, 9)]
    result, events = ok(machine, {"op": "lease_keepalive", "id": 2})
    assert result == {"revision": 1, "id": 2, "ttl": 7} and events == []


def test_lease_revoke_deletes_attached_keys_in_one_revision():
    machine = machine_with(b"plain")
    ok(machine, {"op": "lease_grant", "ttl": 5})
    ok(machine, txn(put(b"z", lease=1), put(b"m", lease=1)))           # rev 3
    ok(machine, txn(put(b"moved", lease=1)))                             # rev 4
    ok(machine, txn(put(b"moved", b"no lease")))                         # rev 5: detached
    result, events = ok(machine, {"op": "lease_revoke", "id": 1})
    assert result == {"revision": 6}
    assert [(e["type"], e["kv"]["key"], e["kv"]["mod_revision"]) for e in events] == [
        ("delete", b"m", 6), ("delete", b"z", 6)]
    assert [e["prev_kv"]["lease"] for e in events] == [1, 1]
    assert values(machine).keys() == {b"plain", b"moved"}
    assert machine.lease_ids() == []
    assert error_code(machine.apply({"op": "lease_keepalive", "id": 1})[0]) == "lease_not_found"


def test_revoking_a_lease_without_keys_keeps_the_revision():
    machine = Machine()
    ok(machine, {"op": "lease_grant", "ttl": 5})
    ok(machine, txn(put(b"k", lease=1)))
    ok(machine, txn(delete(b"k")))
    result, events = ok(machine, {"op": "lease_revoke", "id": 1})
    assert result == {"revision": 3} and events == []


# ------------------------------------------------------------ compaction


def compacted_machine():
    """Build history: a@2, b@3, a@4, delete b@5, c@6, then compact to 5."""
    machine = Machine()
    for command in (txn(put(b"a", b"1")), txn(put(b"b", b"1")), txn(put(b"a", b"2")),
                    txn(delete(b"b")), txn(put(b"c", b"1"))):
        ok(machine, command)
    result, events = ok(machine, {"op": "compact", "revision": 5})
    assert result == {"revision": 6, "compact_revision": 5} and events == []
    return machine


def test_compaction_keeps_reads_at_and_after_the_compact_revision():
    machine = compacted_machine()
    assert machine.compact_revision == 5 and machine.revision == 6
    for revision in (1, 2, 4):
        result = machine.range(b"a", revision=revision)
        assert error_code(result) == "compacted" and result["error"]["compact_revision"] == 5
    at_five = machine.range(b"\0", b"\0", revision=5)
    assert {kv["key"]: kv["value"] for kv in at_five["kvs"]} == {b"a": b"2"}
    assert keys_of(machine.range(b"\0", b"\0", revision=6)) == [b"a", b"c"]


def test_compaction_drops_old_versions_and_tombstones():
    machine = compacted_machine()
    snapshot = machine.to_snapshot()
    assert snapshot["keys"] == [[b"a", [[4, 2, 2, b"2", 0]]], [b"c", [[6, 6, 1, b"1", 0]]]]
    assert [revision for revision, _ in snapshot["history"]] == [6]


@pytest.mark.parametrize("revision, code", [(3, "compacted"), (5, "compacted"),
                                            (7, "future_revision")])
def test_compaction_errors(revision, code):
    machine = compacted_machine()
    result, _ = machine.apply({"op": "compact", "revision": revision})
    assert error_code(result) == code
    if code == "compacted":
        assert result["error"]["compact_revision"] == 5


def test_compacting_to_the_current_revision_keeps_current_reads():
    machine = compacted_machine()
    ok(machine, {"op": "compact", "revision": 6})
    assert keys_of(machine.range(b"\0", b"\0")) == [b"a", b"c"]
    assert machine.events_since(7, b"\0", b"\0") == {"events": [], "revision": 6}


# ---------------------------------------------------------------- events


def test_events_since_filters_by_revision_and_range():
    machine = Machine()
    ok(machine, txn(put(b"a"), put(b"b")))   # 2
    ok(machine, txn(put(b"c")))              # 3
    ok(machine, txn(delete(b"a")))           # 4

    def since(start, key, range_end=None):
        result = machine.events_since(start, key, range_end)
        assert result["revision"] == 4
        return [(e["type"], e["kv"]["key"], e["kv"]["mod_revision"]) for e in result["events"]]

    assert since(1, b"\0", b"\0") == [("put", b"a", 2), ("put", b"b", 2), ("put", b"c", 3),
                                      ("delete", b"a", 4)]
    assert since(3, b"\0", b"\0") == [("put", b"c", 3), ("delete", b"a", 4)]
    assert since(1, b"a") == [("put", b"a", 2), ("delete", b"a", 4)]
    assert since(1, b"b", b"d") == [("put", b"b", 2), ("put", b"c", 3)]
    assert since(5, b"\0", b"\0") == []
    assert since(0, b"\0", b"\0") == []       # 0 means "from now on", as etcd's watch


def test_events_since_errors():
    machine = compacted_machine()
    result = machine.events_since(5, b"a")
    assert error_code(result) == "compacted" and result["error"]["compact_revision"] == 5
    assert len(machine.events_since(6, b"\0", b"\0")["events"]) == 1
    assert error_code(machine.events_since(-1, b"a")) == "invalid"
    assert error_code(machine.events_since(1, "a")) == "invalid"


def test_returned_events_can_be_stripped_without_touching_history():
    machine = Machine()
    _, events = ok(machine, txn(put(b"a")))
    events[0].pop("prev_kv")
    machine.events_since(1, b"a")["events"][0].pop("prev_kv")
    assert "prev_kv" in machine.events_since(1, b"a")["events"][0]


# ------------------------------------------------------- barrier, members


def test_barrier_changes_nothing():
    machine = machine_with(b"a")
    before = machine.to_snapshot()
    assert machine.apply({"op": "barrier"}) == ({"revision": 2}, [])
    assert machine.to_snapshot() == before


def test_members_set_replace_and_delete():
    machine = Machine()
    ok(machine, {"op": "member_set", "peer": "10.0.0.2:4321", "name": "b", "client": "h:2"})
    ok(machine, {"op": "member_set", "peer": "10.0.0.1:4321", "name": "a", "client": "h:1"})
    ok(machine, {"op": "member_set", "peer": "10.0.0.2:4321", "name": "b2", "client": "h:3"})
    assert machine.members() == {"10.0.0.1:4321": {"name": "a", "client": "h:1"},
                                 "10.0.0.2:4321": {"name": "b2", "client": "h:3"}}
    assert ok(machine, {"op": "member_del", "peer": "10.0.0.1:4321"})[0] == {"revision": 1}
    ok(machine, {"op": "member_del", "peer": "unknown"})
    assert list(machine.members()) == ["10.0.0.2:4321"]
    machine.members()["10.0.0.2:4321"]["name"] = "mutated copy"
    assert machine.members()["10.0.0.2:4321"]["name"] == "b2"


# ----------------------------------------------------------- exactly-once


def test_retried_request_returns_first_result_without_applying_again():
    machine = Machine()
    first, events = ok(machine, txn(put(b"k", b"1"), client=7, req=1))
    assert len(events) == 1
    snapshot = machine.to_snapshot()
    again, events = machine.apply(txn(put(b"k", b"1"), client=7, req=1))
    assert again == first and events == []
    assert machine.to_snapshot() == snapshot and machine.revision == 2
    _, events = ok(machine, txn(put(b"k", b"1"), client=7, req=2))     # new req applies
    assert len(events) == 1
    _, events = ok(machine, txn(put(b"k", b"1"), client=8, req=1))     # other client applies
    assert len(events) == 1 and machine.range(b"k")["kvs"][0]["version"] == 3


def test_retried_lease_grant_returns_the_same_lease():
    machine = Machine()
    first, _ = ok(machine, {"op": "lease_grant", "ttl": 5, "client": 1, "req": 9})
    again, _ = ok(machine, {"op": "lease_grant", "ttl": 5, "client": 1, "req": 9})
    assert again == first and machine.lease_ids() == [(1, 5)]


def test_failed_requests_are_not_remembered():
    machine = Machine()
    result, _ = machine.apply({"op": "compact", "revision": 2, "client": 1, "req": 1})
    assert error_code(result) == "future_revision"
    ok(machine, txn(put(b"a")))
    result, _ = ok(machine, {"op": "compact", "revision": 2, "client": 1, "req": 1})
    assert result["compact_revision"] == 2


def test_member_set_client_field_is_an_address_not_a_request_id():
    machine = Machine()
    command = {"op": "member_set", "peer": "p", "name": "n", "client": "h:1", "req": 1}
    ok(machine, command)
    ok(machine, command)
    assert machine.members() == {"p": {"name": "n", "client": "h:1"}}


def test_request_cache_bounds_requests_per_client_and_clients():
    cache = RequestCache(max_clients=2, max_requests=3)
    for req in range(5):
        cache.remember(1, req, {"req": req})
    assert [cache.lookup(1, req) is not None for req in range(5)] == [False, False, True, True,
                                                                        True]
    cache.remember(2, 0, {})
    cache.lookup(1, 4)              # client 1 is now the most recently active
    cache.remember(3, 0, {})        # so client 2 is dropped
    assert cache.lookup(2, 0) is None
    assert cache.lookup(1, 4) == {"req": 4} and cache.lookup(3, 0) == {}


def test_machine_forgets_least_recently_active_client():
    machine = Machine()
    machine._requests = RequestCache(max_clients=2, max_requests=2)
    for client in (1, 2, 3):
        ok(machine, txn(put(b"k"), client=client, req=1))
    _, events = ok(machine, txn(put(b"k"), client=1, req=1))
    assert len(events) == 1                        # client 1 was forgotten: applies again
    _, events = ok(machine, txn(put(b"k"), client=3, req=1))
    assert events == []


# -------------------------------------------------------------- snapshots


def busy_machine():
    machine = Machine()
    ok(machine, {"op": "lease_grant", "ttl": 30, "client": 1, "req": 1})
    ok(machine, {"op": "lease_grant", "ttl": 60})
    ok(machine, txn(put(b"a", b"1", lease=1), put(b"b", b"1"), client=1, req=2))
    ok(machine, txn(put(b"a", b"2", lease=1), put(b"c", b"\xff\x00", lease=2)))
    ok(machine, txn(delete(b"b"), put(b"d", b"x"), client=2, req=1))
    ok(machine, {"op": "compact", "revision": 3})
    ok(machine, txn(put(b"b", b"back")))
    ok(machine, {"op": "member_set", "peer": "p:1", "name": "n1", "client": "h:1"})
    return machine


def round_trip(machine):
    packed = msgpack.packb(machine.to_snapshot(), use_bin_type=True)
    return Machine.from_snapshot(msgpack.unpackb(packed, raw=False))


def test_snapshot_round_trip_through_msgpack_is_equal_in_every_observable_way():
    machine = busy_machine()
    copy = round_trip(machine)
    assert copy == machine and copy is not machine
    assert (copy.revision, copy.compact_revision) == (machine.revision, machine.compact_revision)
    for revision in range(machine.compact_revision, machine.revision + 1):
        assert copy.range(b"\0", b"\0", revision=revision) == \
            machine.range(b"\0", b"\0", revision=revision)
    for start in range(machine.compact_revision + 1, machine.revision + 2):
        assert copy.events_since(start, b"\0", b"\0") == machine.events_since(start, b"\0", b"\0")
    assert copy.lease_ids() == machine.lease_ids() and copy.members() == machine.members()
    for twin in (machine, copy):       # the same commands keep them identical
        assert twin.apply(txn(put(b"a"), client=1, req=2))[1] == []       # remembered
        assert twin.apply({"op": "lease_grant", "ttl": 1})[0]["id"] == 3  # counter kept
        result, events = twin.apply({"op": "lease_revoke", "id": 1})    # key sets rebuilt
        assert result == {"revision": 6} and [e["kv"]["key"] for e in events] == [b"a"]
    assert copy == machine


def test_snapshot_is_deterministic_and_uses_str_keys_only():
    packed = [msgpack.packb(busy_machine().to_snapshot(), use_bin_type=True) for _ in range(2)]
    assert packed[0] == packed[1]
    packed.append(msgpack.packb(round_trip(busy_machine()).to_snapshot(), use_bin_type=True))
    assert packed[2] == packed[0]

    def check_keys(value):
        if isinstance(value, dict):
            assert all(isinstance(key, str) for key in value)
            value = list(value.values())
        if isinstance(value, list | tuple):
            for item in value:
                check_keys(item)

    check_keys(busy_machine().to_snapshot())


def test_from_snapshot_refuses_unknown_format():
    with pytest.raises(ValueError, match="format"):
        Machine.from_snapshot({"format": 99})


def test_machines_with_different_state_are_not_equal():
    assert Machine() != machine_with(b"a")
    assert Machine() != "machine"
