"""The conntrack cleanup against the kernel: a DNATed UDP flow in a namespace of our own."""

import os
import shutil
import subprocess
import sys

import pytest

from agent import netns
from agent.network.conntrack import Deletion, flush

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not (shutil.which("conntrack") and shutil.which("nft")),
                       reason="needs conntrack and nft (apt-get install conntrack nftables)"),
]

RULES = """table ip steer-test {
  chain out { type nat hook output priority -100; ip daddr 10.96.0.10 udp dport 53 dnat to 127.0.0.1:5353; }
}
"""


def in_ns(path, *argv, **kw):
    return subprocess.run(["nsenter", f"--net={path}", *argv], capture_output=True,
                          check=kw.pop("check", True), timeout=30, **kw)


@pytest.fixture
def ns():
    name = f"steer-ct-{os.getpid()}"
    path = netns.add(name)
    try:
        in_ns(path, "ip", "link", "set", "lo", "up")
        # The service range is routed locally inside this namespace only.
        in_ns(path, "ip", "route", "add", "local", "10.96.0.0/12", "dev", "lo")
        in_ns(path, "nft", "-f", "-", input=RULES.encode())
        yield path
    finally:
        netns.delete(name)


def entries(path):
    done = in_ns(path, "conntrack", "-L", "-p", "udp", "--orig-dst", "10.96.0.10",
                 check=False)
    return [line for line in done.stdout.decode().splitlines() if "dport=53" in line]


def send_udp(path):
    in_ns(path, sys.executable, "-c",
          "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
          "s.sendto(b'q', ('10.96.0.10', 53))")


def test_only_the_entries_dnatted_to_the_gone_endpoint_are_deleted(ns):
    send_udp(ns)
    assert len(entries(ns)) == 1 and "src=127.0.0.1" in entries(ns)[0]   # DNATed
    assert flush([Deletion("10.96.0.10", 53, "10.244.9.9")], ns) == 0
    assert len(entries(ns)) == 1                # another endpoint's: left alone
    assert flush([Deletion("10.96.0.10", 53, "127.0.0.1")], ns) == 0
    assert entries(ns) == []


def test_a_whole_service_port_is_deleted_without_an_endpoint_filter(ns):
    send_udp(ns)
    assert len(entries(ns)) == 1
    assert flush([Deletion("10.96.0.10", 53)], ns) == 0
    assert entries(ns) == []
