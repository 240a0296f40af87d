"""A network partition isolates the leader from its peers while writers run, then heals.

Each member runs in its own network namespace (``ip netns exec``), joined by veth
pairs to a bridge in a LAN namespace of this test (172.31.230.0/24, no route out;
the root namespace gets no address). The test's clients open their sockets
inside the LAN namespace (``agent.netns.run_in``), so they reach every member,
the isolated one included. An nftables table inside the leader's namespace drops
every packet to and from the other members (clients still get through): the
leader is a minority of one.

While it is isolated the majority elects a new leader and keeps acknowledging
writes; the old leader must neither acknowledge a write nor answer a
linearizable read. After the heal it follows the new leader and catches up;
every acknowledged write is in the store's history and the recorded history is
linearizable.
"""

import os
import shutil
import subprocess
import time
import uuid

import pytest

from agent import netns
from cli.local_store import LocalStoreCluster
from store.client import StoreError
from tests.fault.store.harness import (
    FAULT_ARGS,
    KEYS,
    Workload,
    assert_linearizable,
    call_with_deadline,
    current_revision,
    replay,
    status_of,
    summary,
    wait_caught_up,
    wait_for,
)
from tests.support.lincheck import History

pytestmark = [
    pytest.mark.fault,
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(not (shutil.which("ip") and shutil.which("nft")),
                       reason="needs the ip (iproute2) and nft (nftables) commands"),
]

SUBNET = "172.31.230"
BRIDGE = f"{SUBNET}.254"
PARTITION_TABLE = "steer_test_partition"


def run(*argv, input=None):
    done = subprocess.run(argv, capture_output=True, input=input)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()}")


class NamespacedCluster(LocalStoreCluster):
    """A store cluster whose member ``i`` runs in namespace ``namespaces[i]`` at ``addresses[i]``."""

    def __init__(self, base_dir, namespaces, addresses):
        super().__init__(len(namespaces), base_dir=base_dir, extra_args=FAULT_ARGS, tls=False)
        self.namespaces = namespaces
        for node, address in zip(self.nodes, addresses):
            node.peer_addr, node.client_addr = f"{address}:2380", f"{address}:2379"
            node.metrics_addr = f"{address}:2381"
        # Member certificates must name the namespace addresses: issue them again.
        for node in self.nodes:
            for path in self._member_files(node):
                if os.path.exists(path):
                    os.remove(path)
        self.tls = True
        self.ensure_certificates()

    def command(self, i, initial_cluster=None):
        # `ip netns exec` execs the member: the pid this class kills is the member's.
        return ["ip", "netns", "exec", self.namespaces[i], *super().command(i, initial_cluster)]


class Bed:
    """A LAN namespace with a bridge and one namespace per member; clients enter the LAN."""

    def __init__(self, size):
        self.prefix = f"stp{os.getpid()}{uuid.uuid4().hex[:4]}"
        self.lan = f"{self.prefix}-lan"
        self.members = [f"{self.prefix}-m{i}" for i in range(size)]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(size)]

    def create(self):
        netns.add(self.lan)
        run("ip", "-n", self.lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.lan, "addr", "add", f"{BRIDGE}/24", "dev", "br0")
        run("ip", "-n", self.lan, "link", "set", "br0", "up")
        for i, (name, address) in enumerate(zip(self.members, self.addresses)):
            netns.add(name)
            run("ip", "-n", self.lan, "link", "add", f"vm{i}", "type", "veth",
                "peer", "name", "eth0", "netns", name)
            run("ip", "-n", self.lan, "link", "set", f"vm{i}", "master", "br0", "up")
            run("ip", "-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
            run("ip", "-n", name, "link", "set", "eth0", "up")

    def delete(self):
        for name in [*self.members, self.lan]:
            netns.delete(name)

    def in_lan(self, fn):
        """Run ``fn()`` on a thread inside the LAN namespace (its sockets stay there)."""
        return netns.run_in(netns.path_for(self.lan), fn)

    def isolate(self, i):
        """Drop every packet between member ``i`` and the other members."""
        others = ", ".join(a for j, a in enumerate(self.addresses) if j != i)
        rules = (f"table inet {PARTITION_TABLE} {{\n"
                 f"  chain input {{ type filter hook input priority 0; policy accept;\n"
                 f"    ip saddr {{ {others} }} drop\n  }}\n"
                 f"  chain output {{ type filter hook output priority 0; policy accept;\n"
                 f"    ip daddr {{ {others} }} drop\n  }}\n}}\n")
        run("ip", "netns", "exec", self.members[i], "nft", "-f", "-", input=rules.encode())

    def heal(self, i):
        run("ip", "netns", "exec", self.members[i], "nft", "delete", "table", "inet",
            PARTITION_TABLE)


class LanWorkload(Workload):
    """The harness's workload with every client thread inside the LAN namespace."""

    def __init__(self, bed, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bed = bed

    def _run(self, t):
        self.bed.in_lan(lambda: Workload._run(self, t))


@pytest.fixture
def partition_bed(request, tmp_path):
    """Yield ``(bed, cluster)``: 3 members in their namespaces, started and ready."""
    bed = Bed(3)
    cluster = None
    try:
        bed.create()
        cluster = NamespacedCluster(str(tmp_path / "cluster"), bed.members, bed.addresses)
        request.node._store_clusters = [cluster]    # conftest attaches logs on failure
        cluster.start_all()
        bed.in_lan(lambda: cluster.wait_ready(timeout=60))
        yield bed, cluster
    finally:
        if cluster is not None:
            cluster.stop_all()
        bed.delete()


def leader_of(bed, cluster, among, timeout=60):
    return bed.in_lan(lambda: cluster.leader_index(timeout=timeout, among=among))


def probe_old_leader(bed, cluster, old, history, value):
    """A write and a linearizable read through the isolated member alone; both must fail."""
    def probe():
        believes = cluster.node_status(old, timeout=2.0) or {}
        with cluster.node_client(old, timeout=4.0) as client:
            op = history.invoke("probe", "read", KEYS[0])
            result, read_error = call_with_deadline(lambda: client.get(KEYS[0]), 30,
                                                    "a read from the isolated leader")
            if read_error is None:
                history.ok(op, result["kvs"][0]["value"] if result["kvs"] else None)
            else:
                history.fail(op)
            op = history.invoke("probe", "write", KEYS[0], value)
            _, write_error = call_with_deadline(lambda: client.put(KEYS[0], value), 30,
                                                "a put to the isolated leader")
            if write_error is None:
                history.ok(op)
            else:
                history.info(op)     # ambiguous: it may have logged it, never committed
        return believes, write_error, read_error, result
    believes, write_error, read_error, result = bed.in_lan(probe)
    old_peer = cluster.nodes[old].peer_addr
    print(f"probe {value.decode()}: the isolated member "
          f"{'still believed it led' if believes.get('leader_peer') == old_peer else 'had stepped down'}"
          f"; read gave {read_error!r}, write gave {write_error!r}")
    assert isinstance(write_error, StoreError), (
        f"the isolated old leader acknowledged a write (error: {write_error!r})")
    assert isinstance(read_error, StoreError), (
        f"the isolated old leader answered a linearizable read: {result}")


def test_isolated_leader_neither_acknowledges_nor_serves_stale_reads(partition_bed):
    bed, cluster = partition_bed
    history = History()
    old = leader_of(bed, cluster, [0, 1, 2])
    majority = [i for i in range(3) if i != old]
    workload = LanWorkload(bed, cluster, history, threads=4, max_ops=100_000).start()

    def progress(what, count=10):
        mark = time.monotonic_ns()
        wait_for(lambda: workload.ok_writes_after(mark) >= count, 60, what)

    try:
        progress("the workload to get going", count=20)
        bed.isolate(old)
        # At once, while it may still believe it leads, then after the majority moved on.
        probe_old_leader(bed, cluster, old, history, b"while-isolated-1")
        new = leader_of(bed, cluster, majority)
        progress("writes to be acknowledged by the majority")
        probe_old_leader(bed, cluster, old, history, b"while-isolated-2")
        isolated_status = bed.in_lan(lambda: status_of(cluster, old))
        bed.heal(old)

        agreed = leader_of(bed, cluster, [0, 1, 2])
        assert agreed != old, "the old leader won again with a stale log"
        bed.in_lan(lambda: wait_caught_up(cluster, old, current_revision(cluster), timeout=60))
        progress("writes after the heal")
    finally:
        workload.stop()
    print(f"{summary(history, workload)}; old leader {cluster.nodes[old].name} while "
          f"isolated: leader_peer={isolated_status['leader_peer']} "
          f"revision={isolated_status['revision']}; new leader {cluster.nodes[new].name}")

    end = bed.in_lan(lambda: current_revision(cluster))
    truth = bed.in_lan(lambda: replay(cluster.endpoints, 1, end,
                                      tls=cluster.client_tls["admin"]))
    lost = {r: w for r, w in workload.acked.items() if truth.get(r) != w}
    assert not lost, f"acknowledged writes lost across the partition: {lost}"
    assert_linearizable(history)
