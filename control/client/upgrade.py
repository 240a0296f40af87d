"""Carry an HTTP connection upgrade (SPDY/3.1, WebSocket) across one proxy hop, then splice.

exec, attach and port-forward pass two hops, as in Kubernetes: the API server to the
node agent, the agent to containerd's streaming server. Neither hop speaks SPDY or
WebSocket itself: it replays the client's upgrade request upstream with the headers
that negotiate the protocol, hands the upstream's answer back (a 101 or an error),
and after a 101 copies bytes both ways until one side closes. The agent imports this
too, so it uses the standard library only.
"""

import select
import ssl
import time

#: Longest response head accepted from upstream (status line and headers).
MAX_HEAD = 16 * 1024
CHUNK = 64 * 1024
#: Request headers that negotiate the upgraded protocol: passed on to the next hop.
REQUEST_HEADERS = ("Connection", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                   "Sec-WebSocket-Protocol", "X-Stream-Protocol-Version")
#: Headers of an upstream 101 passed back to the client.
SWITCH_HEADERS = ("Connection", "Upgrade", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                  "X-Stream-Protocol-Version")
#: Seconds a peer may take to accept bytes we pass it before the stream is dropped.
WRITE_TIMEOUT = 60.0


class UpgradeError(Exception):
    """The upstream did not answer an upgrade request with a readable HTTP response."""


class ResponseHead:
    """The status line and headers of an upstream response, and bytes read past them."""

    def __init__(self, status, reason, headers, rest=b""):
        self.status, self.reason, self.headers, self.rest = status, reason, headers, rest

    def get(self, name, default=None):
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    def switch_bytes(self):
        """The 101 head to send the client: only the headers that complete the switch."""
        wanted = {h.lower() for h in SWITCH_HEADERS}
        return head_bytes(f"HTTP/1.1 101 {self.reason or 'Switching Protocols'}",
                          [(k, v) for k, v in self.headers if k.lower() in wanted])


def is_upgrade(connection, upgrade):
    """Whether a request's Connection and Upgrade headers ask to switch protocols."""
    tokens = {t.strip().lower() for t in (connection or "").split(",")}
    return "upgrade" in tokens and bool((upgrade or "").strip())


def upgrade_headers(get_all):
    """Return the negotiation headers of a request as (name, value) pairs.

    ``get_all(name)`` returns the header's values (a list; a server may have joined
    repeated headers with commas). X-Stream-Protocol-Version goes out once per
    protocol: SPDY servers (containerd's) read every header line, not a list in one.
    """
    headers = []
    for name in REQUEST_HEADERS:
        values = [v for v in get_all(name) if v]
        if name == "X-Stream-Protocol-Version":
            values = [p.strip() for v in values for p in v.split(",") if p.strip()]
        elif values:
            values = [", ".join(values)]
        headers.extend((name, v) for v in values)
    return headers


def head_bytes(first_line, headers):
    """Serialise a request or response head; refuse a header that would split it."""
    lines = [first_line]
    for name, value in headers:
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text or "\0" in text:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def request_bytes(method, target, host, headers):
    """The upgrade request for the next hop: ``target`` is its path and query."""
    return head_bytes(f"{method} {target} HTTP/1.1", [("Host", host), *headers])


def read_response_head(sock, timeout, limit=MAX_HEAD):
    """Read and parse an HTTP response head from ``sock`` within ``timeout`` seconds."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > limit:
            raise UpgradeError(f"the response head is longer than {limit} bytes")
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise UpgradeError(f"no answer to the upgrade request within {timeout:g}s") from None
        if not chunk:
            raise UpgradeError("the connection closed before an answer to the upgrade request")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, status_reason = lines[0].partition(" ")
    code, _, reason = status_reason.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit() or len(code) != 3:
        raise UpgradeError("the answer to the upgrade request is not HTTP/1.1")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise UpgradeError("the answer to the upgrade request has a malformed header")
        headers.append((name.strip(), value.strip()))
    return ResponseHead(int(code), reason.strip(), headers, rest)


def read_body(sock, head, limit, timeout=5.0):
    """Read at most ``limit`` bytes of a (non-101) response's body, for its error message."""
    body = head.rest
    length = head.get("Content-Length")
    want = min(int(length), limit) if (length or "").isdigit() else limit
    sock.settimeout(timeout)
    try:
        while len(body) < want:
            chunk = sock.recv(min(CHUNK, want - len(body)))
            if not chunk:
                break
            body += chunk
    except OSError:
        pass            # what arrived is the message
    return body[:limit]


def _pending(sock):
    """Bytes already decrypted in a TLS socket's buffer, which select() cannot see."""
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def splice(first, second, idle_timeout=None, clock=time.monotonic,
           write_timeout=WRITE_TIMEOUT):
    """Copy bytes both ways until either side closes or fails; return why it ended.

    One loop serves both directions (no thread writes a TLS socket while another reads
    it); under gevent, select() yields to other greenlets. With ``idle_timeout`` the
    stream ends when no byte has passed either way for that many seconds (kubelet's
    streaming-connection-idle-timeout). The caller closes both sockets.
    """
    peers = {first: second, second: first}
    for sock in peers:
        sock.settimeout(write_timeout)
    last = clock()
    while True:
        ready = [s for s in peers if _pending(s)]
        if not ready:
            wait = None if idle_timeout is None else max(0.0, last + idle_timeout - clock())
            ready, _, _ = select.select(list(peers), [], [], wait)
            if not ready:
                if clock() - last >= idle_timeout:
                    return "idle"
                continue
        for sock in ready:
            try:
                data = sock.recv(CHUNK)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                return "error"
            if not data:
                return "closed"
            try:
                peers[sock].sendall(data)
            except OSError:
                return "error"
            last = clock()
