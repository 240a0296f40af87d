"""Helpers for tests that run real `steer-store` processes (tests/integration/store).

``wait_for`` polls a condition until a deadline (never a fixed sleep); ``Clusters``
makes LocalStoreClusters under a tmp dir and stops them all; ``RawConnection``
speaks, or deliberately breaks, the client frame protocol over a bare socket.
"""

import os
import socket
import ssl
import time

import msgpack

from cli.local_store import LocalStoreCluster
from store import protocol
from store import tls as store_tls
from store.client import StoreError

#: Election timeouts with headroom for a loaded CI machine.
RAFT_ARGS = ["--election-min", "1.0", "--election-max", "2.0"]
READY_TIMEOUT = 60.0


def wait_for(condition, timeout=30.0, interval=0.05, message="condition"):
    """Poll ``condition()`` until it returns something truthy; return that.

    Exceptions from ``condition`` count as "not yet" (a node may be electing);
    the last one is reported if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except (StoreError, OSError, TimeoutError) as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}{detail}")
        time.sleep(interval)


class Clusters:
    """Create clusters for one test (or module) and stop every one of them."""

    def __init__(self, base_dir):
        self.base_dir = str(base_dir)
        self.clusters = []

    def new(self, size=3, start=True, extra_args=(), name=None):
        name = name or f"c{len(self.clusters) + 1}"
        cluster = LocalStoreCluster(size, base_dir=os.path.join(self.base_dir, name),
                                    extra_args=[*RAFT_ARGS, *extra_args])
        self.clusters.append(cluster)
        if start:
            cluster.start_all()
            cluster.wait_ready(READY_TIMEOUT)
        return cluster

    def stop_all(self):
        for cluster in self.clusters:
            cluster.stop_all()

    def logs(self):
        return "\n".join(f"=== cluster {c.base_dir} ===\n{c.logs()}" for c in self.clusters)


def node_client(cluster, i, timeout=15.0):
    """A client that talks to node ``i`` only (with the admin's store certificate)."""
    return cluster.node_client(i, timeout=timeout)


class RawConnection:
    """A bare socket speaking (or deliberately breaking) the frame protocol."""

    def __init__(self, endpoint, timeout=15.0, tls=None):
        """Connect; ``tls`` holds StoreClient's ca_file/cert_file/key_file (None: plain)."""
        host, port = endpoint.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        if tls:
            context = store_tls.client_context(tls["ca_file"], tls.get("cert_file"),
                                               tls.get("key_file"))
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.timeout = timeout

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_body(self, body):
        self.sock.sendall(protocol.LENGTH.pack(len(body)) + body)

    def send(self, message):
        self.sock.sendall(protocol.pack(message))

    def recv(self):
        """Return the next message, or None when the server closed the connection."""
        header = self._recv_exactly(4)
        if header is None:
            return None
        (length,) = protocol.LENGTH.unpack(header)
        body = self._recv_exactly(length)
        if body is None:
            return None
        return msgpack.unpackb(body, raw=False, strict_map_key=False)

    def request(self, message):
        self.send(message)
        return self.recv()

    def _recv_exactly(self, n):
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.sock.recv(n - got)
            except (ConnectionResetError, ssl.SSLEOFError):
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def close(self):
        self.sock.close()
