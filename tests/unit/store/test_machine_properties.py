"""Property tests of the state machine: determinism, revisions, events, MVCC reads."""

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store.machine import Machine, prefix_end

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

KEYS = [b"a", b"ab", b"b", b"c", b"d\xff"]
keys = st.sampled_from(KEYS)
values = st.binary(max_size=3)
lease_ids = st.integers(min_value=0, max_value=4)


@st.composite
def range_ends(draw, key):
    """Draw a range_end for ``key``: single key, prefix, open-ended or an interval."""
    return draw(st.sampled_from([None, None, None, prefix_end(key), b"\0", b"c"]))


@st.composite
def ops(draw):
    kind = draw(st.sampled_from(["put", "put", "put", "delete", "range"]))
    key = draw(keys)
    if kind == "put":
        return {"op": "put", "key": key, "value": draw(values),
                "lease": draw(st.sampled_from([0] * 6 + [1, 2])), "prev_kv": draw(st.booleans())}
    if kind == "delete":
        return {"op": "delete", "key": key, "range_end": draw(range_ends(key)),
                "prev_kv": draw(st.booleans())}
    return {"op": "range", "key": key, "range_end": draw(range_ends(key)),
            "limit": draw(st.integers(0, 2)), "keys_only": draw(st.booleans())}


@st.composite
def compares(draw):
    target = draw(st.sampled_from(["value", "version", "create", "mod", "lease"]))
    value = draw(values) if target == "value" else draw(st.integers(0, 6))
    return {"key": draw(keys), "target": target,
            "result": draw(st.sampled_from(["==", "!=", "<", ">"])), "value": value}


# Ops of a branch mostly use distinct keys so that most txns are valid; a range
# delete can still clash with a put, which exercises the duplicate-key error.
txns = st.builds(
    lambda compare, success, failure: {"op": "txn", "compare": compare, "success": success,
                                       "failure": failure},
    st.lists(compares(), max_size=1),
    st.lists(ops(), min_size=1, max_size=3, unique_by=lambda op: op["key"]),
    st.lists(ops(), max_size=2, unique_by=lambda op: op["key"]))

other_commands = st.one_of(
    st.builds(lambda ttl: {"op": "lease_grant", "ttl": ttl}, st.integers(0, 3)),
    st.builds(lambda ttl: {"op": "lease_grant", "ttl": ttl}, st.integers(1, 3)),
    st.builds(lambda i: {"op": "lease_revoke", "id": i}, lease_ids),
    st.builds(lambda i: {"op": "lease_keepalive", "id": i}, lease_ids),
    st.just({"op": "barrier"}),
    st.builds(lambda p, n: {"op": "member_set", "peer": p, "name": n, "client": "h:" + p},
              st.sampled_from(["p1", "p2"]), st.sampled_from(["x", "y"])),
    st.builds(lambda p: {"op": "member_del", "peer": p}, st.sampled_from(["p1", "p2"])),
)
compactions = st.builds(lambda n: {"op": "compact", "revision": n}, st.integers(0, 8))
# Mostly untagged, so that the few tagged commands retry one another now and then.
request_ids = st.one_of(st.none(), st.none(), st.none(),
                        st.tuples(st.integers(1, 2), st.integers(1, 6)))


@st.composite
def commands(draw, compact=True):
    """Draw a command, mostly txns, sometimes tagged with a (client, req) that may repeat."""
    kinds = ["txn"] * 6 + ["other"] * 2 + (["compact"] if compact else [])
    strategy = {"txn": txns, "other": other_commands, "compact": compactions}
    command = draw(strategy[draw(st.sampled_from(kinds))])
    request = draw(request_ids)
    if request is not None and command["op"] != "member_set":
        command = {**command, "client": request[0], "req": request[1]}
    return command


def all_values(machine, revision=0):
    result = machine.range(b"\0", b"\0", revision=revision)
    return {kv["key"]: kv["value"] for kv in result["kvs"]}


@SETTINGS
@given(st.lists(commands(), min_size=5, max_size=30), st.integers(0, 30))
def test_replay_is_deterministic_and_snapshots_can_take_over(sequence, cut):
    first, second = Machine(), Machine()
    outputs = [(first.apply(c), second.apply(c)) for c in sequence]
    assert all(a == b for a, b in outputs)
    assert first.to_snapshot() == second.to_snapshot()
    packed = [msgpack.packb(m.to_snapshot(), use_bin_type=True) for m in (first, second)]
    assert packed[0] == packed[1]

    # A follower restored from a snapshot mid-way must end in the same state.
    leader = Machine()
    for command in sequence[:cut]:
        leader.apply(command)
    snapshot = msgpack.unpackb(msgpack.packb(leader.to_snapshot(), use_bin_type=True),
                               raw=False)
    follower = Machine.from_snapshot(snapshot)
    for command in sequence[cut:]:
        assert follower.apply(command) == leader.apply(command)
    assert follower == leader == first


@SETTINGS
@given(st.lists(commands(), min_size=5, max_size=30))
def test_revision_moves_by_one_exactly_when_something_is_written(sequence):
    machine, answered = Machine(), {}
    for command in sequence:
        before = machine.revision
        result, events = machine.apply(command)
        assert machine.revision == before + (1 if events else 0)
        assert all(e["kv"]["mod_revision"] == machine.revision for e in events)
        request = (command.get("client"), command.get("req"))
        if request in answered:        # a retry: the first answer again, nothing applied
            assert result == answered[request] and events == []
        elif "error" in result:
            assert events == [] and machine.revision == before
        else:
            assert result["revision"] == machine.revision
            if command.get("req") is not None:
                answered[request] = result


@SETTINGS
@given(st.lists(commands(compact=False), min_size=5, max_size=30))
def test_events_are_exactly_the_committed_changes(sequence):
    machine, emitted, replayed = Machine(), [], {}
    states = {1: {}}                 # revision -> key/value state at that revision
    for command in sequence:
        _, events = machine.apply(command)
        emitted.extend(events)
        for event in events:
            if event["type"] == "put":
                replayed[event["kv"]["key"]] = event["kv"]["value"]
            else:
                del replayed[event["kv"]["key"]]   # a delete event implies the key existed
        states[machine.revision] = dict(replayed)
    assert replayed == all_values(machine)
    assert machine.events_since(1, b"\0", b"\0")["events"] == emitted
    for revision, state in states.items():
        assert all_values(machine, revision) == state


@SETTINGS
@given(st.lists(commands(), min_size=5, max_size=30))
def test_reads_after_compaction_match_the_states_they_had(sequence):
    machine, states = Machine(), {1: {}}
    for command in sequence:
        machine.apply(command)
        states[machine.revision] = all_values(machine)
    for revision, state in states.items():
        result = machine.range(b"\0", b"\0", revision=revision)
        if revision < machine.compact_revision:
            assert result["error"]["code"] == "compacted"
        else:
            assert {kv["key"]: kv["value"] for kv in result["kvs"]} == state
