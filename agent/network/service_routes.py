"""Prepare a node's network namespace for Service traffic (idempotent).

The nftables rules (agent/network/nft_rules.py) DNAT a ClusterIP in the nat
prerouting and output hooks, but a connection the node itself opens is routed
*before* the output hook: without a route for the service CIDR the kernel says
"network unreachable" (a node namespace has no default route), and on a host with
one a miss would follow it off the machine. So the service CIDR gets a ``local``
route on ``lo`` (what tests/integration/agent/test_nft_services.py sets up): every
ClusterIP is this node's own address until DNAT rewrites it, and what no rule takes
is refused by the table's reject chain. ``src <node IP>`` makes the node's own
connections leave from its address rather than from the ClusterIP. Pods' packets
are DNATed in prerouting and need no route; forwarding them needs ip_forward.
"""

import ipaddress
import subprocess

from agent.network.nft_apply import find_binary


class ServiceRouteError(RuntimeError):
    """An ip or sysctl command failed (the message carries its stderr)."""


def route_argv(service_cidr, node_ip=None):
    """The ``ip route replace`` arguments for the local service-CIDR route."""
    network = ipaddress.ip_network(service_cidr, strict=True)
    if network.version != 4:
        raise ValueError(f"service CIDR {service_cidr} is not IPv4; the proxy is IPv4 only")
    argv = ["route", "replace", "local", str(network), "dev", "lo"]
    if node_ip:
        ipaddress.IPv4Address(node_ip)
        argv += ["src", node_ip]
    return argv


def _run(netns_path, argv):
    if netns_path:
        argv = [find_binary("nsenter"), f"--net={netns_path}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise ServiceRouteError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


def prepare(netns_path, service_cidr, node_ip=None):
    """Route ``service_cidr`` locally and turn on forwarding in the namespace.

    ``netns_path`` None means this process's own namespace (a real host's node):
    callers on a shared machine must pass a namespace of their own.
    ``node_ip`` may be None until the Node says its address; then the route has
    no preferred source and the kernel picks one.
    """
    _run(netns_path, [find_binary("ip"), *route_argv(service_cidr, node_ip)])
    _run(netns_path, [find_binary("sysctl"), "-qw", "net.ipv4.ip_forward=1"])
