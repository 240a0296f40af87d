"""Bad input gets a clear error and the node keeps serving everyone else.

Malformed frames and messages go over a bare socket to one node of a shared
3-node cluster; after each one, that connection (where it should survive) and an
ordinary client still get answers. A process whose peer certificate comes from
another CA and a cluster without quorum are tested too.
"""

import os
import secrets
import subprocess
import sys
import time

import msgpack
import pytest

from cli import pki
from cli.local_store import free_ports
from store import protocol
from store.client import StoreClient, StoreError, Unavailable, ValueTooLarge
from tests.support.storeproc import node_client, wait_for


def assert_serving(cluster, conn=None):
    """The node behind ``conn`` still answers on it, and the cluster takes writes."""
    if conn is not None:
        reply = conn.request({"id": 4242, "op": "status"})
        assert reply is not None, "the server hung up a connection it should have kept"
        assert reply["id"] == 4242 and "result" in reply, reply
    with cluster.client(timeout=15) as c:
        rev = c.put(b"bad/still-serving", os.urandom(4))["revision"]
        assert c.get(b"bad/still-serving")["revision"] >= rev


def assert_error(reply, code, request_id=0):
    assert reply is not None, f"expected a {code} error, the server hung up"
    if request_id is not None:
        assert reply.get("id") == request_id, reply
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"], "an error must say what was wrong"
    assert {"cluster_id", "member_id", "revision", "raft_term"} <= set(reply["header"])


def test_frame_that_is_not_msgpack(cluster, raw):
    conn = raw(cluster, 0)
    conn.send_body(b"\xc1\xc1 this is not msgpack")
    assert_error(conn.recv(), protocol.BAD_REQUEST)
    assert_serving(cluster, conn)


def test_msgpack_that_is_not_a_map(cluster, raw):
    conn = raw(cluster, 0)
    conn.send_body(msgpack.packb([1, "put", b"k"]))
    assert_error(conn.recv(), protocol.BAD_REQUEST)
    conn.send_body(msgpack.packb("just a string"))
    assert_error(conn.recv(), protocol.BAD_REQUEST)
    assert_serving(cluster, conn)


def test_request_without_id(cluster, raw):
    conn = raw(cluster, 0)
    assert_error(conn.request({"op": "status"}), protocol.BAD_REQUEST)
    # A non-integer id is refused too (the reply may echo it or use 0).
    assert_error(conn.request({"id": "seven", "op": "status"}), protocol.BAD_REQUEST, None)
    assert_serving(cluster, conn)


def test_unknown_op(cluster, raw):
    conn = raw(cluster, 1)
    reply = conn.request({"id": 11, "op": "frobnicate"})
    assert_error(reply, "unknown_op", request_id=11)
    assert "put" in reply["error"]["message"], "the error should list the valid ops"
    assert_error(conn.request({"id": 12}), "unknown_op", request_id=12)
    assert_serving(cluster, conn)


def test_key_that_is_not_bytes(cluster, client, raw):
    conn = raw(cluster, 2)
    before = client.status()["revision"]
    reply = conn.request({"id": 3, "op": "put", "key": "a str, not bytes", "value": b"v"})
    assert_error(reply, protocol.BAD_REQUEST, request_id=3)
    assert "key" in reply["error"]["message"]
    assert_error(conn.request({"id": 4, "op": "range", "key": 17}), protocol.BAD_REQUEST, 4)
    assert_error(conn.request({"id": 5, "op": "put", "key": b"k", "value": None}),
                 protocol.BAD_REQUEST, 5)
    with pytest.raises(StoreError) as exc:
        client.put("str-key", b"v")
    assert exc.value.code == protocol.BAD_REQUEST
    assert client.status()["revision"] == before
    assert_serving(cluster, conn)


def test_frame_announcing_100_megabytes(cluster, raw):
    conn = raw(cluster, 0)
    conn.send_raw(protocol.LENGTH.pack(100 << 20))
    assert_error(conn.recv(), protocol.TOO_LARGE)
    assert conn.recv() is None, "after too_large the server must hang up"
    assert_serving(cluster, raw(cluster, 0))


def test_truncated_frame_then_close(cluster, raw):
    watcher = node_client(cluster, 0)
    watch = watcher.watch(b"trunc/k")
    try:
        conn = raw(cluster, 0)
        frame = protocol.pack({"id": 1, "op": "put", "key": b"trunc/k", "value": b"lost"})
        conn.send_raw(frame[:len(frame) // 2])
        conn.close()
        # Other clients of the same node are unaffected, watches included.
        with node_client(cluster, 0) as c:
            c.put(b"trunc/k", b"kept")
            assert c.get(b"trunc/k")["kvs"][0]["value"] == b"kept"
        event = watch.next_event(timeout=20)
        assert event is not None and event["kv"]["value"] == b"kept"
        assert_serving(cluster, raw(cluster, 0))
    finally:
        watch.cancel()
        watcher.close()


def test_value_over_one_mebibyte(cluster, client):
    client.put(b"big/k", b"small")
    before = client.status()["revision"]
    with pytest.raises(ValueTooLarge) as exc:
        client.put(b"big/k", b"x" * ((1 << 20) + 1))
    assert "1 MiB" in exc.value.message
    with pytest.raises(ValueTooLarge):
        client.txn([], success=[{"op": "put", "key": b"big/other", "value": b"y" * (2 << 20)}])
    assert client.status()["revision"] == before, "a refused write changed the store"
    assert client.get(b"big/k")["kvs"][0]["value"] == b"small"
    assert client.get(b"big/other")["kvs"] == []
    # Exactly 1 MiB is allowed.
    client.put(b"big/k", b"z" * (1 << 20))
    assert len(client.get(b"big/k")["kvs"][0]["value"]) == 1 << 20
    assert_serving(cluster)


def test_peer_with_a_certificate_from_another_ca_is_ignored(cluster, client, processes, tmp_path):
    client.put(b"intruder/before", b"v")
    # A whole other store PKI: the intruder trusts its own CA and holds its member cert.
    other = pki.CertificateAuthority.create(str(tmp_path / "pki"), common_name="other-ca")
    member = other.issue(str(tmp_path / "pki"), "intruder", "intruder", dns_names=["localhost"],
                         ip_addresses=["127.0.0.1"], server=True, client=True)
    peer, client_addr = (f"127.0.0.1:{port}" for port in free_ports(2))
    initial = ",".join([f"intruder={peer}"] + [f"{n.name}={n.peer_addr}" for n in cluster.nodes])
    log_path = tmp_path / "intruder.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "store.server", "--name", "intruder",
             "--data-dir", str(tmp_path / "intruder"), "--peer-addr", peer,
             "--client-addr", client_addr, "--initial-cluster", initial,
             "--peer-cert-file", member.cert, "--peer-key-file", member.key,
             "--peer-trusted-ca-file", other.cert_path, "--cluster-token", cluster.token,
             "--election-min", "0.5", "--election-max", "1.0", "--request-timeout", "1",
             "--insecure-plain-client"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=os.getcwd(),
            env={**os.environ, "PYTHONPATH": os.getcwd()})
    processes.append(proc)
    intruder = StoreClient([client_addr], timeout=5)
    try:
        wait_for(lambda: intruder.status(timeout=1), timeout=30,
                 message=f"the intruder to serve; log: {log_path}")
        # Watch both sides for several of the intruder's election timeouts while
        # the real cluster keeps taking writes.
        until, n = time.monotonic() + 5.0, 0
        while time.monotonic() < until:
            n += 1
            client.put(b"intruder/during", str(n).encode())
            assert client.get(b"intruder/during")["kvs"][0]["value"] == str(n).encode()
            status = intruder.status(timeout=5)
            assert not status["is_leader"], "a node from another CA became leader"
            assert status["leader_peer"] is None, status
            assert status["revision"] == 1, "a node from another CA got data"
            assert proc.poll() is None, log_path.read_text()
        members = client.members()
        assert peer not in {m["peer"] for m in members}
        assert len(members) == 3
        assert cluster.leader_index(30) in range(3)
        # It holds no data and cannot serve a linearizable read or a write.
        assert intruder.get(b"intruder/", range_end=b"\0", serializable=True)["kvs"] == []
        with pytest.raises(Unavailable):
            intruder.put(b"intruder/write", b"x", timeout=3)
        assert client.get(b"intruder/write")["kvs"] == []
    finally:
        intruder.close()
        proc.kill()
        proc.wait(timeout=10)


def test_no_quorum_is_an_error_after_a_bounded_wait(clusters, raw):
    cluster = clusters.new(3, extra_args=["--request-timeout", "2"])
    with cluster.client(timeout=15) as c:
        c.put(b"quorum/k", b"v")
    survivor = 0
    # The put is acknowledged once a majority has it; the survivor may learn that it
    # committed only from the leader's next message. Wait for it to apply the put
    # before cutting it off, or its local read below has nothing to show.
    with node_client(cluster, survivor, timeout=15) as c:
        wait_for(lambda: c.get(b"quorum/k", serializable=True)["kvs"],
                 message="the survivor to apply the put")
    cluster.kill(1)
    cluster.kill(2)

    client_timeout, generous = 4.0, 30.0
    with node_client(cluster, survivor, timeout=client_timeout) as c:
        started = time.monotonic()
        with pytest.raises(Unavailable) as exc:
            c.put(b"quorum/k", b"w")
        assert time.monotonic() - started < client_timeout + generous, "the write hung"
        assert "unavailable" in exc.value.message

        started = time.monotonic()
        with pytest.raises(Unavailable):
            c.get(b"quorum/k")
        assert time.monotonic() - started < client_timeout + generous, "the read hung"

        # Local data stays readable on request.
        assert c.get(b"quorum/k", serializable=True)["kvs"][0]["value"] == b"v"

    # The server itself answers `unavailable` (after its --request-timeout), not silence.
    conn = raw(cluster, survivor, timeout=client_timeout + generous)
    reply = conn.request({"id": 9, "op": "put", "key": b"quorum/k", "value": b"x",
                          "client": 5, "req": 1})
    assert reply["id"] == 9 and reply["error"]["code"] == protocol.UNAVAILABLE, reply


def test_bad_election_timeouts_are_refused_clearly(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_urlsafe(32))
    peer, client_addr = (f"127.0.0.1:{port}" for port in free_ports(2))
    result = subprocess.run(
        [sys.executable, "-m", "store.server", "--name", "a", "--data-dir", str(tmp_path / "a"),
         "--peer-addr", peer, "--client-addr", client_addr,
         "--initial-cluster", f"a={peer}", "--secret-file", str(secret),
         "--election-min", "0.3", "--election-max", "0.6"],
        capture_output=True, text=True, timeout=60, cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode != 0
    assert "--election-min" in result.stderr and "Traceback" not in result.stderr, result.stderr
