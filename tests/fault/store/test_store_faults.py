"""Fault injection on a real store cluster while writers and watchers run.

Each test runs a workload of random puts, deletes and linearizable reads from
several clients (each its own connection and failover) and a whole-keyspace watch,
SIGKILLs nodes, restarts them, and then checks:

- the recorded client history is linearizable (per-key register, WGL search; an
  error or timeout on a write is ambiguous, on a read it is a non-event);
- the watch saw every committed revision in order, without gap or duplicate, across
  failovers (a ``compacted`` error followed by a relist starts a new segment);
- every acknowledged write is in the store's history at its revision.
"""

import time

import pytest

from store.client import Unavailable
from tests.fault.store.harness import (
    ALL,
    CLIENT_TIMEOUT,
    FAULT_ARGS,
    KEYS,
    WatchRecorder,
    Workload,
    assert_linearizable,
    call_with_deadline,
    check_watch,
    current_revision,
    journal_first_index,
    journal_last_index,
    node_client,
    replay,
    status_of,
    summary,
    wait_caught_up,
    wait_for,
    wait_leader,
)
from tests.support.lincheck import History

pytestmark = [pytest.mark.fault, pytest.mark.timeout(240)]


def start_load(cluster, watch_via=None, threads=4):
    """Start watchers and a workload; return once the workload has written a bit.

    One watcher picks a node at random; with ``watch_via`` (a node index) a second
    one starts on that node, so a test can kill the node under a watch.
    """
    history = History()
    start = current_revision(cluster) + 1
    tls = cluster.client_tls["admin"]
    recorders = [WatchRecorder(cluster.endpoints, start, tls=tls).start()]
    if watch_via is not None:
        recorders.append(WatchRecorder(cluster.endpoints, start, tls=tls,
                                       first=cluster.nodes[watch_via].client_addr).start())
    workload = Workload(cluster, history, threads=threads).start()
    wait_for(lambda: workload.ok_writes_after(0) >= 20, 60, "the workload to get going")
    return history, workload, recorders


def wait_progress(workload, what, count=10, timeout=60):
    """Wait until ``count`` writes invoked from now on were acknowledged."""
    mark = time.monotonic_ns()
    wait_for(lambda: workload.ok_writes_after(mark) >= count, timeout, what)


def finish(cluster, history, workload, recorders):
    """Let the workload show progress on the healed cluster, stop it, check everything."""
    wait_progress(workload, "writes to succeed on the healed cluster", count=30)
    workload.stop()
    check_watch(cluster, recorders, workload)
    print(summary(history, workload, recorders))
    assert_linearizable(history)


@pytest.mark.parametrize("size", [3, 5])
def test_kill_leader(make_cluster, size):
    cluster = make_cluster(size)
    leader = wait_leader(cluster)
    history, workload, recorders = start_load(cluster, watch_via=leader)

    cluster.kill(leader)
    rest = [i for i in range(size) if i != leader]
    new_leader = wait_leader(cluster, among=rest)
    assert new_leader != leader
    wait_progress(workload, "writes to continue under the new leader")

    cluster.start(leader)
    wait_caught_up(cluster, leader, current_revision(cluster), timeout=60)
    finish(cluster, history, workload, recorders)


def test_kill_follower(make_cluster):
    cluster = make_cluster(3)
    leader = wait_leader(cluster)
    follower = next(i for i in range(3) if i != leader)
    history, workload, recorders = start_load(cluster, watch_via=follower)

    cluster.kill(follower)
    wait_progress(workload, "writes to continue without a follower")

    cluster.start(follower)
    wait_caught_up(cluster, follower, current_revision(cluster), timeout=60)
    finish(cluster, history, workload, recorders)


def test_kill_majority(make_cluster):
    cluster = make_cluster(3)
    # Keep the leader and kill both followers: the old leader may still think it
    # leads, so this is where a stale read or a lost ambiguous write would show.
    survivor = wait_leader(cluster)
    followers = [i for i in range(3) if i != survivor]
    history, workload, recorders = start_load(cluster, watch_via=followers[0])
    for i in followers:
        cluster.kill(i)

    with node_client(cluster, survivor, timeout=3.0) as probe:
        # A write fails (Unavailable, ambiguous: the survivor may have logged it).
        op = history.invoke("probe", "write", KEYS[0], b"probe-put")
        _, error = call_with_deadline(lambda: probe.put(KEYS[0], b"probe-put"), 30,
                                      "a put without quorum")
        history.info(op)
        assert isinstance(error, Unavailable), f"a put without quorum gave {error!r}"
        # A linearizable read fails too: it cannot prove it is up to date.
        op = history.invoke("probe", "read", KEYS[0])
        result, error = call_with_deadline(lambda: probe.get(KEYS[0]), 30,
                                           "a linearizable read without quorum")
        if error is None:
            history.ok(op, result["kvs"][0]["value"] if result["kvs"] else None)
        else:
            history.fail(op)
        assert isinstance(error, Unavailable), f"a read without quorum gave {error!r}"
        # A serializable read answers from local state.
        result, error = call_with_deadline(lambda: probe.get(**ALL, serializable=True), 30,
                                           "a serializable read without quorum")
        assert error is None, f"a serializable read without quorum failed: {error!r}"
        assert result["header"]["member_id"] == status_of(cluster, survivor)["member_id"]

    for i in followers:
        cluster.start(i)
    wait_leader(cluster, timeout=60)
    finish(cluster, history, workload, recorders)


def test_kill_whole_cluster(make_cluster):
    cluster = make_cluster(3)
    history, workload, recorders = start_load(cluster, watch_via=wait_leader(cluster))
    wait_progress(workload, "more acknowledged writes before the crash", count=30)

    for i in range(3):
        cluster.kill(i)
    acked_before = dict(workload.acked)
    assert acked_before, "nothing was acknowledged before the crash"

    for i in range(3):
        cluster.start(i)
    wait_leader(cluster, timeout=60)
    finish(cluster, history, workload, recorders)
    # finish() checked every acknowledged write against the history replayed after
    # the restart. The whole history survived too: a watch from revision 1 replays
    # every write since the store was created (the first one is revision 2).
    end = current_revision(cluster)
    assert sorted(replay(cluster.endpoints, 1, end, tls=cluster.client_tls["admin"])) == \
        list(range(2, end + 1))
    # And reading at its revision finds the newest write of each key acknowledged
    # before the crash.
    newest = {}
    for revision, (kind, key, value) in sorted(acked_before.items()):
        newest[key] = (revision, kind, value)
    with cluster.client(timeout=CLIENT_TIMEOUT) as client:
        for key, (revision, kind, value) in newest.items():
            kvs = client.get(key, revision=revision)["kvs"]
            found = (kvs[0]["mod_revision"], kvs[0]["value"]) if kvs else None
            assert found == ((revision, value) if kind == "put" else None), (
                f"{key!r} at revision {revision}: acknowledged {kind} {value!r}, "
                f"found {found}")


def test_restarted_node_catches_up_by_snapshot(make_cluster):
    cluster = make_cluster(3, FAULT_ARGS + ["--raft-log-compact-entries", "50"])
    leader = wait_leader(cluster)
    follower = next(i for i in range(3) if i != leader)
    follower_addr = cluster.nodes[follower].client_addr
    history, workload, recorders = start_load(cluster, watch_via=follower, threads=2)
    client = cluster.client(timeout=CLIENT_TIMEOUT)

    def bulk(numbers, tag):
        for n in numbers:
            key, value = f"bulk/{n:04d}".encode(), f"{tag}-{n}".encode()
            op = history.invoke("bulk", "write", key, value)
            try:
                result = client.put(key, value)
            except Exception:
                history.info(op)
                raise
            history.ok(op)
            with workload.lock:
                workload.acked[result["revision"]] = ("put", key, value)

    try:
        bulk(range(100), "a")
        client.compact(current_revision(cluster))

        status = status_of(cluster, follower)
        cluster.kill(follower)
        missed_from = journal_last_index(cluster.nodes[follower].data_dir) or status["raft_index"]

        bulk(range(50, 350), "b")      # overwrite some, add more
        compacted = current_revision(cluster)
        client.compact(compacted)
        # The live nodes must have dropped the entries the follower lacks, so a
        # snapshot is the only way for it to catch up.
        live = [i for i in range(3) if i != follower]
        wait_for(lambda: all((journal_first_index(cluster.nodes[i].data_dir) or 0)
                             > missed_from + 1 for i in live), 60,
                 f"the live nodes' Raft logs to be compacted past index {missed_from + 1}")

        cluster.start(follower)
        # A watch on the lagging node alone, from where that node was: it follows
        # the node's old state until the snapshot replaces it, then gets
        # `compacted` and relists (or gets `compacted` at once if it came later).
        recorders.append(WatchRecorder([follower_addr], status["revision"] + 1,
                                       tls=cluster.client_tls["admin"]).start())
        wait_caught_up(cluster, follower, current_revision(cluster), timeout=60)
        wait_progress(workload, "writes to continue after the restart")
        workload.stop()
        end = current_revision(cluster)
        wait_caught_up(cluster, follower, end, timeout=60)

        # The node alone serves what the leader serves, at the same revision.
        leader = wait_leader(cluster)
        with node_client(cluster, follower) as lagger, node_client(cluster, leader) as lead:
            mine = lagger.get(**ALL, serializable=True)
            theirs = lead.get(**ALL, serializable=True)
            assert mine["revision"] == theirs["revision"] == end
            assert mine["kvs"] == theirs["kvs"]
            assert len([kv for kv in mine["kvs"] if kv["key"].startswith(b"bulk/")]) == 350
            assert status_of(cluster, follower)["compact_revision"] == compacted

            # A linearizable range through that node alone, recorded as one read per key.
            keys = [f"bulk/{n:04d}".encode() for n in range(350)] + KEYS
            ops = {key: history.invoke("lagger", "read", key) for key in keys}
            seen = {kv["key"]: kv["value"] for kv in lagger.get(**ALL)["kvs"]}
            for key, op in ops.items():
                history.ok(op, seen.get(key))

        truth = check_watch(cluster, recorders, workload, end)
        # Its event history came with the snapshot: a watch on it alone replays
        # exactly what the cluster replays.
        assert replay([follower_addr], compacted + 1, end, tls=cluster.client_tls["admin"]) == {
            r: e for r, e in truth.items() if r > compacted}
        print(summary(history, workload, recorders))
        assert_linearizable(history)
    finally:
        client.close()
        workload.stop_event.set()
        for recorder in recorders:
            recorder.stop_event.set()


def test_client_without_quorum_does_not_hang(make_cluster):
    """A client of a cluster with no live node gives up with Unavailable."""
    cluster = make_cluster(3)
    for i in range(3):
        cluster.kill(i)
    with cluster.client(timeout=2.0) as client:
        _, error = call_with_deadline(lambda: client.put(b"k", b"v"), 30, "a put to nobody")
        assert isinstance(error, Unavailable), repr(error)
