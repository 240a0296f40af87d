"""Linearizable reads use ReadIndex: a leader serves one only after a quorum confirms it.

The dangerous case is a deposed leader that does not know it yet: it was
paused (SIGSTOP) while the others elected a new leader and committed a write,
and its peers hung up on it, so when it resumes nothing has told it about the
new term. A read through it must return the new value or fail as unavailable;
the old value would be a stale (non-linearizable) read.
"""

import os
import signal

from store import protocol
from tests.support.storeproc import READY_TIMEOUT, RawConnection, node_client, wait_for

ESTABLISHED = "01"


def _socket_inodes(pid):
    """Inodes of the sockets process ``pid`` holds."""
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _tcp_sockets():
    """Every IPv4 TCP socket: inode -> (local, remote, state) as /proc shows them."""
    sockets = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            sockets[fields[9]] = (fields[1], fields[2], fields[3])
    return sockets


def _connected(pid_a, pid_b):
    """Tell whether an established TCP connection joins processes ``pid_a`` and ``pid_b``."""
    sockets = _tcp_sockets()
    ends_b = {(sockets[i][0], sockets[i][1]) for i in _socket_inodes(pid_b) if i in sockets}
    for inode in _socket_inodes(pid_a):
        local, remote, state = sockets.get(inode, (None, None, None))
        if state == ESTABLISHED and (remote, local) in ends_b:
            return True
    return False


def _depose_and_read(cluster, key, attempt):
    """Pause the leader until it is deposed and cut off, then read through it on resume."""
    old = cluster.leader_index(READY_TIMEOUT)
    old_pid = cluster.nodes[old].pid
    others = [i for i in range(len(cluster.nodes)) if i != old]
    with cluster.client(timeout=15.0) as client:
        client.put(key, f"old-{attempt}".encode())
    conn = RawConnection(cluster.nodes[old].client_addr, timeout=30.0,
                         tls=cluster.client_tls["admin"])
    try:
        os.kill(old_pid, signal.SIGSTOP)
        try:
            new = cluster.leader_index(READY_TIMEOUT, among=others)
            with node_client(cluster, new) as client:
                client.put(key, f"new-{attempt}".encode())
            # The new leader drops its connection to the silent old one; until
            # it reconnects, nothing tells the old leader about the new term.
            wait_for(lambda: not _connected(cluster.nodes[new].pid, old_pid),
                     timeout=READY_TIMEOUT, message="the new leader to hang up on the old one")
            conn.send({"id": 1, "op": "range", "key": key})
        finally:
            os.kill(old_pid, signal.SIGCONT)
        return conn.recv()
    finally:
        conn.close()


def test_deposed_leader_never_serves_a_stale_read(clusters):
    cluster = clusters.new(3)
    for attempt in range(3):
        reply = _depose_and_read(cluster, b"read-index/deposed", attempt)
        assert reply is not None, "the old leader hung up instead of answering"
        if "error" in reply:
            assert reply["error"]["code"] == protocol.UNAVAILABLE, reply
        else:
            assert [kv["value"] for kv in reply["result"]["kvs"]] == [f"new-{attempt}".encode()], \
                f"stale read through a deposed leader on attempt {attempt}: {reply}"
        cluster.wait_ready(READY_TIMEOUT)


def test_reads_through_every_node_see_the_latest_write(clusters):
    cluster = clusters.new(3)
    clients = [node_client(cluster, i) for i in range(3)]
    try:
        for n in range(30):
            writer = clients[n % 3]
            writer.put(b"read-index/latest", str(n).encode())
            for reader in clients:
                kvs = reader.get(b"read-index/latest")["kvs"]
                assert kvs[0]["value"] == str(n).encode()
    finally:
        for client in clients:
            client.close()


def test_single_node_cluster_serves_linearizable_reads(clusters):
    cluster = clusters.new(1)
    with cluster.client(timeout=15.0) as client:
        client.put(b"read-index/single", b"v")
        assert client.get(b"read-index/single")["kvs"][0]["value"] == b"v"
