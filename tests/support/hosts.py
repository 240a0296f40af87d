"""Simulated bare-metal hosts: a network, mount and PID namespace each, running sshd.

    with host_bed(3, tmp_path) as bed:
        conn = ssh.connect(ssh.HostTarget.parse(bed.hosts[0].target),
                           known_hosts=bed.known_hosts, key_filename=bed.admin_key,
                           sock=bed.sock(bed.hosts[0].address))

Each host is the network namespace ``sth-<bed>-<n>`` with one interface (172.31.240.n/24)
on a bridge in the LAN namespace ``sth-<bed>-lan``; nothing has a default route and
the root namespace gets no address, so the admin side opens its sockets inside the LAN
namespace (``bed.sock``) and other tools go through a door (``bed.door``). Inside
``ip netns exec`` each host also gets its own mount namespace, where per-host
directories of the bed are bind-mounted over the real paths Steersman uses
(/etc/steersman, /opt/steersman, ...) plus /etc/ssh, /etc/sudoers.d, /root, /home
and the account files (tests/support/hostroot.py), and a tmpfs over /run; and its own
PID and UTS namespace, whose pid 1 (a few lines of Python that reap orphans) runs
``sshd -D -e``. Everything started over SSH inherits them, so provisioning code uses
the real paths, and killing pid 1 kills the whole host like pulling its plug. Pids
seen inside a host are that host's own: from here use ``host.pids()``. The cgroup hierarchies of this machine are mounted again
inside (``ip netns exec`` hides them with a fresh /sys).

The bind targets that do not exist on this machine (/etc/steersman, /opt/steersman,
/var/lib/steersman, /var/log/steersman, /var/lib/containerd) are created once, empty:
a bind mount needs a mount point, and nothing is ever mounted there in the root
namespace. A host's persistent files are visible from here under ``host.path(...)``.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agent import netns
from tests.support import children, hostroot
from tests.support.hostroot import PASSWORD_USER, PER_HOST_DIRS, PER_HOST_FILES

SUBNET = "172.31.240"
BRIDGE_ADDRESS = f"{SUBNET}.254"
PROJECT_DIR = Path(__file__).resolve().parents[2]


def _run(*argv, input=None):
    return subprocess.run(argv, check=True, capture_output=True, input=input)


def _wait_for(condition, what, timeout=20.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class SimHost:
    """One simulated host: its namespace, address and directory on this machine."""

    name: str
    index: int
    address: str
    netns: str
    netns_path: str
    root: Path
    readonly_paths: tuple = ()
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def target(self):
        """``root@address``, what ``HostTarget.parse`` takes."""
        return f"root@{self.address}"

    @property
    def host_key_pub(self):
        return (self.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()

    def path(self, inside):
        """Where the host's file ``inside`` (under a per-host directory) lies on this machine."""
        for top in PER_HOST_DIRS + PER_HOST_FILES:
            if inside == top or inside.startswith(top.rstrip("/") + "/"):
                return self.root / inside.lstrip("/")
        raise ValueError(f"{inside} is not one of a host's own directories {PER_HOST_DIRS}")

    def pids(self):
        """Pids (this machine's numbering) of every process of the host: its PID
        namespace and anything else that entered its network namespace."""
        found = set(_netns_pids(self.netns))
        init = self.init_pid
        if init is not None:
            found.add(init)
            try:
                ns = os.readlink(f"/proc/{init}/ns/pid")
            except OSError:
                ns = None
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                            found.add(int(entry))
        return sorted(found)

    @property
    def init_pid(self):
        """The host's pid 1, as this machine numbers it (the child of ``unshare``)."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            if children.split():
                return int(children.split()[0])
        return None

    @property
    def sshd_pid(self):
        """The pid (this machine's numbering) of the host's listening sshd."""
        init = self.init_pid
        if init is None:
            return None
        with contextlib.suppress(OSError):
            for pid in Path(f"/proc/{init}/task/{init}/children").read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                    return int(pid)
        return None


def _netns_pids(name):
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class HostBed:
    """N simulated hosts on one LAN namespace; see the module docstring."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.id = uuid.uuid4().hex[:6]
        self.lan_netns = f"sth-{self.id}-lan"
        self.lan_netns_path = netns.path_for(self.lan_netns)
        self.hosts = []
        self.known_hosts = self.workdir / "known_hosts"
        self.admin_key = self.workdir / "admin_ed25519"
        self.password_user = PASSWORD_USER
        self._doors = []
        self._cgroup_lines = hostroot.cgroup_mount_lines()
        self._password_hash = hostroot.password_hash(PASSWORD_USER[1])

    # -- set-up and tear-down -------------------------------------------------
    def start(self, count):
        self.workdir.mkdir(parents=True, exist_ok=True)
        for top in PER_HOST_DIRS:
            os.makedirs(top, mode=0o755, exist_ok=True)     # empty mount points
        hostroot.keygen(self.admin_key, "steer-test-admin")
        netns.add(self.lan_netns)
        _run("ip", "-n", self.lan_netns, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", self.lan_netns, "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", "br0")
        _run("ip", "-n", self.lan_netns, "link", "set", "br0", "up")
        for _ in range(count):
            self.add_host()
        return self

    def close(self):
        """Kill every host's processes, delete namespaces and directories (best effort)."""
        errors = []
        for proc in self._doors:
            children.stop(proc, grace=5)
        for host in self.hosts:
            try:
                self.kill_host(host)
            except Exception as exc:       # keep cleaning the others
                errors.append(f"{host.name}: {exc}")
            netns.delete(host.netns)
        netns.delete(self.lan_netns)
        for host in self.hosts:
            shutil.rmtree(host.root, ignore_errors=True)
        if errors:
            raise RuntimeError("host bed cleanup: " + "; ".join(errors))

    # -- hosts ----------------------------------------------------------------
    def add_host(self, readonly_paths=()):
        """Create, boot and return one more host (``readonly_paths``: files made read-only
        inside it, e.g. /proc/sys/net/ipv4/ip_forward for a host lacking that feature)."""
        index = len(self.hosts) + 1
        name = f"h{index}"
        host = SimHost(name=name, index=index, address=f"{SUBNET}.{index}",
                       netns=f"sth-{self.id}-{index}",
                       netns_path=netns.path_for(f"sth-{self.id}-{index}"),
                       root=self.workdir / name, readonly_paths=tuple(readonly_paths))
        self.hosts.append(host)
        hostroot.prepare(host.root, host.name, host.address,
                         admin_pub=Path(f"{self.admin_key}.pub").read_text(),
                         password_hash=self._password_hash)
        (host.root / "boot.sh").write_text(hostroot.boot_script(
            host.root, host.name, self._cgroup_lines, host.readonly_paths))
        netns.add(host.netns)
        _run("ip", "-n", self.lan_netns, "link", "add", f"vh{index}", "type", "veth",
             "peer", "name", "eth0", "netns", host.netns)
        _run("ip", "-n", self.lan_netns, "link", "set", f"vh{index}", "master", "br0", "up")
        _run("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _run("ip", "-n", host.netns, "link", "set", "eth0", "up")
        self._write_known_hosts()
        self.start_host(host)
        return host

    def start_host(self, host):
        """Boot the host (its namespaces and sshd); wait until sshd answers."""
        if host.proc is not None and host.proc.poll() is None:
            raise RuntimeError(f"{host.name} is already running")
        log = open(host.root / "boot.log", "ab")
        try:
            host.proc = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, "unshare", "--mount", "--uts",
                 "--propagation", "private", "--pid", "--fork", "--mount-proc",
                 "sh", "-e", str(host.root / "boot.sh")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        finally:
            log.close()

        def answers():
            if host.proc.poll() is not None:
                raise RuntimeError(f"{host.name} did not boot (exit {host.proc.returncode}): "
                                   + (host.root / "boot.log").read_text()[-2000:])
            try:
                self.sock(host.address, timeout=0.5).close()
                return True
            except OSError:
                return False
        _wait_for(answers, f"sshd on {host.name} did not answer")
        return host

    def kill_host(self, host):
        """SIGKILL every process of the host (as if its power failed); its files stay.

        The cgroups its processes were in (containers' included) are removed after, as
        a reboot would: runc leaves them behind when its processes are killed.
        """
        pids = host.pids()
        cgroups = hostroot.cgroup_dirs(pids)
        # Not unshare itself: it must live to reap the host's pid 1, or that becomes a
        # zombie of this machine's init; it exits on its own once pid 1 is dead.
        unshare = host.proc.pid if host.proc is not None else None
        for pid in pids:
            if pid != unshare:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if host.proc is not None:
            try:
                host.proc.wait(10)
            except subprocess.TimeoutExpired:
                host.proc.kill()
                host.proc.wait(10)
        _wait_for(lambda: not _netns_pids(host.netns), f"processes of {host.name} did not end")
        host.proc = None
        hostroot.remove_cgroup_dirs(cgroups)

    # -- reaching the hosts ---------------------------------------------------
    def sock(self, address, port=22, timeout=10.0):
        """A TCP socket to ``address:port`` opened inside the LAN namespace."""
        return netns.connect(self.lan_netns_path, (address, port), timeout)

    def door(self, address, port):
        """Forward a free 127.0.0.1 port to ``address:port`` on the LAN; return that port."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.netns_door", "--listen", f"127.0.0.1:{local}",
             "--netns", self.lan_netns_path, "--to", f"{address}:{port}"],
            cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self._doors.append(proc)

        def listening():
            if proc.poll() is not None:
                raise RuntimeError(f"door to {address}:{port} exited {proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", local), timeout=0.5):
                return True
            return False
        _wait_for(listening, f"door to {address}:{port} did not listen")
        return local

    def _write_known_hosts(self):
        text = "".join(f"{h.address} {' '.join(h.host_key_pub.split()[:2])}\n"
                       for h in self.hosts)
        self.known_hosts.write_text(text)

    def describe(self):
        """A JSON-able summary (for a failing test's output)."""
        return json.dumps([{"name": h.name, "address": h.address, "netns": h.netns,
                            "pids": h.pids()} for h in self.hosts])


@contextlib.contextmanager
def host_bed(count, workdir):
    """Yield a ``HostBed`` of ``count`` running hosts; tear everything down after."""
    bed = HostBed(workdir)
    try:
        bed.start(count)
        yield bed
    finally:
        bed.close()
