"""`steer cluster ...` command-line inputs and the namespace forwarder (cli/baremetal)."""

import os
import socket
import threading
from types import SimpleNamespace

import pytest

from cli.baremetal import commands
from cli.baremetal.reach import Reach
from cli.errors import CommandError
from cli.main import build_parser


def test_bad_fingerprint_and_mirror_are_refused_with_the_expected_form():
    with pytest.raises(CommandError, match="HOST=SHA256"):
        commands.fingerprints(SimpleNamespace(fingerprint=["10.0.0.1=MD5:aa"]))
    assert commands.fingerprints(SimpleNamespace(fingerprint=["h=SHA256:abc"])) == \
        {"h": "SHA256:abc"}
    with pytest.raises(CommandError, match="REGISTRY=http"):
        commands.registry_mirrors(SimpleNamespace(registry_mirror=["steer.local=ftp://x"]))


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden"])
def test_cluster_names_cannot_leave_the_clusters_directory(name):
    with pytest.raises(CommandError, match="plain word"):
        commands.ClusterDir(name)


def test_verbs_are_registered_beside_the_local_cluster_ones():
    parser = build_parser()
    args = parser.parse_args(["cluster", "create", "--ssh", "root@h1", "--via-netns", "/x"])
    assert args.func is commands.cmd_create and args.via_netns == "/x"
    assert parser.parse_args(["up"]).func.__name__ == "cmd_up"
    args = parser.parse_args(["store", "member", "replace", "h1", "--with", "root@h9"])
    assert args.with_target == "root@h9"
    args = parser.parse_args(["node", "remove", "h4"])
    assert args.node == "h4"


def test_status_of_an_unknown_cluster_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("STEER_HOME", str(tmp_path))
    with pytest.raises(CommandError, match="steer cluster create"):
        commands.ClusterDir("nothere").require()


def test_reach_without_a_namespace_dials_directly():
    reach = Reach(None)
    assert reach.address("192.0.2.1", 6443) == ("192.0.2.1", 6443)
    assert reach.ssh_sock("192.0.2.1") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="entering a network namespace needs root")
def test_forwarder_relays_both_ways_and_half_closes():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo_upper():
        conn, _ = server.accept()
        with conn:
            data = b""
            while chunk := conn.recv(1024):
                data += chunk
            conn.sendall(data.upper())
    thread = threading.Thread(target=echo_upper, daemon=True)
    thread.start()
    # This process's own namespace stands in for the hosts' LAN.
    with Reach("/proc/self/ns/net") as reach:
        host, local = reach.address("127.0.0.1", port)
        assert (host, local) != ("127.0.0.1", port)
        with socket.create_connection((host, local), timeout=5) as client:
            client.sendall(b"hello")
            client.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := client.recv(1024):
                reply += chunk
    assert reply == b"HELLO"
    thread.join(5)
    server.close()


def test_missing_namespace_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="--via-netns"):
        Reach("/run/netns/does-not-exist-bm3").ssh_sock("192.0.2.1")
