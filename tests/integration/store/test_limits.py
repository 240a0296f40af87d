"""The client port's limits: each one, when hit, gives a clear error and the node serves on.

One single-node store runs with small limits (flags of store/node_main.py) so each
can be reached cheaply; the in-flight cap gets a node of its own. After every
attack an ordinary client still reads and writes.
"""

import os
import socket
import ssl

import pytest

from store import protocol
from store.client import StoreError
from tests.support.storeproc import READY_TIMEOUT, Clusters, RawConnection, wait_for

KIB = 1024
LIMIT_ARGS = [
    "--max-connections", "6",
    "--max-queued-bytes", str(1024 * KIB),
    "--idle-timeout", "2",
    "--frame-timeout", "1",
    "--max-watches-per-connection", "2",
    "--max-watches", "4",
    "--max-range-bytes", str(256 * KIB),
    "--quota-backend-bytes", str(3 * 1024 * KIB),
]


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    made = Clusters(tmp_path_factory.mktemp("limits"))
    try:
        yield made.new(1, name="limited", extra_args=LIMIT_ARGS)
    finally:
        made.stop_all()


@pytest.fixture
def cluster(limited):
    limited.wait_ready(READY_TIMEOUT)
    return limited


@pytest.fixture
def connect(cluster):
    opened = []

    def open_one():
        conn = RawConnection(cluster.nodes[0].client_addr, 15.0, cluster.client_tls["admin"])
        opened.append(conn)
        return conn

    try:
        yield open_one
    finally:
        for conn in opened:
            conn.close()


def assert_serving(cluster):
    """A fresh client still writes and reads (retrying while refused connections drain)."""
    def works():
        try:
            with cluster.client(timeout=5) as c:
                rev = c.put(b"limits/still-serving", os.urandom(4))["revision"]
                return c.get(b"limits/still-serving")["revision"] >= rev
        except StoreError:
            return False
    wait_for(works, timeout=30, message="the node to serve an ordinary client again")


def assert_error(reply, code, request_id=0):
    assert reply is not None, f"expected a {code} error, the server hung up without one"
    assert reply.get("id") == request_id, reply
    assert reply["error"]["code"] == code, reply
    assert len(reply["error"]["message"]) > 20, "an error must say what was wrong and what to do"


def test_connections_over_the_cap_are_refused_with_a_reason(cluster, connect):
    refusal = None
    for _ in range(10):
        reply = connect().request({"id": 1, "op": "status"})
        if reply is not None and "error" in reply:
            refusal = reply
            break
        assert reply is not None and "result" in reply, reply
    assert_error(refusal, protocol.TOO_MANY_CONNECTIONS)
    assert "--max-connections" in refusal["error"]["message"]


def test_a_connection_freed_makes_room_again(cluster, connect):
    conns = [connect() for _ in range(8)]
    replies = [c.request({"id": 2, "op": "status"}) for c in conns]
    assert any(r is not None and "error" in r for r in replies), "the cap was never reached"
    for c in conns:
        c.close()
    assert_serving(cluster)


def test_a_client_that_stops_reading_is_dropped(cluster, connect):
    with cluster.client(timeout=15) as c:
        c.put(b"limits/big", os.urandom(200 * KIB))
    stalled = connect()
    stalled.sock.settimeout(5)
    request = protocol.pack({"id": 5, "op": "range", "key": b"limits/big", "serializable": True})
    try:
        for _ in range(2000):           # 2000 answers of 200 KiB: far over any socket buffer
            stalled.sock.sendall(request)
    except (OSError, ssl.SSLError):
        pass                            # the server aborted the connection: what we want
    assert _drains_to_end(stalled), "the server kept a client that stopped reading"
    assert_serving(cluster)


def _drains_to_end(conn):
    """Read what the kernel still holds; True once the server's end is gone."""
    conn.sock.settimeout(10)
    try:
        while conn.sock.recv(1 << 20):
            pass
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        return True
    except socket.timeout:
        return False
    return True


def test_an_idle_connection_is_closed_but_one_with_a_watch_is_kept(cluster, connect):
    watching, idle = connect(), connect()
    created = watching.request({"id": 7, "op": "watch", "key": b"limits/idle"})
    assert created["watch"] == "created", created
    assert idle.request({"id": 1, "op": "status"})["id"] == 1
    # The idle one is told why, then closed; the clock that proves time passed.
    assert_error(idle.recv(), "idle_timeout")
    assert idle.recv() is None
    reply = watching.request({"id": 8, "op": "status"})
    assert reply is not None and "result" in reply, "a connection with a watch was closed"
    assert_serving(cluster)


@pytest.mark.parametrize("partial", [b"\x00\x00", protocol.LENGTH.pack(100) + b"0123456789"],
                         ids=["header", "body"])
def test_a_trickled_frame_is_dropped(cluster, connect, partial):
    conn = connect()
    conn.send_raw(partial)
    reply = conn.recv()
    assert_error(reply, "frame_timeout")
    assert "--frame-timeout" in reply["error"]["message"]
    assert conn.recv() is None
    assert_serving(cluster)


def test_watches_are_capped_per_connection_and_in_all(cluster, connect):
    first, second, third = connect(), connect(), connect()
    for watch_id in (1, 2):
        assert first.request({"id": watch_id, "op": "watch", "key": b"w"})["watch"] == "created"
    reply = first.request({"id": 3, "op": "watch", "key": b"w"})
    assert_error(reply, protocol.TOO_MANY_WATCHES, request_id=3)
    assert "--max-watches-per-connection" in reply["error"]["message"]
    for watch_id in (1, 2):
        assert second.request({"id": watch_id, "op": "watch", "key": b"w"})["watch"] == "created"
    reply = third.request({"id": 1, "op": "watch", "key": b"w"})
    assert_error(reply, protocol.TOO_MANY_WATCHES, request_id=1)
    assert "(--max-watches)" in reply["error"]["message"]
    # Cancelling one makes room.
    first.send({"id": 9, "op": "watch_cancel", "watch_id": 1})
    assert first.recv()["watch"] == "canceled"
    assert first.recv()["id"] == 9
    assert third.request({"id": 2, "op": "watch", "key": b"w"})["watch"] == "created"
    assert third.request({"id": 3, "op": "status"})["id"] == 3


def test_a_range_over_the_byte_cap_must_be_paged(cluster, connect):
    with cluster.client(timeout=15) as c:
        for n in range(3):
            c.put(b"limits/range/%d" % n, os.urandom(100 * KIB))
    conn = connect()
    reply = conn.request({"id": 4, "op": "range", "key": b"limits/range/",
                          "range_end": b"limits/range0"})
    assert_error(reply, protocol.TOO_LARGE, request_id=4)
    assert "--max-range-bytes" in reply["error"]["message"]
    paged = conn.request({"id": 5, "op": "range", "key": b"limits/range/",
                          "range_end": b"limits/range0", "limit": 2})
    assert len(paged["result"]["kvs"]) == 2 and paged["result"]["more"] is True
    keys = conn.request({"id": 6, "op": "range", "key": b"limits/range/",
                         "range_end": b"limits/range0", "keys_only": True})
    assert keys["result"]["count"] == 3
    assert_serving(cluster)


def test_writes_fail_with_no_space_over_the_quota_until_compaction(cluster):
    with cluster.client(timeout=15) as c:
        written, refused = [], None
        for n in range(40):
            try:
                c.put(b"limits/quota/%02d" % n, os.urandom(300 * KIB))
                written.append(b"limits/quota/%02d" % n)
            except StoreError as exc:
                refused = exc
                break
        assert refused is not None and refused.code == protocol.NO_SPACE, refused
        assert "--quota-backend-bytes" in str(refused) and "compact" in str(refused)
        status = c.status()
        assert status["alarms"] == ["NOSPACE"] and status["db_size"] > status["quota"]
        with pytest.raises(StoreError) as lease_refused:
            c.lease_grant(10)
        assert lease_refused.value.code == protocol.NO_SPACE
        # Reads and deletes still work; compaction frees the room.
        assert c.get(written[0])["kvs"]
        for key in written:
            c.delete(key)
        with pytest.raises(StoreError) as still_full:
            c.put(b"limits/quota/after", b"x")
        assert still_full.value.code == protocol.NO_SPACE, "deleting alone frees nothing"
        c.compact(c.status()["revision"])
        assert c.status()["alarms"] == []
        c.put(b"limits/quota/after", b"x")
    assert_serving(cluster)


def test_requests_over_the_in_flight_cap_are_refused(tmp_path):
    made = Clusters(tmp_path)
    try:
        cluster = made.new(1, name="inflight", extra_args=["--max-inflight", "4"])
        conn = RawConnection(cluster.nodes[0].client_addr, 15.0, cluster.client_tls["admin"])
        try:
            burst = b"".join(protocol.pack({"id": i, "op": "put", "key": b"burst/%d" % i,
                                            "value": b"v"}) for i in range(1, 41))
            conn.send_raw(burst)            # one write: the node reads all 40 at once
            replies = [conn.recv() for _ in range(40)]
            assert all(r is not None for r in replies), "the node hung up"
            refused = [r for r in replies if "error" in r]
            assert refused, "40 pipelined writes never hit a cap of 4 in flight"
            for reply in refused:
                assert 1 <= reply["id"] <= 40
                assert_error(reply, protocol.TOO_MANY_REQUESTS, request_id=reply["id"])
            assert any("result" in r for r in replies)
            assert conn.request({"id": 99, "op": "status"})["id"] == 99
        finally:
            conn.close()
        assert_serving(cluster)
    finally:
        made.stop_all()
