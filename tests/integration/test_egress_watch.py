"""The egress watch really counts: a leak inside a namespace of our own moves its counter.

Layout (all inside namespaces this test creates; the root namespace is never touched):
    watch ns: d0 (a link that transmits nothing: dummy, or ifb where the kernel has no
              dummy driver) 192.0.2.1/24, default route dev d0; forwarding on;
              veth w0 10.244.5.1/24 ── pod ns: p0 10.244.5.2/24, default via 10.244.5.1
The watch table is built by the same code as the suite's own, aimed at d0.
"""

import errno
import os
import secrets
import socket
import subprocess
import time

import pytest

from agent import netns
from tests.support import egress

pytestmark = pytest.mark.skipif(egress.unavailable_reason() is not None,
                                reason=str(egress.unavailable_reason()))

POD_IP, GATEWAY = "10.244.5.2", "10.244.5.1"


def ip(ns, *argv):
    subprocess.run(["ip", "-n", ns, *argv], check=True, capture_output=True, text=True)


def add_sink_link(ns, name):
    """Add a link that sends nothing anywhere (dummy; ifb on kernels built without it)."""
    errors = []
    for kind in ("dummy", "ifb"):
        done = subprocess.run(["ip", "-n", ns, "link", "add", name, "type", kind],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return kind
        errors.append(f"{kind}: {done.stderr.strip()}")
    pytest.fail(f"cannot create a link that sends nothing ({'; '.join(errors)})")


@pytest.fixture
def namespaces():
    """The watch namespace with d0 as its default route, and a pod namespace behind it."""
    suffix = f"{os.getpid()}-{secrets.token_hex(3)}"
    watch_ns, pod_ns = f"egw-{suffix}", f"egp-{suffix}"
    made = []
    try:
        for name in (watch_ns, pod_ns):
            netns.add(name)
            made.append(name)
        add_sink_link(watch_ns, "d0")
        ip(watch_ns, "addr", "add", "192.0.2.1/24", "dev", "d0")
        ip(watch_ns, "link", "set", "d0", "up")
        ip(watch_ns, "route", "add", "default", "dev", "d0")
        ip(watch_ns, "link", "add", "w0", "type", "veth", "peer", "name", "p0", "netns", pod_ns)
        ip(watch_ns, "addr", "add", f"{GATEWAY}/24", "dev", "w0")
        ip(watch_ns, "link", "set", "w0", "up")
        ip(pod_ns, "addr", "add", f"{POD_IP}/24", "dev", "p0")
        ip(pod_ns, "link", "set", "p0", "up")
        ip(pod_ns, "route", "add", "default", "via", GATEWAY)
        subprocess.run(["ip", "netns", "exec", watch_ns, "sysctl", "-qw",
                        "net.ipv4.ip_forward=1"], check=True, capture_output=True)
        yield watch_ns, pod_ns
    finally:
        for name in made:
            netns.delete(name)
        assert not {watch_ns, pod_ns} & set(
            subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
            .stdout.split())


@pytest.fixture
def watch(namespaces):
    """A SessionWatch (the suite's own class) installed in the watch namespace."""
    session = egress.SessionWatch(f"{egress.TABLE_PREFIX}test-{secrets.token_hex(3)}",
                                  netns=namespaces[0])
    try:
        assert session.start(), session.summary
        yield session
    finally:
        session.abandon()


def send_udp(ns, address, source=None):
    """Send one UDP datagram from inside ``ns``; the errno if it was refused, else None."""
    def send():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            if source:
                sock.bind((source, 0))
            try:
                sock.sendto(b"leak?", address)
            except OSError as error:
                return error.errno
        return None
    return netns.run_in(netns.path_for(ns), send)


def leaks_within(watch, deadline_s=10):
    """The moved counters, waiting (to a deadline) for at least one to move."""
    deadline = time.monotonic() + deadline_s
    while True:
        moved = egress.leaks(egress.read_counters(watch.name, watch.netns))
        if moved or time.monotonic() > deadline:
            return moved
        time.sleep(0.05)


def tables_in(ns):
    return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"],
                          capture_output=True, text=True, check=True).stdout


def test_the_default_route_interface_of_a_namespace_is_found(namespaces):
    assert egress.default_route_interfaces(namespaces[0]) == ["d0"]


def test_one_packet_to_a_pod_address_is_counted_dropped_and_fails_the_check(watch):
    assert send_udp(watch.netns, ("10.244.1.1", 9)) == errno.EPERM   # dropped by the watch
    moved = egress.leaks(egress.read_counters(watch.name, watch.netns))
    assert [(h.hook, h.direction, h.cidr, h.packets) for h in moved] == \
        [("output", "daddr", "10.244.0.0/16", 1)]
    assert moved[0].bytes > 0
    assert watch.finish() is True and watch.failed
    assert "1 packet(s)" in watch.summary and "10.244.0.0/16" in watch.summary
    assert watch.name not in tables_in(watch.netns)


def test_traffic_outside_the_watched_ranges_counts_nothing(watch):
    assert send_udp(watch.netns, ("198.51.100.1", 9)) is None
    assert send_udp(watch.netns, ("127.0.0.1", 9)) is None
    assert egress.leaks(egress.read_counters(watch.name, watch.netns)) == []
    assert watch.finish() is False and not watch.failed
    assert "egress check: 0 packets" in watch.summary


def test_a_pod_packet_routed_by_the_namespace_is_counted_at_forward(watch, namespaces):
    _, pod_ns = namespaces
    assert send_udp(pod_ns, ("198.51.100.7", 9)) is None   # the drop is in the watch ns
    moved = leaks_within(watch)
    assert [(h.hook, h.direction, h.cidr, h.packets) for h in moved] == \
        [("forward", "saddr", "10.244.0.0/16", 1)]


def test_a_pod_source_address_sent_locally_is_counted(watch):
    ip(watch.netns, "addr", "add", "10.244.9.9/32", "dev", "lo")
    send_udp(watch.netns, ("198.51.100.8", 9), source="10.244.9.9")
    moved = egress.leaks(egress.read_counters(watch.name, watch.netns))
    assert [(h.hook, h.direction, h.cidr, h.packets) for h in moved] == \
        [("output", "saddr", "10.244.0.0/16", 1)]

