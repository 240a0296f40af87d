"""The local cluster's own network: one network namespace per node, joined by a private LAN.

A local cluster must not put a pod, Service or node address on this machine's
real network (DESIGN.md §8). So, as kind runs each node in a container, `steer up`
runs each node's containerd (and so its pods, its CNI bridge and pod routes) in a
network namespace of its own, and joins the nodes with a bridge that lives in one
more namespace, the LAN, which has no other interface and no default route:

    root namespace            (nothing added here; the agents, the API server and the
                               store stay on loopback as before)
    st-<id>-lan               bridge "lan0" with the LAN's gateway address (.254): the
                               cluster registry listens there
    st-<id>-node-1 ... N      lo, and "eth0" (a veth whose peer is on lan0) with the
                               node's LAN address (.N)

A packet for any cluster address that no namespace claims has nowhere to go: no
namespace here routes to this machine's network. ``<id>`` is derived from the
cluster's home directory, so two local clusters get distinct namespaces.

Every step is an ``ip`` command (iproute2); namespaces are created with
``ip netns add`` (a mount under /run/netns), so ``ip netns exec`` and nsenter
reach them by name.
"""

import dataclasses
import hashlib
import ipaddress
import os
import shutil
import subprocess

#: The node LAN: node-N gets .N, the LAN's own address (gateway, registry) is .254.
DEFAULT_NODE_NETWORK = "172.31.250.0/24"
NETNS_DIR = "/run/netns"
LAN_BRIDGE = "lan0"


class NetworkError(Exception):
    """The namespaces could not be made (not root, no iproute2, a failing ip command)."""


@dataclasses.dataclass
class NodeNetwork:
    name: str            # node name (node-1)
    netns: str           # namespace name
    address: str         # the node's LAN address

    @property
    def netns_path(self):
        return os.path.join(NETNS_DIR, self.netns)


@dataclasses.dataclass
class LocalNetwork:
    """The LAN namespace and the node namespaces of one local cluster."""
    cluster_id: str
    network: str
    lan_netns: str
    gateway: str
    nodes: list

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def record(self):
        """What `steer up` stores in cluster.json (and `from_record` reads back)."""
        return {"clusterId": self.cluster_id, "network": self.network,
                "lanNetns": self.lan_netns, "gateway": self.gateway,
                "nodes": [dataclasses.asdict(n) for n in self.nodes]}

    @classmethod
    def from_record(cls, record):
        return cls(record["clusterId"], record["network"], record["lanNetns"],
                   record["gateway"], [NodeNetwork(**n) for n in record["nodes"]])


def cluster_id(home):
    """A short id from the cluster's home directory: namespace names are machine-wide."""
    return hashlib.sha256(os.path.abspath(home).encode()).hexdigest()[:6]


def plan(home, node_names, network=DEFAULT_NODE_NETWORK):
    """The names and addresses of a cluster's namespaces (nothing is created)."""
    net = ipaddress.ip_network(network)
    hosts = list(net.hosts())
    if len(node_names) + 1 > len(hosts):
        raise NetworkError(f"the node network {network} is too small for "
                           f"{len(node_names)} nodes")
    cid = cluster_id(home)
    nodes = [NodeNetwork(name, f"st-{cid}-{name}", str(hosts[i]))
             for i, name in enumerate(node_names)]
    return LocalNetwork(cid, network, f"st-{cid}-lan", str(hosts[-1]), nodes)


def unavailable_reason():
    """Why namespaces cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not shutil.which("ip"):
        return "iproute2 (the ip command) is not installed"
    return None


def _ip(*args, netns=None):
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {proc.stderr.strip()}")
    return proc.stdout


def exists(netns):
    return os.path.exists(os.path.join(NETNS_DIR, netns))


def create(local):
    """Create the LAN and every node namespace (idempotent: existing ones are kept)."""
    reason = unavailable_reason()
    if reason:
        raise NetworkError(reason)
    prefix = ipaddress.ip_network(local.network).prefixlen
    if not exists(local.lan_netns):
        _ip("netns", "add", local.lan_netns)
        _ip("link", "set", "lo", "up", netns=local.lan_netns)
        _ip("link", "add", LAN_BRIDGE, "type", "bridge", netns=local.lan_netns)
        _ip("addr", "add", f"{local.gateway}/{prefix}", "dev", LAN_BRIDGE, netns=local.lan_netns)
        _ip("link", "set", LAN_BRIDGE, "up", netns=local.lan_netns)
    for index, node in enumerate(local.nodes, start=1):
        if exists(node.netns):
            continue
        _ip("netns", "add", node.netns)
        _ip("link", "set", "lo", "up", netns=node.netns)
        # Both ends are born in their namespaces: nothing appears in the root one.
        peer = f"veth{index}"
        _ip("link", "add", "eth0", "netns", node.netns, "type", "veth",
            "peer", "name", peer, "netns", local.lan_netns)
        _ip("link", "set", peer, "master", LAN_BRIDGE, "up", netns=local.lan_netns)
        _ip("addr", "add", f"{node.address}/{prefix}", "dev", "eth0", netns=node.netns)
        _ip("link", "set", "eth0", "up", netns=node.netns)
    return local


def delete(local):
    """Delete the node and LAN namespaces (their veths and bridges go with them)."""
    for netns in [n.netns for n in local.nodes] + [local.lan_netns]:
        if exists(netns):
            try:
                _ip("netns", "delete", netns)
            except NetworkError:
                pass      # busy (a process still inside): `steer down` reports leftovers


def leftovers(local):
    """Namespaces of this cluster that still exist."""
    return [ns for ns in [n.netns for n in local.nodes] + [local.lan_netns] if exists(ns)]


def exec_argv(netns, argv):
    """``argv`` run inside ``netns``: nsenter execs it (the pid is the program's own).

    Not ``ip netns exec``: that also gives the program a mount namespace of its own,
    so a containerd restarted that way would not see its pods' mounts.
    """
    return ["nsenter", f"--net={os.path.join(NETNS_DIR, netns)}", "--"] + list(argv)
