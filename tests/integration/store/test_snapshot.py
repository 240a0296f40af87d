"""Snapshot save to a file, and restore into a fresh cluster."""

import os

import msgpack
import pytest

from store.client import Compacted
from store.machine import Machine
from store.restore import read_snapshot, restore_snapshot
from tests.support.storeproc import node_client, wait_for

EVERYTHING = {"key": b"\0", "range_end": b"\0"}


def test_snapshot_save_and_restore_into_a_fresh_cluster(clusters, tmp_path):
    source = clusters.new(3, name="source")
    with source.client(timeout=20) as c:
        for i in range(20):
            c.put(f"snap/{i:02d}".encode(), f"value-{i}".encode())
        c.delete(b"snap/05")
        c.txn([], success=[{"op": "put", "key": b"snap/txn", "value": b"t"},
                           {"op": "delete", "key": b"snap/06"}])
        compacted = c.put(b"snap/00", b"rewritten")["revision"]
        c.compact(compacted)
        lease = c.lease_grant(3600)
        c.put(b"snap/leased", b"l", lease=lease["id"])
        c.put(b"snap/last", b"z")

        path = str(tmp_path / "store.snapshot")
        revision = c.snapshot_save(path)
        expected = c.get(revision=revision, **EVERYTHING)
    assert revision == expected["revision"]
    assert os.path.getsize(path) > 0
    assert read_snapshot(path)["revision"] == revision
    source.stop_all()

    restored = clusters.new(3, start=False, name="restored")
    assert restore_snapshot(path, restored) == revision
    restored.start_all()
    restored.wait_ready(60)

    # Every key, version and revision is back, on every node.
    for i in range(3):
        with node_client(restored, i, timeout=20) as c:
            got = c.get(**EVERYTHING)
            assert got["revision"] == revision
            assert got["kvs"] == expected["kvs"]
            status = c.status()
            assert status["revision"] == revision
            assert status["compact_revision"] == compacted
    with restored.client(timeout=20) as c:
        with pytest.raises(Compacted):
            c.get(b"snap/00", revision=compacted - 1)
        assert c.get(b"snap/00", revision=compacted)["kvs"][0]["value"] == b"rewritten"
        # History after the compaction survived: a watch can replay it.
        with pytest.raises(Compacted):
            c.watch(b"snap/", range_end=b"snap0", start_revision=compacted)
        watch = c.watch(b"snap/", range_end=b"snap0", start_revision=compacted + 1)
        try:
            event = watch.next_event(timeout=20)
            assert event is not None and event["kv"]["key"] == b"snap/leased"
        finally:
            watch.cancel()
        # Leases survived with their keys; revoking one still deletes them.
        assert c.get(b"snap/leased")["kvs"][0]["lease"] == lease["id"]
        c.lease_revoke(lease["id"])
        assert c.get(b"snap/leased")["kvs"] == []

        # Writes continue from the restored revision.
        after = c.put(b"restored/new", b"n")["revision"]
        assert after == revision + 2, "revoke and put take one revision each"

        # The restored cluster knows its own members, not the source's.
        members = wait_for(lambda: [m for m in c.members() if m["name"]] == c.members()
                           and c.members(), timeout=30, interval=0.2,
                           message="restored members to register")
        assert {(m["name"], m["peer"]) for m in members} == \
            {(n.name, n.peer_addr) for n in restored.nodes}

        # A member added later receives the data (as a Raft snapshot).
        node = restored.nodes[restored.add_node("s4")]
        c.member_add(node.name, node.peer_addr, client=node.client_addr)
        restored.start(3, initial_cluster=restored.initial_cluster)
        with node_client(restored, 3, timeout=5) as new:
            wait_for(lambda: new.get(b"restored/new", serializable=True)["kvs"],
                     timeout=60, interval=0.2, message="the added member to get the data")
            got = new.get(serializable=True, **EVERYTHING)
            assert got["revision"] == after
            assert {kv["key"] for kv in got["kvs"]} == \
                {kv["key"] for kv in expected["kvs"] if kv["key"] != b"snap/leased"} | \
                {b"restored/new"}
        final = c.put(b"restored/final", b"f")["revision"]
        with node_client(restored, 3, timeout=20) as new:
            assert new.get(b"restored/final")["kvs"][0]["mod_revision"] == final

        # A restored member restarts from its seeded dump plus its journal.
        restored.kill(0)
        restored.start(0, initial_cluster=restored.initial_cluster)
        with node_client(restored, 0, timeout=5) as again:
            wait_for(lambda: again.get(b"restored/final", serializable=True)["kvs"],
                     timeout=60, interval=0.2, message="the restarted member to serve")
            got = again.get(serializable=True, **EVERYTHING)
            assert got["revision"] == final
            assert {kv["key"] for kv in got["kvs"]} == \
                {kv["key"] for kv in expected["kvs"] if kv["key"] != b"snap/leased"} | \
                {b"restored/new", b"restored/final"}


def test_restore_refuses_bad_input(clusters, tmp_path):
    target = clusters.new(1, start=False, name="target")
    path = tmp_path / "bad.snapshot"
    path.write_bytes(msgpack.packb({"not": "a snapshot"}))
    with pytest.raises(ValueError):
        restore_snapshot(str(path), target)

    good = tmp_path / "empty.snapshot"
    good.write_bytes(msgpack.packb(Machine().to_snapshot()))
    os.makedirs(target.nodes[0].data_dir)
    (tmp_path / "target" / "s1" / "raft.journal").write_bytes(b"in use")
    with pytest.raises(FileExistsError):
        restore_snapshot(str(good), target)
