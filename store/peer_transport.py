"""Carry Raft messages between members: mutual TLS on the node's asyncio loop, msgpack frames.

One connection per pair of members; the member with the greater peer address
dials (PySyncObj's own rule, so there is exactly one). Both sides present a
certificate from the store CA and refuse any other, or none, during the TLS
handshake, before a byte of Raft is read. The dialer then sends a hello frame
naming its peer address and cluster; the acceptor checks that the address is a
member, that the certificate names its host, and that the dialing rule holds.

Frames are a 4-byte big-endian length and a msgpack map with a string "type".
A length over the cap (tiny before the hello), bytes that are not msgpack, or a
message of the wrong shape closes that connection only; nothing a peer sends
reaches pickle. Decoding gives tuples where PySyncObj's pickled messages had
them (log entries compare equal to the journal's tuples).

Writes are coalesced: messages queue per connection and go out as one TLS write
per loop iteration. A peer that lets more than ``MAX_QUEUED_BYTES`` pile up is
disconnected (Raft resends after the reconnect) rather than buffered forever.
"""

import asyncio
import ipaddress
import logging
import socket
import time

from store.peer_frames import (
    MAX_FRAME_BYTES,
    MAX_HELLO_BYTES,
    FrameError,
    FrameReader,
    pack,
    unpack,
)

log = logging.getLogger("steer.store.peers")

MAX_QUEUED_BYTES = 4 * MAX_FRAME_BYTES
HANDSHAKE_TIMEOUT = 5.0
HELLO_TIMEOUT = 5.0
#: Connections that passed TLS but have not said who they are yet.
MAX_UNIDENTIFIED = 32
HELLO, PING = "hello", "ping"


def certificate_names_host(cert, host):
    """True if the peer certificate (``getpeercert()``) has ``host`` among its SANs."""
    host = host.strip("[]")
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        wanted = None
    for kind, value in (cert or {}).get("subjectAltName", ()):
        if kind == "IP Address" and wanted is not None:
            try:
                if ipaddress.ip_address(value.strip()) == wanted:
                    return True
            except ValueError:
                continue
        elif kind == "DNS" and wanted is None and value.lower() == host.lower():
            return True
    return False


def set_nodelay(transport):
    """Turn Nagle's algorithm off on the link's socket.

    asyncio sets TCP_NODELAY on the sockets it dials but not on those a server
    accepts from a socket handed to it: without it, a small frame that follows an
    unacknowledged one (an ack, then a forwarded command) waits for the peer's
    delayed ACK, ~40 ms on Linux, on every write that a follower forwards.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def split_addr(addr):
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class PeerLink(asyncio.Protocol):
    """One TLS connection to a member: frames in, coalesced frames out."""

    def __init__(self, network, addr=None):
        self.network = network
        self.addr = addr                  # None until the hello named the member
        self.transport = None
        self.reader = FrameReader(MAX_FRAME_BYTES if addr else MAX_HELLO_BYTES)
        self._pending, self._pending_bytes = [], 0
        self._flush_scheduled = False
        self.closed = False
        self.opened = self.last_received = self.last_sent = network.clock()

    def connection_made(self, transport):
        self.transport = transport
        set_nodelay(transport)
        self.network.link_made(self)

    def data_received(self, data):
        if self.closed:
            return
        self.last_received = self.network.clock()
        try:
            for body in self.reader.feed(data):
                message = unpack(body)
                if self.closed:
                    return
                self.network.frame_received(self, message)
        except FrameError as exc:
            self.abort(f"bad frame: {exc}")
        except Exception as exc:  # Raft failed on a message: drop the link, keep the node
            log.exception("event=peer_message_failed peer=%s", self.addr)
            self.abort(f"the message could not be handled: {exc!r}")

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.closed = True
        self.network.link_lost(self)

    def send(self, message):
        """Queue ``message``; False if the connection is closed or overflowed."""
        if self.closed:
            return False
        frame = pack(message)
        self.network.frames_sent += 1
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        queued = self._pending_bytes + self.transport.get_write_buffer_size()
        if queued > MAX_QUEUED_BYTES:
            self.abort(f"{queued} bytes queued: the peer does not read")
            return False
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.network.loop.call_soon(self.flush)
        return True

    def flush(self):
        self._flush_scheduled = False
        if self._pending and not self.closed:
            data = b"".join(self._pending)
            self._pending, self._pending_bytes = [], 0
            self.transport.write(data)
            self.network.writes_sent += 1
            self.last_sent = self.network.clock()

    def identify(self, addr):
        self.addr = addr
        self.reader.limit = MAX_FRAME_BYTES

    def peer_certificate(self):
        ssl_object = self.transport.get_extra_info("ssl_object")
        return ssl_object.getpeercert() if ssl_object is not None else None

    def abort(self, reason):
        if self.closed:
            return
        log.warning("event=peer_connection_closed peer=%s remote=%s reason=%s",
                    self.addr or "-", self.transport.get_extra_info("peername"), reason)
        self.closed = True
        self.transport.abort()

    def close(self):
        if not self.closed:
            self.flush()
            self.closed = True
            self.transport.close()


class PeerNetwork:
    """The member's peer port and its connections, driven by ``tick`` and the loop.

    ``on_connected(addr)``, ``on_disconnected(addr)`` and ``on_message(addr,
    message)`` run on the loop's thread; ``on_event()`` after each batch of input.
    """

    def __init__(self, loop, self_addr, contexts, cluster, *, on_connected, on_disconnected,
                 on_message, on_event, timeout=3.5, retry=0.5, clock=time.monotonic):
        self.loop, self.self_addr, self.cluster = loop, self_addr, cluster
        self._server_context, self._client_context = contexts
        self._on_connected, self._on_disconnected = on_connected, on_disconnected
        self._on_message, self._on_event = on_message, on_event
        self.timeout, self.retry, self.clock = timeout, retry, clock
        self.peers = set()
        self.links = {}                 # addr -> identified PeerLink
        self._unidentified = set()
        self._dialing = set()
        self._last_dial = {}
        self._server = None
        self._sock = None
        self._stopped = False
        #: Frames queued to peers, and the socket writes that carried them.
        self.frames_sent = self.writes_sent = 0

    # -- the listening port ------------------------------------------------------------
    def bind(self):
        """Bind the peer port now (raises OSError) and serve it on the loop."""
        host, port = split_addr(self.self_addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.loop.create_task(self._serve(sock))

    async def _serve(self, sock):
        if self._stopped:
            return
        server = await self.loop.create_server(
            lambda: PeerLink(self), sock=sock, ssl=self._server_context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        if self._stopped:
            server.close()
        self._server = server

    # -- membership --------------------------------------------------------------------
    def add_peer(self, addr):
        self.peers.add(addr)

    def drop_peer(self, addr):
        self.peers.discard(addr)
        self._last_dial.pop(addr, None)
        link = self.links.pop(addr, None)
        if link is not None:
            link.close()

    def dials(self, addr):
        """True if this member dials ``addr`` (the greater address dials)."""
        return self.self_addr > addr

    # -- sending and timers ----------------------------------------------------------
    def send(self, addr, message):
        link = self.links.get(addr)
        return link is not None and link.send(message)

    def flush(self):
        """Write every link's queued frames to its socket now, not at the loop's next turn."""
        for link in self.links.values():
            link.flush()

    def connected(self, addr):
        return addr in self.links

    def tick(self):
        """Dial missing members, ping quiet links, close silent or unnamed ones."""
        if self._stopped:
            return
        now = self.clock()
        for addr in self.peers:
            if (self.dials(addr) and addr not in self.links and addr not in self._dialing
                    and now - self._last_dial.get(addr, -self.retry) >= self.retry):
                self._last_dial[addr] = now
                self._dialing.add(addr)
                self.loop.create_task(self._dial(addr))
        for link in list(self.links.values()):
            if now - link.last_received > self.timeout:
                link.abort(f"nothing received for {self.timeout:g}s")
            elif now - link.last_sent > self.timeout / 4:
                link.send({"type": PING})
        for link in list(self._unidentified):
            if now - link.opened > HELLO_TIMEOUT:
                link.abort(f"no hello within {HELLO_TIMEOUT:g}s")

    async def _dial(self, addr):
        host, port = split_addr(addr)
        try:
            await asyncio.wait_for(self.loop.create_connection(
                lambda: PeerLink(self, addr), host, port, ssl=self._client_context,
                server_hostname=host, ssl_handshake_timeout=HANDSHAKE_TIMEOUT),
                self.timeout + HANDSHAKE_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("event=peer_dial_failed peer=%s error=%r", addr, exc)
        finally:
            self._dialing.discard(addr)

    # -- from the links ----------------------------------------------------------------
    def link_made(self, link):
        if self._stopped:
            link.transport.abort()
            return
        if link.addr is None:                       # accepted: wait for the hello
            if len(self._unidentified) >= MAX_UNIDENTIFIED:
                link.abort("too many connections that have not said who they are")
                return
            self._unidentified.add(link)
            return
        if link.addr not in self.peers:             # dropped while dialing
            link.close()
            return
        link.send({"type": HELLO, "member": self.self_addr, "cluster": self.cluster})
        self._adopt(link)

    def frame_received(self, link, message):
        kind = message["type"]
        if link.addr is None:
            self._hello(link, message)
        elif kind == PING:
            pass
        elif kind == HELLO:
            link.abort("a second hello")
        else:
            self._on_message(link.addr, message)
            self._on_event()

    def _hello(self, link, message):
        self._unidentified.discard(link)
        addr, cluster = message.get("member"), message.get("cluster")
        if message["type"] != HELLO or not isinstance(addr, str):
            return link.abort("the first frame must be a hello naming the member")
        if cluster != self.cluster:
            return link.abort(f"member of cluster {cluster!r}, not {self.cluster!r}")
        if addr not in self.peers:
            return link.abort(f"{addr!r} is not a member")
        if self.dials(addr):
            return link.abort(f"{addr!r} should be dialed by this member, not dial it")
        if not certificate_names_host(link.peer_certificate(), split_addr(addr)[0]):
            return link.abort(f"the certificate does not name the host of {addr!r}")
        link.identify(addr)
        self._adopt(link)

    def _adopt(self, link):
        old = self.links.get(link.addr)
        self.links[link.addr] = link
        if old is not None:
            old.close()
            self._on_disconnected(link.addr)
        self._on_connected(link.addr)
        self._on_event()

    def link_lost(self, link):
        self._unidentified.discard(link)
        if link.addr is not None and self.links.get(link.addr) is link:
            del self.links[link.addr]
            if not self._stopped:
                self._on_disconnected(link.addr)
                self._on_event()

    # -- shutdown ----------------------------------------------------------------------
    def close(self):
        """Stop serving and close every connection; the port is free when this returns."""
        self._stopped = True
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()
        for link in [*self.links.values(), *self._unidentified]:
            link.transport.abort()
        self.links.clear()
        self._unidentified.clear()
