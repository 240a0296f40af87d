"""Proposal batching on a real 3-member cluster: fewer Raft entries than writes.

Writes pipelined on one connection reach the leader in the same loop turn (or
while an entry is in flight) and share Raft entries; every request is still
answered once, at its own revision, and a retried (client, req) inside a batch
applies once.
"""

import os
import threading
import urllib.request

import pytest

from store import protocol
from store.node_main import main as node_main
from tests.support.storeproc import READY_TIMEOUT, Clusters, RawConnection, wait_for

BATCH_CAP = 8


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    made = Clusters(tmp_path_factory.mktemp("batching"))
    try:
        yield made.new(3, name="batched", extra_args=["--max-batch-requests", str(BATCH_CAP)])
    finally:
        made.stop_all()


def proposal_counts(cluster, i):
    """Return (entries, requests) node ``i`` proposed, from its metrics."""
    text = urllib.request.urlopen(f"http://{cluster.nodes[i].metrics_addr}/metrics",
                                  timeout=5).read().decode()
    values = dict(line.split(" ", 1) for line in text.splitlines()
                  if line.startswith("steer_store_raft_"))
    return (int(values["steer_store_raft_entries_proposed"]),
            int(values["steer_store_raft_requests_proposed"]))


def test_pipelined_writes_share_entries_and_each_gets_its_own_revision(batched):
    batched.wait_ready(READY_TIMEOUT)
    leader = batched.leader_index()
    entries_before, requests_before = proposal_counts(batched, leader)
    status = batched.node_status(leader, timeout=5)
    conn = RawConnection(batched.nodes[leader].client_addr, 15.0, batched.client_tls["admin"])
    try:
        count = 40
        messages = [{"id": i + 1, "op": "put", "key": b"batch/%d" % i, "value": b"v%d" % i,
                     "client": 4242, "req": i + 1} for i in range(count)]
        # A retry of request 7 travels with the originals: it must apply once.
        messages.append({**messages[6], "id": count + 1})
        conn.send_raw(b"".join(protocol.pack(message) for message in messages))
        answers = {}
        for _ in messages:
            answer = conn.recv()
            assert answer is not None and "result" in answer, answer
            answers[answer["id"]] = answer["result"]["revision"]
    finally:
        conn.close()
    revisions = [answers[i + 1] for i in range(count)]
    assert len(set(revisions)) == count, "every distinct write has its own revision"
    assert answers[count + 1] == answers[7], "the retry answers as the first time"
    assert min(revisions) > status["revision"]
    entries, requests = proposal_counts(batched, leader)
    # The leader may propose its own commands meanwhile (member_set, compact, lease
    # revokes), so the test's 41 are a lower bound of what it proposed.
    proposed = requests - requests_before
    assert proposed >= count + 1
    assert entries - entries_before < proposed, "writes shared Raft entries"
    assert entries - entries_before >= (proposed + BATCH_CAP - 1) // BATCH_CAP
    with batched.client() as client:
        assert client.get(b"batch/6")["kvs"][0]["version"] == 1
        assert client.get(b"batch/39")["kvs"][0]["value"] == b"v39"


def test_concurrent_clients_on_every_member_are_all_answered(batched):
    batched.wait_ready(READY_TIMEOUT)
    results, failures = [], []

    def writer(member, n):
        try:
            with batched.node_client(member, timeout=30.0) as client:
                for k in range(n):
                    results.append(client.put(b"conc/%d/%d" % (member, k), b"x")["revision"])
        except Exception as exc:  # reported below, in the test's thread
            failures.append(repr(exc))

    threads = [threading.Thread(target=writer, args=(t % 3, 15)) for t in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures
    assert len(results) == 12 * 15 and len(set(results)) == len(results)
    with batched.client() as client:
        wait_for(lambda: client.get(b"conc/", range_end=b"conc0", count_only=True)["count"] == 45,
                 message="every member's writes visible")


@pytest.mark.parametrize("flag", ["--max-batch-requests", "--max-batch-bytes"])
def test_a_batch_cap_below_one_is_refused_with_the_flag_named(flag, tmp_path):
    umask = os.umask(0o022)  # main() sets the store's umask: give this process its own back
    try:
        with pytest.raises(SystemExit) as exited:
            node_main(["--name", "s1", "--data-dir", str(tmp_path), "--peer-addr",
                       "127.0.0.1:1", "--client-addr", "127.0.0.1:2", "--initial-cluster",
                       "s1=127.0.0.1:1", "--secret-file", str(tmp_path / "none"), flag, "0"])
    finally:
        os.umask(umask)
    assert flag in str(exited.value)
