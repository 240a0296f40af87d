"""Containers for a local cluster: its network, its registry and one containerd per node.

`steer up` with the cri runtime (the default where containerd is installed and we
are root) starts, before the agents:

1. the cluster's namespaces (cli/local_network.py): a LAN and one namespace per node;
2. the registry addon (Debian's docker-registry, cli/registry.py) in the LAN
   namespace at <gateway>:5000, holding the images built here without internet
   (cli/local_images.py: the pause image, busybox and the hello example;
   cli/local_dns_image.py: steer-dns, the cluster DNS addon's); every node
   pulls ``steer.local/...`` from it over plain HTTP (containerd's certs.d);
3. one containerd per node inside the node's namespace (agent/provision), so pods,
   their CNI bridge and their addresses exist only there;
4. the API door: pods reach the API server (on this machine's 127.0.0.1) through
   ``default/kubernetes`` (10.96.0.1:443), whose endpoint is <gateway>:6443, where
   agent/netns_door.py listens inside the LAN namespace and forwards to 127.0.0.1.

Each agent then runs with ``--runtime cri`` against its node's containerd. What was
started is recorded in cluster.json (``network``, ``containerd``), so `steer down`
can remove the pods, stop every containerd and its shims and delete the namespaces.
"""

import ipaddress
import os
import shutil
import socket

from agent.provision.containerd import (
    ContainerdError,
    running_containers,
    stop_containerd,
    wait_ready,
    write_config,
)
from agent.provision.containerd_config import containerd_paths
from cli import local_dns_image, local_images, local_network
from cli.local_cluster import python_module
from cli.local_store import free_ports
from cli.registry import Registry, push

REGISTRY_PORT = 5000
#: containerd's streaming server (exec, attach, port-forward) inside each node namespace.
STREAM_PORT = 10010
REGISTRY_HOST = "steer.local"
#: Programs the cri runtime of a local cluster needs, with the Debian package of each.
REQUIRED = (("containerd", "containerd"), ("runc", "runc"), ("nsenter", "util-linux"),
            ("docker-registry", "docker-registry"), ("skopeo", "skopeo"), ("gcc", "gcc"))
CNI_BRIDGE = "/usr/lib/cni/bridge"
#: The pods' range: the controller manager's --cluster-cidr default (control/controllers/nodeipam).
CLUSTER_CIDR = "10.244.0.0/16"
#: The API door's port on the LAN gateway: the endpoint of default/kubernetes.
API_DOOR_PORT = 6443
CLUSTER_DOMAIN = "cluster.local"


def nth_address(cidr, n):
    """The ``n``-th address of a range: 1 is `kubernetes`, 10 is cluster DNS (kube-dns)."""
    return str(ipaddress.ip_network(cidr, strict=False).network_address + n)


def api_advertise(home, node_names):
    """(address, port) pods reach the API server at: the door on the LAN's gateway."""
    return local_network.plan(home, node_names).gateway, API_DOOR_PORT


def advertise_flags(advertise):
    """The API server's --advertise-address/--advertise-port for ``advertise`` (None: none)."""
    if not advertise:
        return []
    return ["--advertise-address", advertise[0], "--advertise-port", str(advertise[1])]


def in_cluster_addresses(home, node_names, service_cidr):
    """Addresses pods reach the API server by: its ClusterIP and the door (certificate SANs)."""
    return [nth_address(service_cidr, 1), api_advertise(home, node_names)[0]]


def unavailable_reason():
    """Why this machine cannot run a local cluster's pods in containerd (None if it can)."""
    reason = local_network.unavailable_reason()
    if reason:
        return reason
    missing = sorted({package for program, package in REQUIRED
                      if not shutil.which(program, path=os.environ.get("PATH", "") +
                                          ":/usr/sbin:/sbin")})
    if not os.path.exists(CNI_BRIDGE):
        missing.append("containernetworking-plugins")
    if local_images.find_static_busybox() is None:
        missing.append("busybox-static")
    if missing:
        return f"missing Debian packages: {' '.join(sorted(missing))}"
    return None


def socket_dir(cluster_id):
    return f"/run/steer/{cluster_id}"


def socket_path(cluster_id, node):
    """containerd's socket: short (a unix socket path holds 107 bytes), root's own /run."""
    return f"{socket_dir(cluster_id)}/{node}/containerd.sock"


def start(cluster, node_names, say, timeout):
    """Start the network, the registry and every node's containerd; return agent flags per node."""
    net = local_network.create(local_network.plan(cluster.home, node_names))
    cluster.state["network"] = net.record()
    cluster.save()
    say(f"node namespaces {', '.join(n.netns for n in net.nodes)} on LAN {net.network}")

    registry_addr = f"{net.gateway}:{REGISTRY_PORT}"
    registry = Registry(os.path.join(cluster.dir, "registry"), registry_addr,
                        netns=net.lan_netns, cluster=cluster, name="registry")
    registry.start(timeout=min(timeout, 30.0))
    for build in (local_images.build_pause, local_images.build_busybox,
                  local_images.build_hello, local_dns_image.build_dns):
        archive = build()
        push(archive, registry_addr, archive.name.split("/", 1)[1], netns=net.lan_netns)
    door = open_registry_door(cluster, net, registry_addr)
    say(f"registry at {registry_addr} (as {REGISTRY_HOST}; from this machine {door}) with "
        f"{local_images.PAUSE_IMAGE}, {local_images.BUSYBOX_IMAGE}, {local_images.HELLO_IMAGE}, "
        f"{local_dns_image.DNS_IMAGE}")
    api_door = open_api_door(cluster, net)
    say(f"API door {api_door} (default/kubernetes) -> {cluster.state['apiServer']}")
    cluster_dns = nth_address(cluster.state.get("serviceClusterIPRange") or "10.96.0.0/12", 10)

    flags, record = {}, {}
    for node in net.nodes:
        paths = write_config(
            node_dir(cluster, node.name), pod_cidr=None, stream_port=STREAM_PORT,
            sandbox_image=local_images.PAUSE_IMAGE,
            registry_mirrors={REGISTRY_HOST: f"http://{registry_addr}"},
            node_name=node.netns, network_name=f"steer-{node.name}",
            socket=socket_path(net.cluster_id, node.name))
        name = f"containerd-{node.name}"
        pid = cluster.start(name, local_network.exec_argv(
            node.netns, ["containerd", "--config", paths.config]), "containerd")
        try:
            wait_ready(paths.endpoint, timeout, pid=pid, log_path=cluster.log_path(name))
        except ContainerdError as exc:
            raise ContainerdError(f"{exc}\n{cluster.log_tail(name, 10)}") from None
        record[node.name] = {"socket": paths.socket, "endpoint": paths.endpoint,
                             "nodeDir": paths.node_dir, "netns": node.netns_path,
                             "cgroupNode": node.netns, "process": name}
        flags[node.name] = ["--runtime", "cri", "--container-runtime-endpoint", paths.endpoint,
                            "--node-netns", node.netns_path,
                            # Other nodes route this node's pods through its LAN address.
                            "--pod-network-ip", node.address,
                            "--cluster-cidr", CLUSTER_CIDR,
                            # No resolver reaches out of the cluster's namespaces:
                            # pods get cluster DNS (cli/local_addons.py) and nothing else.
                            "--resolv-conf", "",
                            "--cluster-dns", cluster_dns, "--cluster-domain", CLUSTER_DOMAIN,
                            "--cni-conf-dir", paths.cni_conf_dir,
                            "--cgroup-root", paths.cgroup_parent]
    cluster.state["containerd"] = record
    cluster.save()
    say(f"containerd {', '.join(sorted(record))} ready")
    return flags


def open_registry_door(cluster, net, registry_addr):
    """Forward 127.0.0.1:5000 (or a free port) to the registry in the LAN namespace.

    So the user's own tools push to it from here (`skopeo copy ...
    docker://127.0.0.1:PORT/app:1`) and pods run it as steer.local/app:1, while no
    cluster address appears in this machine's namespace. Returns 127.0.0.1:PORT.
    """
    port = REGISTRY_PORT if _free(REGISTRY_PORT) else free_ports(1)[0]
    listen = f"127.0.0.1:{port}"
    cluster.start("registry-door", python_module(
        "agent.netns_door", "--listen", listen, "--netns", os.path.join(
            local_network.NETNS_DIR, net.lan_netns), "--to", registry_addr), "addon")
    cluster.state["registry"] = {"address": registry_addr, "door": listen,
                                 "host": REGISTRY_HOST}
    cluster.save()
    return listen


def open_api_door(cluster, net):
    """Listen on <gateway>:6443 inside the LAN namespace, forward to the API server here.

    The API server stays on this machine's loopback; no cluster address appears in
    this namespace. Returns the door's address.
    """
    api_port = int(cluster.state["apiServer"].rpartition(":")[2])
    listen = f"{net.gateway}:{API_DOOR_PORT}"
    cluster.start("api-door", python_module(
        "agent.netns_door", "--listen-netns", os.path.join(local_network.NETNS_DIR,
                                                           net.lan_netns),
        "--listen", listen, "--to", f"127.0.0.1:{api_port}"), "addon")
    cluster.save()
    return listen


def _free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def running(cluster):
    """Containers running in the cluster's containerds (those that answer)."""
    counts = [running_containers(info["endpoint"])
              for info in (cluster.state.get("containerd") or {}).values()]
    return sum(c for c in counts if c)


def node_dir(cluster, node):
    return os.path.join(cluster.dir, "containerd", node)


def stop(cluster, say, timeout=10.0):
    """Remove every pod, stop each containerd and its shims, the registry and the namespaces.

    Returns how many containerds were stopped. Every step runs even when one fails.
    """
    stopped = 0
    record = cluster.state.get("containerd") or {}
    network = cluster.state.get("network")
    for info in record.values():
        paths = containerd_paths(info["nodeDir"], node_name=info["cgroupNode"],
                                 socket=info["socket"])
        proc = cluster.processes.get(info["process"]) or {}
        pid = proc.get("pid") if cluster.is_running(info["process"]) else None
        try:
            stop_containerd(paths, pid, timeout=timeout)
        except ContainerdError as exc:
            say(f"warning: {exc}")
        if info["process"] in cluster.processes:
            cluster.stop([info["process"]], timeout)
        stopped += 1
    addons = [n for n in ("api-door", "registry-door", "registry") if n in cluster.processes]
    if addons:
        cluster.stop(addons, timeout)
    if network:
        # containerd's sockets (socket_path); a containerd killed leaves its .ttrpc one.
        shutil.rmtree(socket_dir(network["clusterId"]), ignore_errors=True)
        net = local_network.LocalNetwork.from_record(network)
        local_network.delete(net)
        left = local_network.leftovers(net)
        if left:
            say(f"warning: network namespaces still exist: {', '.join(left)} "
                "(a process still inside? `ip netns pids NAME`)")
    return stopped
