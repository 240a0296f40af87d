"""A local 3-member etcd 3.4 cluster and a small client for its native gRPC API.

Both mirror the Steersman API the store benchmark uses, so ``bench/store.py``
can drive either system with the same code:

* :class:`EtcdCluster` has the shape of ``cli.local_store.LocalStoreCluster``
  (``start_all``, ``wait_ready``, ``endpoints``, ``leader_index``, ``kill``,
  ``start``, ``stop_all``, context manager);
* :class:`EtcdClient` has the shape of ``store.client.StoreClient``
  (``put``, ``get``, ``status``, ``close``) and returns the same dicts.

Settings are Steersman's, so the comparison is like for like:

* durable: etcd fsyncs its WAL on every commit by default and
  ``--unsafe-no-fsync`` is never passed (Steersman fdatasyncs its journal);
* Raft timing: ``--heartbeat-interval 100`` (Steersman's ``--heartbeat 0.1``)
  and ``--election-timeout 800``.  etcd's Raft draws each election timeout
  from [T, 2T) in heartbeat ticks, so T = 800 ms gives 0.8-1.5 s in 0.1 s
  steps; Steersman draws uniformly from its ``--election-min 0.8`` /
  ``--election-max 1.6``.  Same range, etcd's only in whole ticks;
* mutual TLS on both ports, as Steersman's client port and kubeadm's etcd:
  the bench makes a CA (``<base_dir>/pki``, cli.pki, ECDSA P-256 like the
  store CA), each member gets a certificate for 127.0.0.1 that serves and
  dials its peers, and the client presents a client certificate
  (``--client-cert-auth``, ``--peer-client-cert-auth``).  Steersman's peer
  traffic is encrypted too (Fernet with the cluster secret).

The client speaks etcd's gRPC API (``etcdserverpb.KV/Put``, ``KV/Range``,
``Maintenance/Status``) through stubs generated from bench/etcdpb/rpc.proto;
no JSON gateway, so every CPU-second counted as etcd's is etcd's own work.
One channel (one HTTP/2 connection) per client; a client is meant for one
thread and the benchmark gives every concurrent client its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import grpc

from bench.etcdpb import rpc_pb2 as pb
from bench.etcdpb import rpc_pb2_grpc as pb_grpc
from cli import pki
from cli.local_store import free_ports

ETCD_BINARY = "etcd"
# Raft timing matched to Steersman's defaults (store/node_main.py); see the module doc.
HEARTBEAT_MS = 100
ELECTION_MS = 800
CLIENT_CERT = "bench-client"


class EtcdError(Exception):
    """An error answer from etcd, or no answer at all."""


def _header(header) -> dict:
    return {
        "cluster_id": header.cluster_id,
        "member_id": header.member_id,
        "revision": header.revision,
        "raft_term": header.raft_term,
    }


def make_pki(directory: Path, members: int) -> dict:
    """Make the bench's etcd CA, one certificate per member and a client certificate.

    Returns ``{"ca": path, "members": [(cert, key)...], "client": (cert, key)}``.
    """
    ca = pki.CertificateAuthority.load_or_create(str(directory), common_name="bench-etcd-ca")
    issued = [
        ca.issue(str(directory), f"m{i}", f"m{i}", ip_addresses=["127.0.0.1"],
                 server=True, client=True)
        for i in range(members)
    ]  # fmt: skip
    client = ca.issue(str(directory), CLIENT_CERT, "root", client=True)
    return {
        "ca": ca.cert_path,
        "members": [(i.cert, i.key) for i in issued],
        "client": (client.cert, client.key),
    }


class EtcdClient:
    """A gRPC client of one etcd cluster over mutual TLS; one per thread.

    It talks to ``endpoints[0]`` and moves on to the next endpoint when a
    request fails; the failed request is not retried (the caller decides),
    mirroring what a benchmark needs to observe.  ``tls`` is
    ``{"ca_file", "cert_file", "key_file"}``.
    """

    def __init__(self, endpoints: list[str], timeout: float = 10.0, tls: dict | None = None):
        if not endpoints:
            raise ValueError("EtcdClient needs at least one endpoint")
        if not tls:
            raise ValueError("EtcdClient needs the bench CA and client certificate (tls=...)")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=Path(tls["ca_file"]).read_bytes(),
            private_key=Path(tls["key_file"]).read_bytes(),
            certificate_chain=Path(tls["cert_file"]).read_bytes(),
        )
        self._current = 0
        self._channel: grpc.Channel | None = None
        self._kv = self._maintenance = None

    def _stubs(self):
        if self._channel is None:
            self._channel = grpc.secure_channel(self.endpoints[self._current], self._credentials)
            self._kv = pb_grpc.KVStub(self._channel)
            self._maintenance = pb_grpc.MaintenanceStub(self._channel)
        return self._kv, self._maintenance

    def _drop_channel(self, rotate: bool) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._kv = self._maintenance = None
        if rotate:
            self._current = (self._current + 1) % len(self.endpoints)

    def _call(self, pick, request):
        endpoint = self.endpoints[self._current]
        try:
            return pick(*self._stubs())(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            self._drop_channel(rotate=True)
            raise EtcdError(f"{endpoint}: {exc.code().name}: {exc.details()}") from None

    # -- API (the shape of store.client.StoreClient) -------------------
    def put(self, key: bytes, value: bytes) -> dict:
        """Write ``key``; returns ``{"header": {"revision": ..., ...}}``."""
        answer = self._call(lambda kv, _: kv.Put, pb.PutRequest(key=key, value=value))
        return {"header": _header(answer.header)}

    def get(self, key: bytes, serializable: bool = False) -> dict:
        """Read ``key``, linearizable unless ``serializable``."""
        request = pb.RangeRequest(key=key, serializable=serializable)
        answer = self._call(lambda kv, _: kv.Range, request)
        kvs = [
            {
                "key": kv.key,
                "value": kv.value,
                "create_revision": kv.create_revision,
                "mod_revision": kv.mod_revision,
                "version": kv.version,
                "lease": kv.lease,
            }
            for kv in answer.kvs
        ]
        return {"header": _header(answer.header), "kvs": kvs}

    def status(self) -> dict:
        """Status of the member this client talks to."""
        answer = self._call(lambda _, m: m.Status, pb.StatusRequest())
        header = _header(answer.header)
        return {
            "header": header,
            "member_id": header["member_id"],
            "leader": answer.leader,
            "raft_term": answer.raftTerm,
            "raft_index": answer.raftIndex,
            "version": answer.version,
        }

    def close(self) -> None:
        self._drop_channel(rotate=False)


class EtcdCluster:
    """``size`` etcd members on loopback, started as child processes.

    Every process is tracked by pid and killed by :meth:`stop_all` (also on
    context exit).  A killed member restarts from its data directory.
    """

    def __init__(self, size: int = 3, base_dir: str | os.PathLike = ".") -> None:
        if shutil.which(ETCD_BINARY) is None:
            raise RuntimeError(
                "etcd is not installed: apt-get update && apt-get install -y etcd-server"
            )
        self.size = size
        self.base_dir = Path(base_dir)
        self.names = [f"m{i}" for i in range(size)]
        ports = free_ports(2 * size)
        self.client_ports, self.peer_ports = ports[:size], ports[size:]
        self.endpoints = [f"127.0.0.1:{port}" for port in self.client_ports]
        self.pki = make_pki(self.base_dir / "pki", size)
        cert, key = self.pki["client"]
        #: What an EtcdClient needs (``EtcdClient(endpoints, tls=cluster.client_tls)``).
        self.client_tls = {"ca_file": self.pki["ca"], "cert_file": cert, "key_file": key}
        self._procs: list[subprocess.Popen | None] = [None] * size
        self._logs: list = [None] * size
        self._member_ids: dict[int, int] = {}

    # -- processes -----------------------------------------------------
    def _command(self, i: int) -> list[str]:
        peers = ",".join(
            f"{name}=https://127.0.0.1:{port}"
            for name, port in zip(self.names, self.peer_ports, strict=True)
        )
        client_url = f"https://127.0.0.1:{self.client_ports[i]}"
        peer_url = f"https://127.0.0.1:{self.peer_ports[i]}"
        cert, key = self.pki["members"][i]
        return [
            ETCD_BINARY,
            "--name", self.names[i],
            "--data-dir", str(self.base_dir / self.names[i]),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", peers,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", "steersman-bench",
            "--heartbeat-interval", str(HEARTBEAT_MS),
            "--election-timeout", str(ELECTION_MS),
            "--cert-file", cert, "--key-file", key,
            "--trusted-ca-file", self.pki["ca"], "--client-cert-auth",
            "--peer-cert-file", cert, "--peer-key-file", key,
            "--peer-trusted-ca-file", self.pki["ca"], "--peer-client-cert-auth",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip

    def start(self, i: int) -> None:
        """Start member ``i`` (again, with its data, if it ran before)."""
        if self._procs[i] is not None and self._procs[i].poll() is None:
            return
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.base_dir / f"{self.names[i]}.log", "ab")
        self._logs[i] = log
        self._procs[i] = subprocess.Popen(
            self._command(i), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def start_all(self) -> None:
        for i in range(self.size):
            self.start(i)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` and reap it."""
        proc = self._procs[i]
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._procs[i] = None
        if self._logs[i] is not None:
            self._logs[i].close()
            self._logs[i] = None

    def stop_all(self) -> None:
        """Stop every member: SIGTERM, then SIGKILL whatever is left after 5 s."""
        for proc in self._procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5.0
        for i, proc in enumerate(self._procs):
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            self.kill(i)

    def __enter__(self) -> "EtcdCluster":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    @property
    def pids(self) -> list[int | None]:
        return [proc.pid if proc is not None else None for proc in self._procs]

    # -- health --------------------------------------------------------
    def _statuses(self) -> list[dict | None]:
        statuses: list[dict | None] = []
        for endpoint in self.endpoints:
            client = EtcdClient([endpoint], timeout=1.0, tls=self.client_tls)
            try:
                statuses.append(client.status())
            except EtcdError:
                statuses.append(None)
            finally:
                client.close()
        for i, status in enumerate(statuses):
            if status is not None:
                self._member_ids[status["member_id"]] = i
        return statuses

    def _agreed_leader(self, statuses: list[dict | None]) -> int | None:
        """Index of the leader if every answering member names the same one."""
        leaders = {status["leader"] for status in statuses if status is not None}
        if len(leaders) != 1:
            return None
        (leader,) = leaders
        return self._member_ids.get(leader)

    def leader_index(self, timeout: float = 10.0) -> int:
        """Index of the current leader, as the live members agree on it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self._agreed_leader(self._statuses())
            if leader is not None and self._procs[leader] is not None:
                return leader
            time.sleep(0.05)
        raise TimeoutError(f"no agreed etcd leader within {timeout} s")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once every member runs, agrees on a leader and serves a
        linearizable read (so a restarted member has caught up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, proc in enumerate(self._procs):
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"etcd member {i} exited with {proc.returncode}; "
                        f"see {self.base_dir / self.names[i]}.log"
                    )
            statuses = self._statuses()
            if all(statuses) and self._agreed_leader(statuses) is not None:
                if all(self._serves(endpoint) for endpoint in self.endpoints):
                    return
            time.sleep(0.05)
        raise TimeoutError(f"etcd cluster not ready within {timeout} s")

    def _serves(self, endpoint: str) -> bool:
        client = EtcdClient([endpoint], timeout=2.0, tls=self.client_tls)
        try:
            client.get(b"bench-ready")
            return True
        except EtcdError:
            return False
        finally:
            client.close()
