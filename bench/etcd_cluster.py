"""A local 3-member etcd 3.4 cluster and a small client for its JSON gateway.

Both mirror the Steersman API the store benchmark uses, so ``bench/store.py``
can drive either system with the same code:

* :class:`EtcdCluster` has the shape of ``cli.local_store.LocalStoreCluster``
  (``start_all``, ``wait_ready``, ``endpoints``, ``leader_index``, ``kill``,
  ``start``, ``stop_all``, context manager);
* :class:`EtcdClient` has the shape of ``store.client.StoreClient``
  (``put``, ``get``, ``status``, ``close``) and returns the same dicts.

The members run durably: etcd fsyncs its WAL on every commit by default and
``--unsafe-no-fsync`` is never passed.  They listen on loopback only, on free
ports, with their data under ``base_dir``.

The client speaks etcd's JSON gRPC gateway (``POST /v3/kv/put``,
``/v3/kv/range``, ``/v3/maintenance/status``; keys and values base64) over a
persistent HTTP/1.1 connection (a minimal keep-alive client, see
``EtcdClient._exchange``).  A connection is not thread-safe, so an
:class:`EtcdClient` is meant for one thread; the benchmark gives every
concurrent client its own.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from cli.local_store import free_ports

ETCD_BINARY = "etcd"
# Members' raft timing: etcd's defaults, stated so the figures are reproducible.
HEARTBEAT_MS = 100
ELECTION_MS = 1000


class EtcdError(Exception):
    """An error answer from etcd, or no answer at all."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _header(raw: dict | None) -> dict:
    """The gateway sends 64-bit integers as strings; make them ints again."""
    return {name: int(value) for name, value in (raw or {}).items()}


class EtcdClient:
    """A client of one etcd cluster through its JSON gateway; one per thread.

    It talks to ``endpoints[0]`` and moves on to the next endpoint when a
    request fails at the connection level; the failed request is not retried
    (the caller decides), mirroring what a benchmark needs to observe.
    """

    def __init__(self, endpoints: list[str], timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("EtcdClient needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._current = 0
        self._sock: socket.socket | None = None
        self._buffer = b""

    # -- transport -----------------------------------------------------
    # A minimal HTTP/1.1 keep-alive client: http.client parses every response
    # header through the email package and costs ~3x the CPU per request,
    # which on a 2-core machine is taken from the servers under test.
    def _connection(self) -> socket.socket:
        if self._sock is None:
            host, port = self.endpoints[self._current].rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._buffer = sock, b""
        return self._sock

    def _drop_connection(self, rotate: bool) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if rotate:
            self._current = (self._current + 1) % len(self.endpoints)

    def _read_until(self, sock: socket.socket, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._recv(sock)
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _read_exactly(self, sock: socket.socket, size: int) -> bytes:
        while len(self._buffer) < size:
            self._recv(sock)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _recv(self, sock: socket.socket) -> None:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self._buffer += chunk

    def _exchange(self, path: str, payload: bytes) -> tuple[int, bytes]:
        """Send one POST and read its response on the kept-alive connection."""
        sock = self._connection()
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(payload), payload)
        )
        head = self._read_until(sock, b"\r\n\r\n").split(b"\r\n")
        status = int(head[0].split(b" ", 2)[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if b"content-length" in headers:
            body = self._read_exactly(sock, int(headers[b"content-length"]))
        elif headers.get(b"transfer-encoding") == b"chunked":
            parts = []
            while size := int(self._read_until(sock, b"\r\n").split(b";")[0], 16):
                parts.append(self._read_exactly(sock, size))
                self._read_exactly(sock, 2)
            self._read_until(sock, b"\r\n")  # no trailers from the gateway
            body = b"".join(parts)
        else:
            raise ConnectionError("response without length")
        if headers.get(b"connection") == b"close":
            self._drop_connection(rotate=False)
        return status, body

    def _post(self, path: str, body: dict) -> dict:
        endpoint = self.endpoints[self._current]
        try:
            status, data = self._exchange(path, json.dumps(body).encode())
        except (OSError, ValueError, IndexError) as exc:
            self._drop_connection(rotate=True)
            raise EtcdError(f"{endpoint}: {exc!r}") from exc
        try:
            answer = json.loads(data) if data else {}
        except ValueError as exc:
            raise EtcdError(f"HTTP {status}: {data[:200]!r}") from exc
        if status != 200 or "error" in answer:
            raise EtcdError(f"HTTP {status}: {answer.get('error', answer)}")
        return answer

    # -- API (the shape of store.client.StoreClient) -------------------
    def put(self, key: bytes, value: bytes) -> dict:
        """Write ``key``; returns ``{"header": {"revision": ..., ...}}``."""
        answer = self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return {"header": _header(answer.get("header"))}

    def get(self, key: bytes, serializable: bool = False) -> dict:
        """Read ``key``, linearizable unless ``serializable``."""
        body = {"key": _b64(key)}
        if serializable:
            body["serializable"] = True
        answer = self._post("/v3/kv/range", body)
        kvs = [
            {
                "key": _unb64(kv.get("key")),
                "value": _unb64(kv.get("value")),
                "create_revision": int(kv.get("create_revision", 0)),
                "mod_revision": int(kv.get("mod_revision", 0)),
                "version": int(kv.get("version", 0)),
                "lease": int(kv.get("lease", 0)),
            }
            for kv in answer.get("kvs", [])
        ]
        return {"header": _header(answer.get("header")), "kvs": kvs}

    def status(self) -> dict:
        """Status of the member this client talks to."""
        answer = self._post("/v3/maintenance/status", {})
        header = _header(answer.get("header"))
        return {
            "header": header,
            "member_id": header.get("member_id", 0),
            "leader": int(answer.get("leader", 0)),
            "raft_term": int(answer.get("raftTerm", 0)),
            "raft_index": int(answer.get("raftIndex", 0)),
            "version": answer.get("version", ""),
        }

    def close(self) -> None:
        self._drop_connection(rotate=False)


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
        self._procs: list[subprocess.Popen | None] = [None] * size
        self._logs: list = [None] * size
        self._member_ids: dict[int, int] = {}

    # -- processes -----------------------------------------------------
    def _command(self, i: int) -> list[str]:
        peers = ",".join(
            f"{name}=http://127.0.0.1:{port}"
            for name, port in zip(self.names, self.peer_ports, strict=True)
        )
        client_url = f"http://127.0.0.1:{self.client_ports[i]}"
        peer_url = f"http://127.0.0.1:{self.peer_ports[i]}"
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
            client = EtcdClient([endpoint], timeout=1.0)
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

    @staticmethod
    def _serves(endpoint: str) -> bool:
        client = EtcdClient([endpoint], timeout=2.0)
        try:
            client.get(b"bench-ready")
            return True
        except EtcdError:
            return False
        finally:
            client.close()
