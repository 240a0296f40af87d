"""Power cuts: members over a file layer that loses unsynced writes, killed and restarted.

Every member runs with ``STEER_STORE_TEST_LAZY_FS=1`` (``store.testing_fs``): what
it writes to its journal, meta and dump files stays in its own memory until it
syncs, so a SIGKILL is a power cut of that member. Writers and linearizable
readers run throughout while one member, then a majority, then every member
loses power at once, for a few rounds. Afterwards every acknowledged write must
be in the store's history at its revision and the history must be linearizable.

The same scenario with ``STEER_STORE_TEST_SKIP_SYNC=1`` (the journal's fdatasync
does nothing) must lose acknowledged writes: that proves the check can fail.
A member restarted over a journal with a torn last record cuts it and catches up.
"""

import os
import time

import pytest

from cli.local_store import LocalStoreCluster
from store import testing_fs
from tests.fault.store.harness import (
    FAULT_ARGS,
    Workload,
    assert_linearizable,
    current_revision,
    journal_last_index,
    replay,
    status_of,
    summary,
    wait_caught_up,
    wait_for,
    wait_leader,
)
from tests.support.lincheck import History

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

LAZY = {testing_fs.LAZY_FS_ENV: "1"}
LAZY_WITHOUT_FDATASYNC = {**LAZY, testing_fs.SKIP_SYNC_ENV: "1"}


class PowerCutCluster(LocalStoreCluster):
    """A local cluster whose members run with extra environment variables."""

    def __init__(self, *args, environment, **kwargs):
        super().__init__(*args, **kwargs)
        self.environment = dict(environment)

    def command(self, i, initial_cluster=None):
        # env(1) execs the member, so the pid this class kills is the member's own.
        assignments = [f"{name}={value}" for name, value in sorted(self.environment.items())]
        return ["env", *assignments, *super().command(i, initial_cluster)]


@pytest.fixture
def power_cut_cluster(request, tmp_path):
    """Return ``make(environment)``: a started, ready 3-member cluster, always stopped."""
    clusters = []
    request.node._store_clusters = clusters     # conftest attaches their logs on failure

    def make(environment, extra_args=()):
        cluster = PowerCutCluster(3, base_dir=str(tmp_path / f"cluster{len(clusters)}"),
                                  extra_args=[*FAULT_ARGS, *extra_args],
                                  environment=environment)
        clusters.append(cluster)
        cluster.start_all()
        cluster.wait_ready(timeout=60)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop_all()


class AckLog(dict):
    """A workload's acknowledged writes by revision, noting any revision acknowledged twice.

    Two writes acknowledged at one revision mean the first was lost and its
    revision handed out again: the replay alone cannot see that.
    """

    def __init__(self):
        super().__init__()
        self.reused = []

    def __setitem__(self, revision, write):
        if revision in self:
            self.reused.append((revision, self[revision], write))
        super().__setitem__(revision, write)


def start_workload(cluster, history):
    workload = Workload(cluster, history, threads=4, max_ops=100_000)
    workload.acked = AckLog()
    return workload.start()


def wait_progress(workload, what, count=10, timeout=60):
    mark = time.monotonic_ns()
    wait_for(lambda: workload.ok_writes_after(mark) >= count, timeout, what)


def cut_power(cluster, members):
    """Kill ``members`` at once (SIGKILL: their unsynced writes are gone), then restart them."""
    for i in members:
        cluster.kill(i)
    for i in members:
        cluster.start(i)
    wait_leader(cluster, timeout=60)


def lost_acknowledged_writes(cluster, workload, timeout=60):
    """Acknowledged writes missing from the store's history (replayed from revision 1).

    Returns ``{revision: (acknowledged, found)}``; a revision acknowledged twice
    counts its first write as lost.
    """
    end = current_revision(cluster, timeout=timeout)
    # Revision 1 is the empty store: the first write is revision 2.
    truth = replay(cluster.endpoints, 1, end, timeout=timeout,
                   tls=cluster.client_tls["admin"]) if end > 1 else {}
    lost = {revision: (first, ("acknowledged again for", later))
            for revision, first, later in workload.acked.reused}
    lost.update({revision: (write, truth.get(revision))
                 for revision, write in sorted(workload.acked.items())
                 if truth.get(revision) != write})
    return lost


def assert_layer_active(cluster, skip_fdatasync):
    for node in cluster.nodes:
        with open(os.path.join(cluster.base_dir, f"{node.name}.log"), errors="replace") as f:
            text = f.read()
        assert f"event=test_lazy_fs_active skip_fdatasync={skip_fdatasync}" in text, (
            f"{node.name} did not run over the lazy file layer")


def test_acknowledged_writes_survive_power_cuts(power_cut_cluster):
    # A short Raft log: dumps, log compaction and snapshot installs happen between cuts.
    cluster = power_cut_cluster(LAZY, ["--raft-log-compact-entries", "60"])
    history = History()
    workload = start_workload(cluster, history)
    try:
        wait_progress(workload, "the workload to get going", count=20)
        for _ in range(3):
            leader = wait_leader(cluster)
            cut_power(cluster, [leader])
            wait_progress(workload, "writes after one member's power cut")
            leader = wait_leader(cluster)
            cut_power(cluster, [leader, (leader + 1) % 3])
            wait_progress(workload, "writes after a majority's power cut")
            cut_power(cluster, [0, 1, 2])
            wait_progress(workload, "writes after the whole cluster's power cut")
    finally:
        workload.stop()
    dumps = sum(os.path.exists(os.path.join(node.data_dir, "raft.dump"))
                for node in cluster.nodes)
    print(f"{summary(history, workload)}; members with a dump: {dumps}")
    assert_layer_active(cluster, skip_fdatasync=False)
    assert workload.acked, "nothing was acknowledged"
    lost = lost_acknowledged_writes(cluster, workload)
    assert not lost, f"acknowledged writes lost in power cuts (revision: (acked, found)): {lost}"
    assert_linearizable(history)


def test_without_fdatasync_power_cuts_lose_acknowledged_writes(power_cut_cluster):
    """The check above catches a journal that does not sync: it finds lost writes."""
    cluster = power_cut_cluster(LAZY_WITHOUT_FDATASYNC)
    history = History()
    workload = start_workload(cluster, history)
    try:
        wait_progress(workload, "the workload to get going", count=30)
    finally:
        workload.stop()
    assert_layer_active(cluster, skip_fdatasync=True)
    # Every acknowledged write is in an entry at or below the members' last log index.
    logged = max(status_of(cluster, i)["raft_index"] for i in range(3))
    for i in range(3):
        cluster.kill(i)
    on_disk = max(journal_last_index(node.data_dir) or 0 for node in cluster.nodes)
    assert on_disk < logged, (
        f"without fdatasync the members' journals still hold index {on_disk} of the "
        f"{logged} logged: the lazy layer did not drop unsynced writes")

    # The check of the test above fails: writes are missing, or the cluster cannot
    # even serve a linearizable read any more (its meta outlived its journal).
    for i in range(3):
        cluster.start(i)
    try:
        lost = lost_acknowledged_writes(cluster, workload, timeout=20)
    except AssertionError as exc:
        lost = f"no linearizable read after the power cut: {exc}"
    print(f"{summary(history, workload)}; logged={logged} on_disk={on_disk}; "
          f"lost: {lost if isinstance(lost, str) else len(lost)}")
    assert lost, ("every acknowledged write survived a power cut without fdatasync: "
                  "the power-loss test could not catch a journal that does not sync")


def test_member_restarted_over_a_torn_journal_catches_up(power_cut_cluster):
    cluster = power_cut_cluster({})
    leader = wait_leader(cluster)
    follower = next(i for i in range(3) if i != leader)
    with cluster.client(timeout=10) as client:
        for n in range(20):
            client.put(f"torn/{n}".encode(), b"before")
        cluster.kill(follower)
        data_dir = cluster.nodes[follower].data_dir
        last_before = journal_last_index(data_dir)
        journal = os.path.join(data_dir, "raft.journal")
        with open(journal, "ab") as f:
            # A crash mid-append: a record header promising more than follows.
            f.write(bytes.fromhex("000003e8deadbeef") + (10**6).to_bytes(8, "big") + b"torn")
        for n in range(20):
            client.put(f"torn/{n}".encode(), b"after")
        cluster.start(follower)
        wait_caught_up(cluster, follower, current_revision(cluster), timeout=60)
        with cluster.node_client(follower, timeout=10) as alone:
            values = {kv["key"]: kv["value"] for kv in
                      alone.get(b"torn/", range_end=b"torn0", serializable=True)["kvs"]}
    assert values == {f"torn/{n}".encode(): b"after" for n in range(20)}
    with open(os.path.join(cluster.base_dir, f"{cluster.nodes[follower].name}.log")) as f:
        assert "event=journal_torn_tail_cut" in f.read()
    assert (journal_last_index(data_dir) or 0) > (last_before or 0)
    assert status_of(cluster, follower)["revision"] == current_revision(cluster)
