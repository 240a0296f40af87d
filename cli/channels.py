"""A WebSocket client of Kubernetes' channel protocol (v4.channel.k8s.io), for `steer exec`.

The API server passes exec upgrades through to containerd, which speaks WebSocket
``v4.channel.k8s.io``: every binary message starts with its channel (0 stdin,
1 stdout, 2 stderr, 3 a Status JSON when the command ends). RFC 6455 framing is
small enough to write with the standard library: a client masks what it sends, and
the server's pings are answered.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct

from control.client import upgrade

PROTOCOL = "v4.channel.k8s.io"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: Largest message accepted from the server (exec output arrives in small messages).
MAX_MESSAGE = 16 * 1024 * 1024
STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3


class ChannelError(Exception):
    """The upgrade was refused (``status``, ``body``) or the stream broke."""

    def __init__(self, message, status=None, body=b""):
        super().__init__(message)
        self.status, self.body = status, body


def accept_key(key):
    """The Sec-WebSocket-Accept a server must answer to ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def connect(rest, target, timeout=30.0):
    """Open ``target`` (path and query) on the API server of ``rest`` as a channel stream."""
    sock = socket.create_connection((rest.host, rest.port), timeout=timeout)
    try:
        if rest.ssl_context is not None:
            sock = rest.ssl_context.wrap_socket(sock, server_hostname=rest.host)
        key = base64.b64encode(os.urandom(16)).decode()
        headers = [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                   ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", key),
                   ("Sec-WebSocket-Protocol", PROTOCOL)]
        if rest.token:
            headers.append(("Authorization", f"Bearer {rest.token}"))
        sock.sendall(upgrade.request_bytes("GET", rest.prefix + target,
                                           f"{rest.host}:{rest.port}", headers))
        head = upgrade.read_response_head(sock, timeout)
        if head.status != 101:
            body = upgrade.read_body(sock, head, 64 * 1024)
            raise ChannelError(f"the server refused the stream ({head.status})", head.status,
                               body)
        if head.get("Sec-WebSocket-Accept") != accept_key(key):
            raise ChannelError("the server answered the WebSocket upgrade with a wrong key")
        sock.settimeout(None)
        return Channels(sock, head.rest)
    except BaseException:
        sock.close()
        raise


class Channels:
    """Send to and receive from the channels of one WebSocket connection."""

    def __init__(self, sock, buffered=b""):
        self.sock, self._buffer = sock, buffered

    def buffered(self):
        """Whether bytes already read (or decrypted) wait here, unseen by select()."""
        return bool(self._buffer) or (isinstance(self.sock, ssl.SSLSocket)
                                      and self.sock.pending() > 0)

    def send(self, channel, data):
        self._frame(OP_BINARY, bytes([channel]) + data)

    def receive(self):
        """Return the next (channel, bytes); None once the server closed the stream."""
        message = b""
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_PING:
                self._frame(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self._frame(OP_CLOSE, payload[:2])
                return None
            elif opcode in (OP_BINARY, OP_TEXT, OP_CONTINUATION):
                message += payload
                if len(message) > MAX_MESSAGE:
                    raise ChannelError("a message from the server is too large")
                if fin:
                    return (message[0], message[1:]) if message else (None, b"")

    def close(self):
        try:
            self._frame(OP_CLOSE, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()

    def _frame(self, opcode, payload):
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def _read(self, count):
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ChannelError("the connection closed in the middle of a message")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _read_frame(self):
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        if length > MAX_MESSAGE:
            raise ChannelError("a message from the server is too large")
        mask = self._read(4) if second & 0x80 else None
        payload = self._read(length)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(first & 0x80), first & 0x0F, payload
