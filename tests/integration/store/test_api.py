"""The client API against one shared 3-node cluster of real `steer-store` processes.

Each test uses its own key prefix, so the tests do not depend on each other's data;
compaction only ever compacts revisions older than the test that runs it.
"""

import itertools
import time

import pytest

from store.client import Compacted, LeaseNotFound, NotFound
from tests.support.storeproc import node_client, wait_for

HEADER_FIELDS = {"cluster_id", "member_id", "revision", "raft_term"}


def value_of(result):
    kvs = result["kvs"]
    return kvs[0]["value"] if kvs else None


# -- 1. every node serves linearizable reads of writes made through any other ----------
def test_write_through_any_node_read_from_any_other(cluster):
    clients = [node_client(cluster, i) for i in range(len(cluster.nodes))]
    try:
        for i, j in itertools.permutations(range(len(clients)), 2):
            key, value = f"rw/{i}-{j}".encode(), f"written via {i}".encode()
            put = clients[i].put(key, value)
            got = clients[j].get(key)
            assert value_of(got) == value, f"write via node {i} not seen by node {j}"
            assert got["header"]["revision"] >= put["revision"]
    finally:
        for c in clients:
            c.close()


# -- 2. key-value basics ---------------------------------------------------------------
def test_put_get_delete(client):
    first = client.put(b"kv/a", b"1")
    second = client.put(b"kv/a", b"2", prev_kv=True)
    assert second["revision"] == first["revision"] + 1
    assert second["prev_kv"]["value"] == b"1"
    kv = client.get(b"kv/a")["kvs"][0]
    assert kv["value"] == b"2"
    assert kv["version"] == 2
    assert kv["create_revision"] == first["revision"]
    assert kv["mod_revision"] == second["revision"]

    deleted = client.delete(b"kv/a", prev_kv=True)
    assert deleted["deleted"] == 1
    assert deleted["prev_kvs"][0]["value"] == b"2"
    assert client.get(b"kv/a")["kvs"] == []
    assert client.delete(b"kv/a")["deleted"] == 0


def test_prefix_range_limit_count_keys_only(client):
    for i in range(5):
        client.put(f"range/{i}".encode(), f"value-{i}".encode())
    client.put(b"range0", b"outside the prefix")
    client.put(b"rang", b"outside too")

    everything = client.get_prefix(b"range/")
    assert [kv["key"] for kv in everything["kvs"]] == [f"range/{i}".encode() for i in range(5)]
    assert everything["count"] == 5 and everything["more"] is False

    limited = client.get_prefix(b"range/", limit=2)
    assert [kv["key"] for kv in limited["kvs"]] == [b"range/0", b"range/1"]
    assert limited["count"] == 5 and limited["more"] is True

    counted = client.get_prefix(b"range/", count_only=True)
    assert counted["kvs"] == [] and counted["count"] == 5

    keys = client.get_prefix(b"range/", keys_only=True)
    assert [kv["key"] for kv in keys["kvs"]] == [f"range/{i}".encode() for i in range(5)]
    assert all(kv["value"] == b"" for kv in keys["kvs"])

    # An explicit [key, range_end) interval, and deleting a whole prefix at once.
    interval = client.get(b"range/1", range_end=b"range/3")
    assert [kv["key"] for kv in interval["kvs"]] == [b"range/1", b"range/2"]
    assert client.delete(b"range/", range_end=b"range0")["deleted"] == 5
    assert client.get_prefix(b"range/", count_only=True)["count"] == 0


def test_get_at_an_old_revision(client):
    old = client.put(b"old/k", b"v1")["revision"]
    client.put(b"old/k", b"v2")
    client.delete(b"old/k")
    assert value_of(client.get(b"old/k", revision=old)) == b"v1"
    assert value_of(client.get(b"old/k", revision=old + 1)) == b"v2"
    assert value_of(client.get(b"old/k")) is None


def test_txn_success_and_failure_branches(client):
    rev = client.put(b"txn/k", b"a")["revision"]
    compare = [{"key": b"txn/k", "target": "value", "result": "==", "value": b"a"},
               {"key": b"txn/k", "target": "mod", "result": "==", "value": rev}]
    ok = client.txn(compare,
                    success=[{"op": "put", "key": b"txn/k", "value": b"b"},
                             {"op": "put", "key": b"txn/other", "value": b"x"}],
                    failure=[{"op": "put", "key": b"txn/failed", "value": b"1"}])
    assert ok["succeeded"] is True
    assert ok["revision"] == rev + 1, "all writes of one txn share one revision"
    assert value_of(client.get(b"txn/k")) == b"b"
    assert value_of(client.get(b"txn/other")) == b"x"

    # The same compare now fails: the failure branch runs (and can read).
    failed = client.txn(compare,
                        success=[{"op": "put", "key": b"txn/k", "value": b"c"}],
                        failure=[{"op": "put", "key": b"txn/failed", "value": b"1"},
                                 {"op": "range", "key": b"txn/k"}])
    assert failed["succeeded"] is False
    assert failed["responses"][1]["kvs"][0]["value"] == b"b"
    assert value_of(client.get(b"txn/k")) == b"b"
    assert value_of(client.get(b"txn/failed")) == b"1"

    # A compare on a missing key: version 0.
    create = client.txn([{"key": b"txn/new", "target": "version", "result": "==", "value": 0}],
                        success=[{"op": "put", "key": b"txn/new", "value": b"created"}])
    assert create["succeeded"] is True
    again = client.txn([{"key": b"txn/new", "target": "version", "result": "==", "value": 0}],
                       success=[{"op": "put", "key": b"txn/new", "value": b"twice"}])
    assert again["succeeded"] is False
    assert value_of(client.get(b"txn/new")) == b"created"


# -- leases ----------------------------------------------------------------------------
def test_lease_grant_attach_revoke(client):
    lease = client.lease_grant(60)
    assert lease["ttl"] == 60
    client.put(b"lease/revoked", b"v", lease=lease["id"])
    assert client.get(b"lease/revoked")["kvs"][0]["lease"] == lease["id"]
    client.lease_revoke(lease["id"])
    assert client.get(b"lease/revoked")["kvs"] == []
    with pytest.raises(LeaseNotFound):
        client.lease_keepalive(lease["id"])
    with pytest.raises(LeaseNotFound):
        client.put(b"lease/revoked", b"v", lease=lease["id"])


def test_lease_not_kept_alive_expires(client):
    lease = client.lease_grant(2)
    client.put(b"lease/expiring/1", b"v", lease=lease["id"])
    client.put(b"lease/expiring/2", b"v", lease=lease["id"])
    wait_for(lambda: client.get_prefix(b"lease/expiring/", count_only=True)["count"] == 0,
             timeout=30, interval=0.2, message="the keys of an expired lease to vanish")
    with pytest.raises(LeaseNotFound):
        client.lease_keepalive(lease["id"])


def test_lease_kept_alive_does_not_expire(client):
    lease = client.lease_grant(3)
    client.put(b"lease/kept", b"v", lease=lease["id"])
    # Keep it alive for well over its ttl; it must survive the whole time.
    until = time.monotonic() + 7.0
    while time.monotonic() < until:
        assert client.lease_keepalive(lease["id"])["ttl"] == 3
        assert client.get(b"lease/kept")["kvs"], "a lease that was kept alive expired"
        time.sleep(0.3)
    # Once nobody keeps it alive, it does expire.
    wait_for(lambda: not client.get(b"lease/kept")["kvs"], timeout=30, interval=0.2,
             message="the lease to expire once keepalives stop")


# -- compaction and watches --------------------------------------------------------------
def test_compaction(client):
    old = client.put(b"compact/k", b"v1")["revision"]
    current = client.put(b"compact/k", b"v2")["revision"]
    result = client.compact(current)
    assert result["compact_revision"] == current

    with pytest.raises(Compacted) as exc:
        client.get(b"compact/k", revision=old)
    assert exc.value.compact_revision == current
    # The compaction revision itself and newer ones stay readable.
    assert value_of(client.get(b"compact/k", revision=current)) == b"v2"
    assert value_of(client.get(b"compact/k")) == b"v2"

    with pytest.raises(Compacted) as exc:
        client.watch(b"compact/k", start_revision=old)
    assert exc.value.compact_revision == current

    with pytest.raises(Compacted):
        client.compact(current)     # compacting again to the same revision
    assert client.status()["compact_revision"] >= current


def next_events(watch, n, timeout=20.0):
    events, deadline = [], time.monotonic() + timeout
    while len(events) < n and time.monotonic() < deadline:
        event = watch.next_event(timeout=max(0.05, deadline - time.monotonic()))
        if event is not None:
            events.append(event)
    assert len(events) == n, f"expected {n} events, got {events}"
    return events


def test_watch_replays_history_then_live_events(client):
    first = client.put(b"watch/a", b"1")["revision"]
    client.put(b"watch/b", b"2")
    client.delete(b"watch/a")
    client.put(b"watchers-not-in-prefix", b"x")
    watch = client.watch(b"watch/", range_end=b"watch0", start_revision=first)
    try:
        replayed = next_events(watch, 3)
        assert [(e["type"], e["kv"]["key"]) for e in replayed] == [
            ("put", b"watch/a"), ("put", b"watch/b"), ("delete", b"watch/a")]
        revisions = [e["kv"]["mod_revision"] for e in replayed]
        assert revisions == sorted(revisions) and revisions[0] == first
        assert "prev_kv" not in replayed[0]

        live_rev = client.put(b"watch/c", b"3")["revision"]
        (live,) = next_events(watch, 1)
        assert live["type"] == "put" and live["kv"]["key"] == b"watch/c"
        assert live["kv"]["mod_revision"] == live_rev
    finally:
        watch.cancel()


def test_watch_prev_kv(client):
    client.put(b"prevkv/k", b"old")
    watch = client.watch(b"prevkv/k", prev_kv=True)
    try:
        client.put(b"prevkv/k", b"new")
        client.delete(b"prevkv/k")
        put, delete = next_events(watch, 2)
        assert put["type"] == "put" and put["kv"]["value"] == b"new"
        assert put["prev_kv"]["value"] == b"old"
        assert delete["type"] == "delete" and delete["prev_kv"]["value"] == b"new"
    finally:
        watch.cancel()


# -- status, headers, members --------------------------------------------------------------
def test_every_response_carries_the_header(cluster, client):
    lease = client.lease_grant(60)
    responses = {
        "put": client.put(b"hdr/k", b"v"),
        "get": client.get(b"hdr/k"),
        "serializable get": client.get(b"hdr/k", serializable=True),
        "txn": client.txn([], success=[{"op": "put", "key": b"hdr/k", "value": b"w"}]),
        "delete": client.delete(b"hdr/k"),
        "lease_grant": lease,
        "lease_keepalive": client.lease_keepalive(lease["id"]),
        "lease_revoke": client.lease_revoke(lease["id"]),
        "status": client.status(),
        "members": client.call("members"),
    }
    for op, response in responses.items():
        header = response["header"]
        assert HEADER_FIELDS <= set(header), f"{op}: header {header} lacks fields"
        assert header["raft_term"] >= 1 and header["revision"] >= 1, (op, header)

    statuses = []
    for i in range(len(cluster.nodes)):
        with node_client(cluster, i) as c:
            statuses.append(c.status())
    assert len({s["header"]["cluster_id"] for s in statuses}) == 1
    assert len({s["member_id"] for s in statuses}) == len(cluster.nodes)
    for s in statuses:
        assert s["header"]["member_id"] == s["member_id"]
        assert s["name"] and s["peer"] and s["client"]


def test_members_lists_three_with_one_leader(cluster, client):
    def named_members():
        members = client.members()
        if all(m["name"] and m["client"] for m in members) and \
                sum(m["is_leader"] for m in members) == 1:
            return members
        return None

    members = wait_for(named_members, timeout=30, interval=0.2,
                       message="every member to register its name and client address")
    expected = {(n.name, n.peer_addr, n.client_addr) for n in cluster.nodes}
    assert {(m["name"], m["peer"], m["client"]) for m in members} == expected
    assert len({m["id"] for m in members}) == 3


def test_remove_unknown_member_is_not_found(client):
    with pytest.raises(NotFound):
        client.member_remove("no-such-member")
    assert len(client.members()) == 3


# -- exactly-once --------------------------------------------------------------------------
def test_same_client_and_request_id_applies_once(cluster, client, raw):
    before = client.status()["revision"]
    conn = raw(cluster, 1)
    request = {"op": "put", "key": b"once/k", "value": b"v", "client": 987654321, "req": 1}
    first = conn.request({**request, "id": 1})
    second = conn.request({**request, "id": 2})
    assert "error" not in first, first
    assert second["id"] == 2
    assert second["result"] == first["result"]
    assert first["result"]["revision"] == before + 1

    # Through another node as well (a client retrying elsewhere after a failover).
    other = raw(cluster, 2).request({**request, "id": 7})
    assert other["result"] == first["result"]

    kv = client.get(b"once/k")["kvs"][0]
    assert kv["version"] == 1 and kv["mod_revision"] == before + 1
    assert client.status()["revision"] == before + 1

    # A new request id from the same client is a new write.
    third = conn.request({**request, "id": 3, "req": 2})
    assert third["result"]["revision"] == before + 2


def test_linearizable_read_on_a_follower_sees_a_fresh_write(cluster):
    leader = cluster.leader_index(30)
    followers = [i for i in range(len(cluster.nodes)) if i != leader]
    with node_client(cluster, leader) as writer:
        for n in range(20):
            rev = writer.put(b"fresh/k", str(n).encode())["revision"]
            for i in followers:
                with node_client(cluster, i) as reader:
                    got = reader.get(b"fresh/k")
                    assert value_of(got) == str(n).encode()
                    assert got["revision"] >= rev
