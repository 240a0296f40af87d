"""Hostile exec, attach and port-forward requests: the API server answers 4xx/5xx and lives.

Garbage after the upgrade, garbage instead of the upstream's answer, slow upgrade
heads, commands larger than a request line, and more streams than the long-running
limit allows. The agent is served in this process with a fake stream server behind it
(tests/support/streams.py).
"""

import socket
import ssl

import pytest

from control.client import upgrade
from tests.support.apiproc import eventually
from tests.support.streams import (
    FakeCri,
    FakeStreamServer,
    Record,
    make_agent,
    read_exactly,
    register,
    upgrade_request,
)

#: Two streams at most per worker: the third is refused until one ends.
SERVER_ARGS = ["--max-long-running-inflight", "2"]
EXEC = "/api/v1/namespaces/default/pods/victim/exec?container=c&command=sh"


@pytest.fixture(scope="module")
def rest(server):
    client = server.rest_client(timeout=10)
    yield client
    client.close()


@pytest.fixture(scope="module")
def agent(server, rest):
    upstream = FakeStreamServer()
    agent = make_agent(server, "hostile-node", lambda *a: Record("cid", "sid"),
                       FakeCri(upstream.port))
    register(rest, "hostile-node", agent.port, "victim")
    try:
        yield agent
    finally:
        agent.stop()
        upstream.close()


def healthy(server):
    with server.urlopen(server.url + "/readyz", timeout=10) as answer:
        return answer.status == 200


def test_garbage_after_the_upgrade_is_only_passed_on(server, agent):
    sock, head = upgrade_request(server, EXEC)
    with sock:
        assert head.status == 101
        junk = bytes(range(256)) * 4096         # 1 MiB of every byte value
        sock.sendall(junk)
        assert read_exactly(sock, len(junk), head.rest) == junk
    assert healthy(server)


def test_garbage_instead_of_an_upgrade_answer_is_a_status(server, agent):
    sock, head = upgrade_request(server, "/api/v1/namespaces/default/pods/victim/exec?"
                                         "container=c&command=garbage")
    with sock:
        body = upgrade.read_body(sock, head, 4096).decode()
    assert head.status in (502, 503) and '"kind":"Status"' in body, body
    assert healthy(server)


def test_a_command_longer_than_a_request_line_is_refused(server, agent):
    """A 414 or 4xx; the server may answer and close before the client has sent it all.

    On a loaded machine the client is still writing the 50 KB line when the server
    refuses it: the write then fails (EOF or reset), and the answer, if it got out,
    is read after; a connection closed with no answer is a refusal too.
    """
    sock = server.open_socket()
    request = f"POST {EXEC + '&command=x' * 5000} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with sock:
        try:
            sock.sendall(request.encode())
        except (ssl.SSLError, OSError):
            pass                    # refused while still sending
        try:
            status = upgrade.read_response_head(sock, 30).status
        except (ssl.SSLError, ConnectionError):
            status = None           # closed without an answer: refused all the same
        except upgrade.UpgradeError as exc:
            assert "closed before" in str(exc), exc     # a timeout is not a refusal
            status = None
    assert status is None or 400 <= status < 500, status
    assert healthy(server)


def test_slow_upgrade_heads_do_not_starve_others(server, agent):
    """Connections that never finish their upgrade request hold no stream slot."""
    slow = []
    try:
        for _ in range(20):
            sock = server.open_socket()
            sock.sendall(f"POST {EXEC} HTTP/1.1\r\nHost: x\r\nConnection: Up".encode())
            slow.append(sock)
        sock, head = upgrade_request(server, EXEC)
        sock.close()
        assert head.status == 101
        assert healthy(server)
    finally:
        for sock in slow:
            sock.close()


def test_streams_count_against_the_long_running_limit(server, agent):
    held = [upgrade_request(server, EXEC) for _ in range(2)]
    try:
        assert [head.status for _, head in held] == [101, 101]
        sock, head = upgrade_request(server, EXEC)
        with sock:
            assert head.status == 429 and head.get("Retry-After") == "1"
        assert healthy(server)      # other requests are not held back by streams
    finally:
        for sock, _ in held:
            sock.close()

    def slot_free():
        sock, head = upgrade_request(server, EXEC)
        sock.close()
        return head.status == 101
    # A closed stream gives its slot back (as soon as the server sees the close).
    eventually(slot_free, timeout=20, message="a stream slot freed")


def test_an_agent_that_is_gone_is_503(server, rest):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    register(rest, "gone-node", port, "orphan")
    sock, head = upgrade_request(server, "/api/v1/namespaces/default/pods/orphan/exec?"
                                         "container=c&command=ls")
    with sock:
        body = upgrade.read_body(sock, head, 4096).decode()
    assert head.status == 503 and "cannot be reached" in body


def test_the_agent_drops_a_slow_request_head(server, monkeypatch):
    """An unfinished request head holds an agent thread only until the head deadline."""
    import ssl

    import agent.server
    monkeypatch.setattr(agent.server, "REQUEST_HEAD_TIMEOUT", 0.5)
    port_agent = make_agent(server, "slow-node", lambda *a: Record("cid", "sid"),
                            FakeCri(1))
    try:
        context = ssl.create_default_context(cafile=server.ca_file)
        context.load_cert_chain(server.kubelet_client.cert, server.kubelet_client.key)
        raw = socket.create_connection(("127.0.0.1", port_agent.port), timeout=30)
        with context.wrap_socket(raw, server_hostname="slow-node") as sock:
            sock.sendall(b"POST /exec/default/victim/c?command=sh HTTP/1.1\r\nHost: x\r\n")
            # The agent gives up on the head and closes: recv ends well before 30 s.
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
    finally:
        port_agent.stop()
