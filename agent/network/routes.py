"""Route every other node's podCIDR through that node (host-gw, as flannel's host-gw backend).

Nodes on one L2 segment need no tunnel: a packet for a pod on node B leaves node A
for B's address on the LAN, and B forwards it to its CNI bridge. So every agent
watches the Nodes and keeps, in its node's network namespace (``--node-netns``; a
real host's agent does not run this yet), one route per other node:
``<their podCIDR> via <their address>``.
The address is the Node's ``network.steersman.io/node-ip`` annotation (the agent's
``--pod-network-ip``; flannel publishes ``flannel.alpha.coreos.com/public-ip`` the
same way), falling back to its InternalIP: in a local cluster the InternalIP is a
loopback address the API server uses, not one on the pod LAN.

Routes we own carry ``proto 200`` (a routing protocol number nobody else uses here),
so a sync can list exactly ours and never touches a route someone else made.

Pods keep their own source address between nodes; only traffic leaving the cluster
CIDR is masqueraded, by one small nftables table (the CNI bridge's own ipMasq would
NAT pod-to-pod traffic between nodes too, so it is off: containerd_config.cni_conflist).
"""

import ipaddress
import json
import logging
import subprocess
import threading

from agent.network.cni import pod_cidr_of
from agent.network.nft_apply import NftError, find_binary, run_script
from control.client import Informer
from control.objects import kinds

log = logging.getLogger(__name__)

NODE_IP_ANNOTATION = "network.steersman.io/node-ip"
#: Marks our routes (iproute2's ``proto``; 200 is in no /etc/iproute2/rt_protos).
ROUTE_PROTO = 200
MASQ_TABLE = "steer-masq"
CLUSTER_CIDR = "10.244.0.0/16"     # the controller manager's --cluster-cidr default
RESYNC = 10.0


class RouteError(RuntimeError):
    """An ip command failed (the message carries its stderr)."""


# -- planning (pure) ---------------------------------------------------------------------
def node_ip_of(node):
    """The address other nodes route this node's podCIDR through (None: not known yet)."""
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    if annotations.get(NODE_IP_ANNOTATION):
        return annotations[NODE_IP_ANNOTATION]
    for address in (node.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP":
            return address.get("address")
    return None


def _valid(cidr, ip):
    try:
        return ipaddress.ip_network(cidr, strict=True).version == \
            ipaddress.ip_address(ip).version == 4
    except ValueError:
        return False


def wanted_routes(nodes, me, own_ip=None):
    """{podCIDR: gateway} for every other node that has both, as this node needs them.

    A node claiming our own range or our own address is skipped: a route to it
    would send our pods' packets back to us.
    """
    own = next((pod_cidr_of(n) for n in nodes if n["metadata"]["name"] == me), None)
    routes = {}
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        cidr, ip = pod_cidr_of(node), node_ip_of(node)
        if node["metadata"]["name"] == me or not cidr or not ip or cidr == own or \
                ip == own_ip:
            continue
        if not _valid(cidr, ip):
            log.warning("node=%s pod_cidr=%s node_ip=%s msg=ignoring a node whose podCIDR "
                        "or address is not IPv4", node["metadata"]["name"], cidr, ip)
            continue
        routes.setdefault(cidr, ip)     # two nodes claiming one range: the first by name
    return routes


def plan(existing, nodes, me, own_ip=None):
    """What to change: (``[(cidr, gateway)]`` to replace, ``[cidr]`` to delete).

    ``existing`` is {dst: gateway} of the routes we own now (``list_routes``).
    """
    wanted = wanted_routes(nodes, me, own_ip)
    replace = sorted((cidr, ip) for cidr, ip in wanted.items() if existing.get(cidr) != ip)
    delete = sorted(cidr for cidr in existing if cidr not in wanted)
    return replace, delete


def masq_script(pod_cidr, cluster_cidr):
    """One nft transaction: masquerade pod traffic leaving the cluster CIDR, nothing else.

    Traffic to multicast stays as it is (flannel's rule spares it too).
    """
    ipaddress.ip_network(pod_cidr, strict=True)
    ipaddress.ip_network(cluster_cidr, strict=True)
    return (f"table ip {MASQ_TABLE}\n"
            f"delete table ip {MASQ_TABLE}\n"
            f"table ip {MASQ_TABLE} {{\n"
            f"  chain postrouting {{\n"
            f"    type nat hook postrouting priority srcnat; policy accept;\n"
            f"    ip saddr {pod_cidr} ip daddr != {{ {cluster_cidr}, 224.0.0.0/4 }} "
            f"masquerade\n"
            f"  }}\n"
            f"}}\n")


# -- the ip command ----------------------------------------------------------------------
def _ip(netns_path, *args):
    argv = [find_binary("ip"), *args]
    if netns_path:
        argv = [find_binary("nsenter"), f"--net={netns_path}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RouteError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done.stdout


def list_routes(netns_path=None):
    """{dst: gateway} of the routes marked as ours in the namespace's main table."""
    out = _ip(netns_path, "-j", "route", "show", "proto", str(ROUTE_PROTO))
    return {r["dst"]: r.get("gateway") for r in json.loads(out or "[]") if "dst" in r}


def replace_route(netns_path, cidr, gateway):
    _ip(netns_path, "route", "replace", cidr, "via", gateway, "proto", str(ROUTE_PROTO))


def delete_route(netns_path, cidr):
    _ip(netns_path, "route", "del", cidr, "proto", str(ROUTE_PROTO))


def masq_table_present(netns_path=None):
    """Whether our masquerade table exists (someone may have flushed the ruleset)."""
    argv = [find_binary("nft"), "list", "table", "ip", MASQ_TABLE]
    if netns_path:
        argv = [find_binary("nsenter"), f"--net={netns_path}", *argv]
    return subprocess.run(argv, capture_output=True, timeout=30, check=False).returncode == 0


# -- the loop ----------------------------------------------------------------------------
class HostGateway:
    """Keep this node's routes to the other nodes' pods, and its masquerade rule."""

    def __init__(self, rest, node_name, netns_path=None, own_ip=None,
                 cluster_cidr=CLUSTER_CIDR, resync=RESYNC, informer=None):
        self.rest, self.node_name, self.netns_path = rest, node_name, netns_path
        self.own_ip, self.cluster_cidr, self.resync = own_ip, cluster_cidr, resync
        self.informer = informer or Informer(rest, kinds.NODES)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._masq = None        # the (podCIDR, cluster CIDR) the table is written for
        self._thread = None
        self.syncs = 0

    def start(self):
        wake = lambda *_: self._wake.set()      # noqa: E731 - one handler for all events
        self.informer.add_handler(on_add=wake, on_update=wake, on_delete=wake)
        self.informer.start()
        self._thread = threading.Thread(target=self._loop, name="host-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._wake.set()
        self.informer.stop()

    def _loop(self):
        self.informer.wait_for_sync()
        while not self._stop.is_set():
            try:
                self.sync()
            except (RouteError, NftError, OSError) as exc:
                log.warning("node=%s msg=pod routes not in sync, retrying error=%s",
                            self.node_name, exc)
            # Woken by a Node change; otherwise look again (a route deleted by hand).
            self._wake.wait(self.resync)
            self._wake.clear()

    def sync(self):
        """Make our routes match the Nodes, and the masquerade table our podCIDR."""
        nodes = self.informer.store.list()
        existing = list_routes(self.netns_path)
        replace, delete = plan(existing, nodes, self.node_name, self.own_ip)
        for cidr in delete:
            delete_route(self.netns_path, cidr)
            log.info("node=%s pod_cidr=%s msg=route removed", self.node_name, cidr)
        for cidr, gateway in replace:
            replace_route(self.netns_path, cidr, gateway)
            log.info("node=%s pod_cidr=%s via=%s msg=route set", self.node_name, cidr, gateway)
        me = next((n for n in nodes if n["metadata"]["name"] == self.node_name), None)
        own = pod_cidr_of(me)
        if own and ((own, self.cluster_cidr) != self._masq or
                    not masq_table_present(self.netns_path)):
            run_script(masq_script(own, self.cluster_cidr), self.netns_path)
            self._masq = (own, self.cluster_cidr)
            log.info("node=%s pod_cidr=%s cluster_cidr=%s msg=masquerade set",
                     self.node_name, own, self.cluster_cidr)
        self.syncs += 1
        return replace, delete
