"""A fake containerd stream server and an in-process agent port, for streaming tests.

``FakeStreamServer`` answers any upgrade with a 101 and echoes (paths with /refuse/
get a 403, with /garbage/ bytes that are not HTTP); ``FakeCri`` hands out its URLs;
``make_agent`` serves agent/streaming.py on a TLS port as a node, and ``register``
points a Node at it and binds a Running pod to that node.
"""

import socket
import ssl
import threading

from agent.server import AgentServer, server_context
from agent.streaming import StreamServer
from control.client import upgrade
from control.objects import kinds

SPDY_HEADERS = ["Connection: Upgrade", "Upgrade: SPDY/3.1",
                "X-Stream-Protocol-Version: v4.channel.k8s.io",
                "X-Stream-Protocol-Version: channel.k8s.io"]


class FakeStreamServer:
    """Answers every upgrade with a 101, then echoes; remembers each request head."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.heads = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, rest = data.partition(b"\r\n\r\n")
            self.heads.append(head.decode())
            if b"/garbage/" in head.split(b"\r\n")[0]:
                conn.sendall(b"\x00\xffSSH-2.0 not http\r\n\r\n")
                return
            if b"/refuse/" in head.split(b"\r\n")[0]:
                conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 14\r\n\r\nno such token\n")
                return
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n"
                         b"X-Secret: not-passed-on\r\n\r\n" + rest)
            while chunk := conn.recv(4096):
                conn.sendall(chunk)

    def close(self):
        self.sock.close()


class FakeCri:
    """The three CriClient calls the stream server makes, answered with fake URLs."""

    def __init__(self, port):
        self.port, self.calls = port, []

    def exec(self, container_id, cmd, **flags):
        self.calls.append(("exec", container_id, list(cmd), flags))
        path = cmd[0] if cmd[0] in ("refuse", "garbage") else "exec"
        return f"http://127.0.0.1:{self.port}/{path}/token1"

    def attach(self, container_id, **flags):
        self.calls.append(("attach", container_id, flags))
        return f"http://127.0.0.1:{self.port}/attach/token2"

    def port_forward(self, sandbox_id, ports):
        self.calls.append(("portforward", sandbox_id, list(ports)))
        return f"http://127.0.0.1:{self.port}/portforward/token3"


class Record:
    def __init__(self, container_id, sandbox_id):
        self.container_id, self.sandbox_id = container_id, sandbox_id


def make_agent(server, node_name, find, client, netns_path=None):
    """An AgentServer on a free loopback port with the node's serving certificate."""
    args = server.agent_tls_args(node_name)
    context = server_context(args[1], args[3], args[5])
    streams = StreamServer(find, client, netns_path, idle_timeout=600)
    return AgentServer("127.0.0.1", 0, lambda *a: (_ for _ in ()).throw(LookupError("no logs")),
                       ssl_context=context, streams=streams).start()


def register(rest, node_name, port, pod_name, containers=("c",)):
    """A Node pointing at the agent's port, and a Running pod bound to it."""
    try:
        rest.create(kinds.NODES, None, {"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": node_name}})
    except Exception:
        pass        # the module's earlier test made it
    rest.patch(kinds.NODES, None, node_name, {"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}, subresource="status")
    rest.create(kinds.PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name},
        "spec": {"nodeName": node_name,
                 "containers": [{"name": c, "image": "busybox"} for c in containers]}})
    rest.patch(kinds.PODS, "default", pod_name, {"status": {"phase": "Running"}},
               subresource="status")


def upgrade_request(server, path, method="POST", headers=SPDY_HEADERS, cert=None):
    """Send an upgrade request over TLS; return (socket, response head)."""
    sock = server.open_socket() if cert is None else _socket_as(server, cert)
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock, upgrade.read_response_head(sock, 30)


def _socket_as(server, cert):
    context = ssl.create_default_context(cafile=server.ca_file)
    context.load_cert_chain(cert.cert, cert.key)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_exactly(sock, count, rest=b""):
    data = rest
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data
