"""A real containerd for tests: its own network namespace, directories, socket and images.

``running_containerd(tmp_dir)`` is what a node of the local cluster is, minus the
agent: a fresh network namespace, containerd started inside it with a generated
configuration, the locally built pause and busybox images imported. On exit every
sandbox is removed and containerd, its shims, cgroups, mounts and namespace are gone.
Several may run at once (other tests, other helpers): every name is unique.
"""

import contextlib
import dataclasses
import os
import secrets
import shutil
import subprocess
import tempfile

from agent import netns
from agent.provision import containerd as provision
from agent.runtime.cri.client import CriClient
from cli import local_images

STREAM_PORT = 10010         # inside the node's own namespace: cannot collide
_TOOLS = ("containerd", "runc", "ctr", "ip", "nsenter", "iptables", "skopeo", "gcc")


def missing_requirements():
    """Why a real containerd cannot run here (a skip reason), or None if it can."""
    if os.geteuid() != 0:
        return "containerd, network namespaces and cgroups need root"
    missing = [tool for tool in _TOOLS
               if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
               is None]
    if not os.path.exists("/usr/lib/cni/bridge"):
        missing.append("CNI plugins (/usr/lib/cni)")
    if missing:
        return ("missing " + ", ".join(missing) + ": install the Debian packages containerd "
                "runc containernetworking-plugins iptables skopeo gcc busybox-static")
    return None


@dataclasses.dataclass
class Handle:
    """One running containerd and how to reach it and its pods."""

    netns: str                  # the namespace's name (ip netns)
    netns_path: str             # /run/netns/<name>, for agent.netns
    endpoint: str               # unix:///.../containerd.sock
    socket: str
    pid: int                    # containerd's own pid
    paths: provision.ContainerdPaths
    client: CriClient
    pod_cidr: str

    @property
    def node_name(self):
        """The name pod cgroups are filed under (provision.pod_cgroup_parent)."""
        return self.paths.node_name

    def connect(self, address, timeout=5):
        """A TCP socket to ``address`` opened from inside the node's namespace."""
        return netns.connect(self.netns_path, address, timeout)

    def run(self, argv, timeout=30, check=True):
        """Run ``argv`` inside the node's namespace; return the CompletedProcess (text)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True,
                              text=True, timeout=timeout, check=check)


@contextlib.contextmanager
def running_containerd(tmp_dir, pod_cidr="10.244.9.0/24", images=("pause", "busybox"),
                       registry_mirrors=None, netns_name=None):
    """Start a containerd in a new namespace under ``tmp_dir``; yield its Handle.

    ``images`` names the local images to import ("pause", "busybox", "hello").
    ``netns_name``: run in this existing namespace instead (a node of a LAN the test
    made, cli/local_network.py); the caller deletes it.
    """
    reason = missing_requirements()
    if reason is not None:
        raise RuntimeError(f"cannot run containerd here: {reason}")
    name = netns_name or f"steer-ctd-{os.getpid()}-{secrets.token_hex(3)}"
    node_dir = os.path.join(str(tmp_dir), name)
    # A unix socket path holds 107 bytes; pytest's tmp_path can be deeper than that.
    socket_dir = tempfile.mkdtemp(prefix="steer-ctd-")
    netns_path = netns.path_for(name) if netns_name else netns.add(name)
    paths = pid = client = None
    try:
        paths = provision.write_config(
            node_dir, pod_cidr=pod_cidr, stream_port=STREAM_PORT,
            sandbox_image=local_images.PAUSE_IMAGE, registry_mirrors=registry_mirrors,
            node_name=name, socket=os.path.join(socket_dir, "containerd.sock"))
        pid = provision.start_containerd(paths, netns_path)
        provision.wait_ready(paths.endpoint, timeout=60, pid=pid, log_path=paths.log_path)
        for image in images:
            archive = _BUILDERS[image]()
            local_images.import_archive(paths.socket, archive.path)
        client = CriClient(paths.endpoint, timeout=30)
        yield Handle(netns=name, netns_path=netns_path, endpoint=paths.endpoint,
                     socket=paths.socket, pid=pid, paths=paths, client=client,
                     pod_cidr=pod_cidr)
    finally:
        try:
            if paths is not None and pid is not None:
                provision.stop_containerd(paths, pid, client=client)
        finally:
            if client is not None:
                client.close()
            if not netns_name:
                netns.delete(name)
            shutil.rmtree(socket_dir, ignore_errors=True)


_BUILDERS = {
    "pause": local_images.build_pause,
    "busybox": local_images.build_busybox,
    "hello": local_images.build_hello,
}
