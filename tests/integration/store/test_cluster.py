"""Clusters that change: 5 nodes, members added and removed, a leader killed.

Each test here gets its own cluster (they disturb it).
"""

import itertools
import os
import signal

import pytest

from store.client import LeaseNotFound, NotFound
from tests.support.storeproc import READY_TIMEOUT, node_client, wait_for


def test_five_nodes_write_anywhere_read_anywhere(clusters):
    cluster = clusters.new(5)
    clients = [node_client(cluster, i) for i in range(5)]
    try:
        for i, j in itertools.permutations(range(5), 2):
            key, value = f"five/{i}-{j}".encode(), os.urandom(8)
            clients[i].put(key, value)
            assert clients[j].get(key)["kvs"][0]["value"] == value, \
                f"a write via node {i} was not seen by a read via node {j}"
        assert clients[0].get_prefix(b"five/", count_only=True)["count"] == 20
        assert len(clients[3].members()) == 5
    finally:
        for c in clients:
            c.close()


def add_node(cluster, name):
    """Append a LocalNode with free ports to ``cluster`` (not started); return its index."""
    return cluster.add_node(name)


def member_names(client):
    return sorted(m["name"] for m in client.members())


def test_member_add_then_remove(clusters):
    cluster = clusters.new(3)
    client = cluster.client(timeout=20)
    try:
        for i in range(10):
            client.put(f"members/{i}".encode(), str(i).encode())

        new = add_node(cluster, "s4")
        node = cluster.nodes[new]
        members = client.member_add(node.name, node.peer_addr, client=node.client_addr)
        assert node.peer_addr in {m["peer"] for m in members}
        cluster.start(new, initial_cluster=cluster.initial_cluster)

        # The new member catches up: its local (serializable) state has the old data.
        with node_client(cluster, new, timeout=5) as c:
            wait_for(lambda: c.get_prefix(b"members/", serializable=True)["count"] == 10,
                     timeout=60, interval=0.2, message="the new member to catch up")
            assert c.get(b"members/7")["kvs"][0]["value"] == b"7"
        wait_for(lambda: member_names(client) == ["s1", "s2", "s3", "s4"], timeout=30,
                 interval=0.2, message="four named members")
        statuses = [cluster.node_status(i, timeout=5) for i in range(4)]
        assert all(statuses), statuses
        assert len({s["leader_peer"] for s in statuses}) == 1

        # Writes now replicate to all four.
        rev = client.put(b"members/after-add", b"x")["revision"]
        with node_client(cluster, new, timeout=5) as c:
            wait_for(lambda: c.get(b"members/after-add", serializable=True)["kvs"],
                     timeout=30, message="a new write to reach the new member")
            assert c.get(b"members/after-add")["revision"] >= rev

        # Remove it again (by name): three remain and writes still work.
        with pytest.raises(NotFound):
            client.member_remove("s9")
        remaining = client.member_remove("s4")
        assert node.peer_addr not in {m["peer"] for m in remaining}
        cluster.kill(new)
        wait_for(lambda: member_names(client) == ["s1", "s2", "s3"], timeout=30,
                 interval=0.2, message="three members after the removal")
        cluster.nodes.pop(new)
        client.put(b"members/after-remove", b"y")
        for i in range(3):
            with node_client(cluster, i) as c:
                assert c.get(b"members/after-remove")["kvs"][0]["value"] == b"y"
        assert cluster.leader_index(READY_TIMEOUT) in range(3)
    finally:
        client.close()


def test_lease_expiry_survives_a_leader_change(clusters):
    cluster = clusters.new(3)
    client = cluster.client(timeout=30)
    try:
        old_leader = cluster.leader_index(READY_TIMEOUT)
        lease = client.lease_grant(3)
        client.put(b"lease-leader/k", b"v", lease=lease["id"])
        old_term = client.status()["raft_term"]
        cluster.kill(old_leader, signal.SIGKILL)

        survivors = [i for i in range(3) if i != old_leader]
        new_leader = cluster.leader_index(READY_TIMEOUT, among=survivors)
        assert new_leader != old_leader
        # The new leader expires the lease: the key disappears on every survivor.
        wait_for(lambda: client.get(b"lease-leader/k")["kvs"] == [], timeout=60,
                 interval=0.2, message="the lease to expire under the new leader")
        for i in survivors:
            with node_client(cluster, i) as c:
                assert c.get(b"lease-leader/k")["kvs"] == []
                assert c.status()["raft_term"] > old_term
        with pytest.raises(LeaseNotFound):
            client.lease_keepalive(lease["id"])
    finally:
        client.close()
