"""The cluster registry addon: Debian's docker-registry (2.8) serving images to the nodes.

`steer up` runs one for the local cluster, as k3s does, so images built on this
machine can be pulled by every node's containerd. The configuration is our own, not
Debian's default (which turns on htpasswd auth and listens on every address): storage
on the filesystem under the registry's directory, deletes allowed, no auth, and one
listening address, the one given. With ``netns`` the registry runs inside that network
namespace (`ip netns exec`, which execs in place, so the recorded pid is the
registry's own): the local cluster puts it in its "lan" namespace, where the node
namespaces reach it and nothing outside does.

Images are pushed with skopeo over plain HTTP (``push``).
"""

import os
import secrets
import subprocess
import time

import yaml

from cli.local_cluster import alive, proc_start_time, terminate
from cli.local_images import ImageArchive, ImageError, archive_kind, require_tool
from cli.oci_layout import layout_tag

REGISTRY_BINARY = "docker-registry"


def write_config(base_dir, addr):
    """Write ``base_dir``/config.yml (0600: it holds the HTTP secret); return its path."""
    os.makedirs(base_dir, mode=0o700, exist_ok=True)
    storage = os.path.join(base_dir, "storage")
    os.makedirs(storage, mode=0o700, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "registry"}},
        "storage": {"filesystem": {"rootdirectory": storage}, "delete": {"enabled": True}},
        # The secret signs upload state; one registry, so any random value works,
        # and setting it silences the registry's warning about a made-up one.
        "http": {"addr": addr, "secret": secrets.token_hex(16),
                 "headers": {"X-Content-Type-Options": ["nosniff"]}},
    }
    path = os.path.join(base_dir, "config.yml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(path, 0o600)
    return path


def in_netns(argv, netns=None):
    """``argv`` run inside network namespace ``netns`` (a name under /run/netns), if given."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


class Registry:
    """One docker-registry process: its directory, address, optional netns and pid.

    With ``cluster`` (a LocalCluster) it is started and stopped through the cluster's
    record under ``name``, so `steer down` stops it with the rest; without, it is a
    child of this process (tests).
    """

    def __init__(self, base_dir, addr, netns=None, cluster=None, name="registry"):
        self.base_dir = os.path.abspath(base_dir)
        self.addr = addr
        self.netns = netns
        self.cluster = cluster
        self.name = name
        self.pid = None
        self.start_time = None
        self.log_path = os.path.join(self.base_dir, "registry.log")
        self._proc = None

    @property
    def port(self):
        return int(self.addr.rsplit(":", 1)[1])

    def argv(self):
        return in_netns([REGISTRY_BINARY, "serve", os.path.join(self.base_dir, "config.yml")],
                        self.netns)

    def start(self, timeout=15.0):
        """Write the config, start the registry and wait until it listens; return its pid."""
        require_tool(REGISTRY_BINARY, "docker-registry")
        write_config(self.base_dir, self.addr)
        if self.cluster is not None:
            self.pid = self.cluster.start(self.name, self.argv(), "addon")
            self.log_path = self.cluster.log_path(self.name)
        else:
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True)
            self.pid = self._proc.pid
        self.start_time = proc_start_time(self.pid)
        self.wait_ready(timeout)
        return self.pid

    def wait_ready(self, timeout=15.0):
        """Wait until the registry listens on its port (seen in its own netns's /proc table)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(self.pid, self.start_time):
                self.stop()
                raise ImageError(f"the registry exited at start: {self._log_tail()}")
            if self.port in listening_ports(self.pid):
                return
            time.sleep(0.05)
        self.stop()
        raise ImageError(f"the registry did not listen on {self.addr} within {timeout} s: "
                         f"{self._log_tail()}")

    def stop(self, timeout=10.0):
        """Stop the registry by its pid (SIGTERM, then SIGKILL); its data stays."""
        if self.pid is None:
            return
        if self.cluster is not None:
            self.cluster.stop([self.name], timeout)
        else:
            terminate({self.pid: self.start_time}, timeout, groups=True)
            if self._proc is not None:
                self._proc.wait(timeout=timeout)
        self.pid = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _log_tail(self, lines=5):
        try:
            with open(self.log_path, errors="replace") as f:
                return " | ".join(line.strip() for line in f.readlines()[-lines:])
        except OSError:
            return "(no log)"


def listening_ports(pid):
    """TCP ports process ``pid`` itself listens on (in its own network namespace).

    /proc/PID/net/tcp lists the sockets of the process's namespace; only those whose
    inode is one of the process's open file descriptors are its own, so a port some
    other process holds does not count.
    """
    own = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue                                    # closed meanwhile
        if target.startswith("socket:["):
            own.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in own:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def source_reference(source):
    """The skopeo reference of an image: an ImageArchive, OCI layout dir or archive file."""
    if isinstance(source, ImageArchive):
        source = source.oci_dir or source.path
    source = os.fspath(source)
    if os.path.isdir(source):
        if not os.path.exists(os.path.join(source, "oci-layout")):
            raise ImageError(f"{source} is a directory but not an OCI image layout")
        tag = layout_tag(source)
        return f"oci:{source}:{tag}" if tag else f"oci:{source}"
    return f"{archive_kind(source)}:{source}"


def push(source, registry_addr, name, netns=None, timeout=300):
    """Copy an image to ``registry_addr`` as ``name`` ('busybox:1.35') over plain HTTP.

    Returns the pushed reference ('127.0.0.1:5000/busybox:1.35').
    """
    require_tool("skopeo")
    target = f"{registry_addr}/{name}"
    argv = in_netns(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-no-creds",
                     source_reference(source), f"docker://{target}"], netns)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ImageError(f"pushing {target} took more than {timeout} s") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise ImageError(f"could not push {target}: {lines[-1] if lines else 'skopeo failed'}")
    return target
