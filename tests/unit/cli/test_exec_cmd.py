"""`steer exec`: its arguments, the exit code from the Status, and WebSocket framing."""

import socket
import struct

import pytest

from cli import channels
from cli.errors import CommandError
from cli.exec_cmd import exit_code, split_command


def test_accept_key_is_rfc_6455s():
    assert channels.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("words, container, expected", [
    (["--", "sh", "-c", "x"], None, (["sh", "-c", "x"], None)),
    (["-c", "side", "--", "ls"], None, (["ls"], "side")),
    (["--container=side", "--", "ls", "--", "-x"], None, (["ls", "--", "-x"], "side")),
    (["ls"], "main", (["ls"], "main")),
])
def test_split_command(words, container, expected):
    assert split_command(words, container) == expected


def test_unknown_option_before_the_command():
    with pytest.raises(CommandError, match="-i"):
        split_command(["-i", "--", "sh"], None)


def test_exit_code_from_the_status():
    assert exit_code({"status": "Success"}) == 0
    assert exit_code({"status": "Failure", "reason": "NonZeroExitCode", "details": {
        "causes": [{"reason": "ExitCode", "message": "42"}]}}) == 42
    with pytest.raises(CommandError, match="boom"):
        exit_code({"status": "Failure", "message": "boom"})


def server_frame(opcode, payload, fin=True):
    """A frame as a server sends it: unmasked."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        return struct.pack("!BB", first, len(payload)) + payload
    if len(payload) < 1 << 16:
        return struct.pack("!BBH", first, 126, len(payload)) + payload
    return struct.pack("!BBQ", first, 127, len(payload)) + payload


def unmask(frame):
    """(opcode, payload) of a client frame, which must be masked."""
    length = frame[1] & 0x7F
    assert frame[1] & 0x80, "client frames are masked"
    offset = 2 + {126: 2, 127: 8}.get(length, 0)
    if length == 126:
        length = struct.unpack("!H", frame[2:4])[0]
    mask, data = frame[offset:offset + 4], frame[offset + 4:]
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_messages_fragments_pings_and_close():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = channels.Channels(ours, buffered=server_frame(channels.OP_BINARY, b"\x01hi"))
        big = b"\x02" + b"e" * 70000
        theirs.sendall(server_frame(channels.OP_PING, b"p")
                       + server_frame(channels.OP_BINARY, big[:10], fin=False)
                       + server_frame(channels.OP_CONTINUATION, big[10:])
                       + server_frame(channels.OP_CLOSE, struct.pack("!H", 1000)))
        assert stream.receive() == (1, b"hi")
        assert stream.receive() == (2, b"e" * 70000)
        assert unmask(theirs.recv(100)) == (channels.OP_PONG, b"p")
        assert stream.receive() is None
        assert unmask(theirs.recv(100)) == (channels.OP_CLOSE, struct.pack("!H", 1000))
        stream.send(channels.STDIN, b"x" * 200)
        assert unmask(theirs.recv(1000)) == (channels.OP_BINARY, b"\x00" + b"x" * 200)


def test_a_huge_message_is_refused():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        stream = channels.Channels(ours, buffered=struct.pack("!BBQ", 0x82, 127, 1 << 40))
        with pytest.raises(channels.ChannelError, match="too large"):
            stream.receive()


@pytest.mark.parametrize("text, expected", [
    ("8080", (8080, 8080)), (":8080", (0, 8080)), ("9000:80", (9000, 80)),
])
def test_port_forward_ports(text, expected):
    from cli.portforward_cmd import parse_port
    assert parse_port(text) == expected


@pytest.mark.parametrize("text", ["http", "70000", "1:0", "a:80", "1:2:3"])
def test_bad_port_forward_ports(text):
    from cli.portforward_cmd import parse_port
    with pytest.raises(CommandError, match="invalid port"):
        parse_port(text)
