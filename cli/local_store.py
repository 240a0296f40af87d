"""Start and stop a store cluster of real `steer-store` processes on this machine.

Used by `steer store up`, `steer up`, the integration and fault tests and the
benchmarks. It lives in cli/ (DESIGN §2: the local cluster is the CLI's) and reaches
the store only by running `python -m store.server` and through store.client. Ports
are picked free on loopback at creation, each node logs to ``<base>/<name>.log``,
and every process is ended by its own pid, never by name.

The client port speaks mutual TLS (as kubeadm sets etcd up). The cluster has its
own CA in ``<base>/pki`` (or ``pki_dir``), apart from the cluster CA, so no agent
or component certificate can reach the store: it issues each member's serving
certificate (its client address as IP SAN) and two client certificates, one for
the API servers (CN kube-apiserver-etcd-client) and one for the admin's `steer
store ...` (CN admin). ``client_tls`` names their files; ``tls=False`` runs the
client port as plain TCP, explicitly (--insecure-plain-client).
"""

import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from cli import pki
from cli.local_cluster import alive, child_environment
from store.client import StoreClient, StoreError

STATE_FILE = "cluster.json"
#: Client certificates of the store CA, by role: (file name, common name, groups).
CLIENT_CERTS = {
    "apiserver": ("apiserver-etcd-client", "kube-apiserver-etcd-client", ()),
    "admin": ("admin", "admin", ("system:masters",)),
}


def free_port(host="127.0.0.1"):
    """Ask the kernel for a port nobody is listening on right now."""
    return free_ports(1, host)[0]


def free_ports(count, host="127.0.0.1"):
    """Return ``count`` distinct free ports.

    Every socket stays bound until all are chosen: a port released at once can be
    handed out again by the very next request, and two members would collide.
    """
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass
class LocalNode:
    """One member: its name, addresses, data dir and (while running) its pid."""

    name: str
    peer_addr: str
    client_addr: str
    data_dir: str
    pid: int = 0
    metrics_addr: str = ""


class LocalStoreCluster:
    """A 3- or 5-node store cluster run as child processes of this one."""

    def __init__(self, size=3, base_dir=None, host="127.0.0.1", extra_args=(),
                 token=None, detach=False, tls=True, pki_dir=None):
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.base_dir = os.path.abspath(base_dir or os.path.join(os.getcwd(), "data", "store"))
        self.extra_args = list(extra_args)
        self.detach = detach
        self.token = token or f"steersman-{secrets.token_hex(4)}"
        os.makedirs(self.base_dir, exist_ok=True)
        self.secret_file = os.path.join(self.base_dir, "secret")
        if not os.path.exists(self.secret_file):
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        ports = iter(free_ports(3 * size, host))
        self.nodes = [
            LocalNode(f"s{i + 1}", f"{host}:{next(ports)}", f"{host}:{next(ports)}",
                      os.path.join(self.base_dir, f"s{i + 1}"),
                      metrics_addr=f"{host}:{next(ports)}")
            for i in range(size)
        ]
        self._procs = {}
        self.tls = tls
        self.pki_dir = os.path.abspath(pki_dir or os.path.join(self.base_dir, "pki"))
        self.ensure_certificates()      # the peer port is mutual TLS even when clients are not

    # -- certificates ------------------------------------------------------------------
    def ensure_certificates(self):
        """Make the store CA if missing; issue missing or expiring member and client certs."""
        ca = pki.CertificateAuthority.load_or_create(self.pki_dir,
                                                     common_name="steersman-store-ca")
        for node in self.nodes:
            self._issue_member(ca, node)
        for file_name, common_name, groups in CLIENT_CERTS.values():
            if pki.needs_rotation(os.path.join(self.pki_dir, f"{file_name}.crt")):
                ca.issue(self.pki_dir, file_name, common_name, organizations=groups,
                         client=True)

    def _issue_member(self, ca, node):
        if not pki.needs_rotation(self._member_files(node)[0]):
            return
        host = node.client_addr.rsplit(":", 1)[0].strip("[]")
        ips, names = ([host], []) if _is_ip(host) else ([], [host])
        # One certificate serves the client port and both ends of the peer port.
        ca.issue(self.pki_dir, f"{node.name}-member", node.name,
                 dns_names=["localhost", node.name, *names],
                 ip_addresses=sorted({*ips, "127.0.0.1"}), server=True, client=True)

    def _member_files(self, node):
        base = os.path.join(self.pki_dir, f"{node.name}-member")
        return base + ".crt", base + ".key"

    @property
    def ca_file(self):
        return os.path.join(self.pki_dir, pki.CA_CERT)

    @property
    def client_tls(self):
        """Client certificate files by role ("apiserver", "admin"): StoreClient keywords.

        ``StoreClient(cluster.endpoints, **cluster.client_tls["apiserver"])``; empty
        dicts when the client port is plain TCP.
        """
        if not self.tls:
            return {role: {} for role in CLIENT_CERTS}
        return {role: {"ca_file": self.ca_file,
                       "cert_file": os.path.join(self.pki_dir, f"{file_name}.crt"),
                       "key_file": os.path.join(self.pki_dir, f"{file_name}.key")}
                for role, (file_name, _, _) in CLIENT_CERTS.items()}

    def apiserver_tls_flags(self):
        """The steer-apiserver flags (--store-cafile/certfile/keyfile) for this store's TLS."""
        files = self.client_tls["apiserver"]
        if not files:
            return []
        return ["--store-cafile", files["ca_file"], "--store-certfile", files["cert_file"],
                "--store-keyfile", files["key_file"]]

    # -- state for `steer store up/down` ------------------------------------------------
    def save(self):
        """Record the cluster so a later `steer store down` can find it."""
        state = {"token": self.token, "nodes": [asdict(n) for n in self.nodes],
                 "extra_args": self.extra_args, "tls": self.tls, "pki_dir": self.pki_dir}
        with open(os.path.join(self.base_dir, STATE_FILE), "w") as f:
            json.dump(state, f, indent=2)

    @classmethod
    def load(cls, base_dir):
        """Rebuild the handle of a cluster saved in ``base_dir``."""
        with open(os.path.join(base_dir, STATE_FILE)) as f:
            state = json.load(f)
        cluster = cls.__new__(cls)
        cluster.base_dir = os.path.abspath(base_dir)
        cluster.extra_args = state.get("extra_args", [])
        cluster.detach = True
        cluster.token = state["token"]
        cluster.secret_file = os.path.join(cluster.base_dir, "secret")
        cluster.nodes = [LocalNode(**n) for n in state["nodes"]]
        cluster._procs = {}
        # A state written before TLS existed describes a plain client port.
        cluster.tls = state.get("tls", False)
        cluster.pki_dir = state.get("pki_dir") or os.path.join(cluster.base_dir, "pki")
        return cluster

    def add_node(self, name, host="127.0.0.1"):
        """Describe a new member with fresh ports (not started); return its index."""
        peer, client, metrics = free_ports(3, host)
        self.nodes.append(LocalNode(name, f"{host}:{peer}", f"{host}:{client}",
                                    os.path.join(self.base_dir, name),
                                    metrics_addr=f"{host}:{metrics}"))
        self.ensure_certificates()
        return len(self.nodes) - 1

    # -- processes -------------------------------------------------------------------
    @property
    def endpoints(self):
        return [n.client_addr for n in self.nodes]

    @property
    def initial_cluster(self):
        return ",".join(f"{n.name}={n.peer_addr}" for n in self.nodes)

    def command(self, i, initial_cluster=None):
        node = self.nodes[i]
        return [sys.executable, "-m", "store.server", "--name", node.name,
                "--data-dir", node.data_dir, "--peer-addr", node.peer_addr,
                "--client-addr", node.client_addr,
                "--initial-cluster", initial_cluster or self.initial_cluster,
                "--cluster-token", self.token,
                *(["--metrics-addr", node.metrics_addr] if node.metrics_addr else []),
                *self._tls_flags(node), *self.extra_args]

    def _tls_flags(self, node):
        cert, key = self._member_files(node)
        if not self.tls:
            return ["--insecure-plain-client", "--peer-cert-file", cert, "--peer-key-file", key,
                    "--peer-trusted-ca-file", self.ca_file]
        return ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", self.ca_file,
                "--client-cert-auth"]

    def start(self, i, initial_cluster=None):
        """Start (or restart) node ``i`` with its data dir."""
        node = self.nodes[i]
        os.makedirs(node.data_dir, exist_ok=True)
        self.ensure_certificates()      # renews what is near its expiry
        log = open(os.path.join(self.base_dir, f"{node.name}.log"), "ab")
        proc = subprocess.Popen(self.command(i, initial_cluster), stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env=child_environment(),
                                start_new_session=self.detach)
        log.close()
        self._procs[i] = proc
        node.pid = proc.pid
        return proc

    def start_all(self):
        for i in range(len(self.nodes)):
            self.start(i)
        if self.detach:
            self.save()

    def kill(self, i, sig=signal.SIGKILL):
        """Send ``sig`` (SIGKILL by default) to node ``i`` and reap it."""
        node = self.nodes[i]
        if not node.pid:
            return
        try:
            os.kill(node.pid, sig)
        except ProcessLookupError:
            pass
        proc = self._procs.pop(i, None)
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            _wait_gone(node.pid, 10)
        node.pid = 0

    def stop(self, i):
        """Stop node ``i`` politely (SIGTERM), then forcefully if it lingers."""
        self.kill(i, signal.SIGTERM)

    def stop_all(self):
        for i in range(len(self.nodes)):
            self.kill(i, signal.SIGKILL)

    def is_running(self, i):
        proc = self._procs.get(i)
        if proc is not None:
            return proc.poll() is None
        pid = self.nodes[i].pid
        return bool(pid) and alive(pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()

    # -- observing -------------------------------------------------------------------
    def client(self, role="admin", **kwargs):
        """A client of every member, with the ``role``'s certificate ("admin", "apiserver")."""
        return StoreClient(self.endpoints, **{**self.client_tls[role], **kwargs})

    def node_client(self, i, role="admin", **kwargs):
        """A client of member ``i`` alone."""
        return StoreClient([self.nodes[i].client_addr], **{**self.client_tls[role], **kwargs})

    def node_status(self, i, timeout=1.0):
        """Status of node ``i`` alone, or None if it does not answer."""
        with self.node_client(i, timeout=timeout) as c:
            try:
                return c.status(timeout=timeout)
            except StoreError:
                return None

    def leader_index(self, timeout=10.0, among=None):
        """Index of the node every running node agrees is leader."""
        deadline = time.monotonic() + timeout
        among = list(range(len(self.nodes))) if among is None else among
        while time.monotonic() < deadline:
            statuses = {i: self.node_status(i, 0.5) for i in among if self.is_running(i)}
            leaders = {s["leader_peer"] for s in statuses.values() if s}
            if len(leaders) == 1 and None not in leaders and all(statuses.values()):
                peer = leaders.pop()
                for i, node in enumerate(self.nodes):
                    if node.peer_addr == peer and i in statuses:
                        return i
            time.sleep(0.05)
        raise TimeoutError(f"no agreed leader within {timeout}s; see logs in {self.base_dir}")

    def wait_ready(self, timeout=30.0):
        """Wait until a leader is agreed and a linearizable read succeeds on every node."""
        deadline = time.monotonic() + timeout
        leader = self.leader_index(timeout)
        for i in range(len(self.nodes)):
            if not self.is_running(i):
                continue
            with self.node_client(i, timeout=max(0.1, deadline - time.monotonic())) as c:
                c.get(b"\0")
        return leader

    def logs(self):
        """Every node's log, for a failing test's report."""
        out = []
        for node in self.nodes:
            path = os.path.join(self.base_dir, f"{node.name}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- {node.name} ---\n{f.read()[-20000:]}")
        return "\n".join(out)


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
