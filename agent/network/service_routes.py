"""Prepare a node's network namespace for Service traffic (idempotent).

The nftables rules (agent/network/nft_rules.py) DNAT a ClusterIP in the nat
prerouting and output hooks, but a connection the node itself opens is routed
*before* the output hook: without a route for the service CIDR the kernel says
"network unreachable" (a node namespace has no default route), and on a host with
one a miss would follow it off the machine. So the service CIDR gets a route on
``lo``: the node's own connection is routed there, DNATed in the output hook and
routed again to its endpoint; what no rule takes is refused by the table's reject
chains (output after DNAT, forward for pods) and could never leave through ``lo``
anyway. ``src <node IP>`` makes the node's own connections leave from its address.

The route is *unicast*, not ``local``: with a local route every ClusterIP was one
of the node's own addresses, and the CNI portmap plugin DNATs every destination of
address type LOCAL on a hostPort, so a pod with hostPort 443 captured every
ClusterIP's port 443 (the API server's Service included). kube-proxy does not make
ClusterIPs local either (only its IPVS mode does, with the same conflict). An older
agent's local route (table local) is deleted. Pods' packets are DNATed in
prerouting and need no route; forwarding them needs ip_forward.
"""

import ipaddress
import os
import subprocess

from agent.network.nft_apply import find_binary


class ServiceRouteError(RuntimeError):
    """An ip or sysctl command failed (the message carries its stderr)."""


def route_argv(service_cidr, node_ip=None):
    """The ``ip route replace`` arguments for the service-CIDR route on ``lo``."""
    network = ipaddress.ip_network(service_cidr, strict=True)
    if network.version != 4:
        raise ValueError(f"service CIDR {service_cidr} is not IPv4; the proxy is IPv4 only")
    argv = ["route", "replace", "unicast", str(network), "dev", "lo"]
    if node_ip:
        ipaddress.IPv4Address(node_ip)
        argv += ["src", node_ip]
    return argv


def stale_route_argv(service_cidr):
    """The ``ip route del`` arguments for the ``local`` route older agents made."""
    network = ipaddress.ip_network(service_cidr, strict=True)
    return ["route", "del", "local", str(network), "dev", "lo", "table", "local"]


def _run(netns_path, argv, missing_ok=False):
    if netns_path:
        argv = [find_binary("nsenter"), f"--net={netns_path}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False,
                          env={**os.environ, "LC_ALL": "C"})     # stderr we can match
    if done.returncode != 0 and not (missing_ok and "No such process" in done.stderr):
        raise ServiceRouteError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


def prepare(netns_path, service_cidr, node_ip=None):
    """Route ``service_cidr`` on ``lo`` and turn on forwarding in the namespace.

    ``netns_path`` None means this process's own namespace (a real host's node):
    callers on a shared machine must pass a namespace of their own.
    ``node_ip`` may be None until the Node says its address; then the route has
    no preferred source and the kernel picks one.
    """
    ip = find_binary("ip")
    _run(netns_path, [ip, *route_argv(service_cidr, node_ip)])
    _run(netns_path, [ip, *stale_route_argv(service_cidr)], missing_ok=True)
    _run(netns_path, [find_binary("sysctl"), "-qw", "net.ipv4.ip_forward=1"])
