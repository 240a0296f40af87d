"""The local cluster's namespaces: nodes reach each other on their LAN, the root namespace gains nothing."""

import os
import subprocess

import pytest

from cli import local_network

pytestmark = pytest.mark.skipif(local_network.unavailable_reason() is not None,
                                reason=str(local_network.unavailable_reason()))


def root_view():
    """The root namespace's addresses and routes, to compare before and after."""
    return (subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout,
            subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True,
                           text=True).stdout)


@pytest.fixture
def local(tmp_path):
    net = local_network.plan(str(tmp_path / f"home-{os.getpid()}"), ["node-1", "node-2"])
    before = root_view()
    try:
        yield local_network.create(net)
    finally:
        local_network.delete(net)
    assert local_network.leftovers(net) == []
    assert root_view() == before


def test_nodes_reach_each_other_and_the_lan_only(local):
    n1, n2 = local.nodes
    assert n1.address == "172.31.250.1" and local.gateway == "172.31.250.254"
    ping = subprocess.run(local_network.exec_argv(n1.netns, ["ping", "-c1", "-W2", n2.address])
                          if _has_ping() else
                          local_network.exec_argv(n1.netns, ["busybox", "ping", "-c1", "-W2",
                                                             n2.address]),
                          capture_output=True, text=True)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # No route out: an address outside the LAN is unreachable at once, not sent.
    routes = subprocess.run(["ip", "-n", n1.netns, "route"], capture_output=True,
                            text=True).stdout
    assert "default" not in routes


def test_create_is_idempotent(local):
    again = local_network.create(local)
    assert local_network.leftovers(again) == [n.netns for n in local.nodes] + [local.lan_netns]


def test_record_round_trip(local):
    assert local_network.LocalNetwork.from_record(local.record()) == local


def _has_ping():
    return subprocess.run(["sh", "-c", "command -v ping"], capture_output=True).returncode == 0
