"""Write one node's containerd configuration: config.toml, the CNI conflist, certs.d.

Everything containerd keeps (root, state, socket, runc state, IPAM leases) lives under
the node's own directory, so several nodes can share a machine (the local cluster, the
tests) and a real host can use /var/lib/steersman the same way. The keys are those of
containerd 1.6 (config version 2); see ../shared/notes/containerd-on-these-machines.md.
"""

import dataclasses
import ipaddress
import json
import os

from agent.provision import toml_writer

CRI = "io.containerd.grpc.v1.cri"
CNI_CONF_NAME = "10-steer.conflist"


@dataclasses.dataclass(frozen=True)
class ContainerdPaths:
    """Where one node's containerd keeps its files, and what the agent needs to reach it."""

    node_dir: str
    node_name: str
    config: str
    socket: str
    root: str
    state: str
    runc_root: str
    cni_conf_dir: str
    cni_conf: str
    cni_bin_dir: str
    ipam_dir: str
    certs_dir: str
    log_path: str
    network_name: str
    stream_port: int
    cgroup_parent: str      # pods' cgroups go below it: see containerd.pod_cgroup_parent

    @property
    def endpoint(self):
        """The CRI endpoint as kubelet spells it: unix:///path/to/containerd.sock."""
        return "unix://" + self.socket

    @property
    def pod_netns_dir(self):
        """Where the CRI plugin mounts pod network namespaces (netns_mounts_under_state_dir)."""
        return os.path.join(self.state, CRI, "netns")


def node_cgroup_parent(node_name):
    """The cgroupfs path under which every pod cgroup of ``node_name`` is created."""
    if not node_name or "/" in node_name or node_name in (".", ".."):
        raise ValueError(f"node name {node_name!r} cannot name a cgroup directory")
    return f"/steer/{node_name}"


def write_config(node_dir, *, pod_cidr, stream_port, sandbox_image, registry_mirrors=None,
                 cni_bin_dir="/usr/lib/cni", runc="/usr/sbin/runc", node_name=None,
                 network_name=None, socket=None):
    """Write containerd's files for the node at ``node_dir``; return their ContainerdPaths.

    With ``pod_cidr`` None no CNI configuration is written: the agent writes it when
    its Node gets a spec.podCIDR (write_pod_network). ``registry_mirrors`` maps a
    registry host (as images name it, e.g. "steer.local") to the URL that serves it
    (e.g. "http://10.0.0.1:5000"). ``node_name`` (default: the
    directory's name) names the pods' cgroup parent; ``network_name`` (default
    "steer-<node>") names the CNI network and so its cache entries. ``socket``
    (default node_dir/run/containerd.sock) is for node directories too deep for a unix
    socket path (108 bytes).
    """
    paths = containerd_paths(node_dir, stream_port=stream_port, cni_bin_dir=cni_bin_dir,
                             node_name=node_name, network_name=network_name, socket=socket)
    for directory in (paths.node_dir, os.path.dirname(paths.socket), paths.root, paths.state,
                      paths.runc_root, paths.cni_conf_dir, paths.ipam_dir, paths.certs_dir):
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
    _write_private(paths.config, toml_writer.dumps(
        containerd_document(paths, sandbox_image=sandbox_image, runc=runc)))
    if pod_cidr is not None:
        write_pod_network(paths.cni_conf_dir, pod_cidr, paths.network_name)
    for host, url in (registry_mirrors or {}).items():
        write_registry_host(paths.certs_dir, host, url)
    return paths


def containerd_paths(node_dir, *, stream_port=0, cni_bin_dir="/usr/lib/cni", node_name=None,
                     network_name=None, socket=None):
    """The ContainerdPaths of a node directory (nothing is written: `steer down` uses it)."""
    node_dir = os.path.abspath(node_dir)
    node_name = node_name or os.path.basename(node_dir)
    return ContainerdPaths(
        node_dir=node_dir, node_name=node_name,
        config=os.path.join(node_dir, "config.toml"),
        socket=_socket_path(socket or os.path.join(node_dir, "run", "containerd.sock")),
        root=os.path.join(node_dir, "root"),
        state=os.path.join(node_dir, "state"),
        runc_root=os.path.join(node_dir, "runc"),
        cni_conf_dir=os.path.join(node_dir, "cni", "net.d"),
        cni_conf=os.path.join(node_dir, "cni", "net.d", CNI_CONF_NAME),
        cni_bin_dir=cni_bin_dir,
        ipam_dir=ipam_dir_of(os.path.join(node_dir, "cni", "net.d")),
        certs_dir=os.path.join(node_dir, "certs.d"),
        log_path=os.path.join(node_dir, "containerd.log"),
        network_name=network_name or f"steer-{node_name}",
        stream_port=int(stream_port),
        cgroup_parent=node_cgroup_parent(node_name))


def _socket_path(path):
    path = os.path.abspath(path)
    # containerd also binds path + ".ttrpc"; sun_path holds 107 bytes and a NUL.
    if len(os.fsencode(path + ".ttrpc")) > 107:
        raise ValueError(f"containerd socket path {path} is too long for a unix socket "
                         "(at most 101 bytes): pass a shorter socket= path")
    return path


def containerd_document(paths, *, sandbox_image, runc):
    """The config.toml of ``paths`` as a dict (version 2 keys)."""
    return {
        "version": 2,
        "root": paths.root,
        "state": paths.state,
        "grpc": {"address": paths.socket},
        "ttrpc": {"address": paths.socket + ".ttrpc"},
        "plugins": {
            # Otherwise containerd claims /opt/containerd, shared by every instance.
            "io.containerd.internal.v1.opt": {"path": os.path.join(paths.node_dir, "opt")},
            CRI: {
                "sandbox_image": sandbox_image,
                # Without CAP_SYS_RESOURCE (a VM or container host) runc cannot lower a
                # process's oom_score_adj below ours and every sandbox fails with "can't
                # get final child's PID from pipe: EOF"; restricting never hurts root hosts.
                "restrict_oom_score_adj": True,
                # Exec/attach/port-forward URLs point here; inside a node namespace
                # 127.0.0.1 is that node's own loopback.
                "stream_server_address": "127.0.0.1",
                "stream_server_port": str(paths.stream_port),
                # Pod namespaces under our state dir, not the host's /var/run/netns.
                "netns_mounts_under_state_dir": True,
                "containerd": {
                    "snapshotter": "overlayfs",
                    "default_runtime_name": "runc",
                    "runtimes": {"runc": {
                        "runtime_type": "io.containerd.runc.v2",
                        "options": {
                            # cgroupfs: no systemd on these hosts; cgroup_parent is a path.
                            "SystemdCgroup": False,
                            "BinaryName": runc,
                            "Root": paths.runc_root,
                        },
                    }},
                },
                "cni": {
                    "bin_dir": paths.cni_bin_dir,
                    "conf_dir": paths.cni_conf_dir,
                    "max_conf_num": 1,
                },
                "registry": {"config_path": paths.certs_dir},
            },
        },
    }


def ipam_dir_of(cni_conf_dir):
    """Where host-local keeps the node's address leases: beside the CNI config directory."""
    return os.path.join(os.path.dirname(os.path.abspath(cni_conf_dir)), "ipam")


def write_pod_network(cni_conf_dir, pod_cidr, network_name, ip_masq=False):
    """Write the node's CNI configuration for ``pod_cidr``; return its path.

    containerd's CRI plugin watches the directory and starts using the file at once;
    until it exists, sandboxes fail with "cni plugin not initialized". The agent
    calls this once it knows its node's spec.podCIDR (a local cluster or a real host).
    """
    network = ipaddress.ip_network(pod_cidr, strict=True)
    os.makedirs(cni_conf_dir, mode=0o700, exist_ok=True)
    path = os.path.join(cni_conf_dir, CNI_CONF_NAME)
    _write_private(path, json.dumps(
        cni_conflist(network_name, str(network), ipam_dir_of(cni_conf_dir), ip_masq),
        indent=2) + "\n")
    return path


def cni_conflist(network_name, pod_cidr, ipam_dir, ip_masq=False):
    """The pod network: a bridge with host-local addresses from ``pod_cidr``, and hostPorts.

    No loopback entry: containerd's CRI plugin always brings up the pod's ``lo`` with
    its own built-in loopback network, before this list. No ipMasq by default: the
    bridge plugin would masquerade everything leaving the pod subnet, pods on other
    nodes included; the agent masquerades only what leaves the cluster CIDR
    (agent/network/routes.py). ``ip_masq`` is for an agent that does not.
    """
    return {
        "cniVersion": "1.0.0",
        "name": network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": ip_masq,
                "hairpinMode": True,       # a pod reaching itself through a hostPort
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def write_registry_host(certs_dir, host, url):
    """Tell containerd to pull images named ``host/...`` from ``url`` (plain HTTP allowed).

    containerd re-reads certs.d on every pull, so this may change while it runs.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"registry mirror for {host} must be an http:// or https:// URL, "
                         f"got {url!r}")
    if not host or "/" in host or host in (".", ".."):
        raise ValueError(f"registry host {host!r} cannot name a certs.d directory")
    directory = os.path.join(certs_dir, host)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    document = {"server": url, "host": {url: {"capabilities": ["pull", "resolve"]}}}
    path = os.path.join(directory, "hosts.toml")
    _write_private(path, toml_writer.dumps(document))
    return path


def _write_private(path, text):
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
