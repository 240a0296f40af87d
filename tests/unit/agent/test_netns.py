"""agent/netns.py: sockets made inside a network namespace of our own stay in it."""

import os
import secrets
import shutil
import socket
import threading

import pytest

from agent import netns

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="creating a network namespace needs root and iproute2 (`ip`)")


@pytest.fixture
def namespace():
    name = f"steer-t-{os.getpid()}-{secrets.token_hex(3)}"
    path = netns.add(name)
    try:
        yield path
    finally:
        netns.delete(name)
        assert not os.path.exists(path)


def test_connect_reaches_a_listener_inside_the_namespace(namespace):
    server = netns.listen(namespace, ("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = []

    def serve_one():
        conn, _ = server.accept()
        with conn:
            received.append(conn.recv(5))
            conn.sendall(b"pong!")

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        with netns.connect(namespace, ("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ping!")
            assert client.recv(5) == b"pong!"
        thread.join(5)
        assert received == [b"ping!"]
    finally:
        server.close()


def test_the_root_namespace_does_not_see_the_listener(namespace):
    server = netns.listen(namespace, ("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        except ConnectionRefusedError:
            pass
        # Whatever answered in the root namespace (if anything), it was not our server.
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_none_means_the_callers_namespace():
    server = netns.listen(None, ("127.0.0.1", 0))
    try:
        with netns.connect(None, server.getsockname(), timeout=5):
            conn, _ = server.accept()
            conn.close()
    finally:
        server.close()


def test_run_in_reraises_and_names_a_missing_namespace(namespace):
    with pytest.raises(ZeroDivisionError):
        netns.run_in(namespace, lambda: 1 / 0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        netns.run_in("/run/netns/steer-t-no-such-namespace", lambda: None)


def test_the_callers_thread_stays_in_its_namespace(namespace):
    def inode():
        return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino
    mine = inode()
    assert netns.run_in(namespace, inode) == os.stat(namespace).st_ino != mine
    assert inode() == mine
