"""Which hosts a bare-metal cluster has and what each runs; recorded beside its PKI.

``--ssh user@h1,user@h2,user@h3`` names the control hosts (store member, API server,
scheduler, controller manager each); ``--workers user@h4,...`` the hosts that only
run workloads. Control hosts run workloads too (an agent, containerd and the service
proxy, as k3s servers do) unless ``--dedicated-control``: then a Service answers on
every host only where an agent runs. A host's node name is the host part of its
target (an address or a DNS name), which is unique where hostnames may not be.
"""

import ipaddress
import json
import os
import socket
from dataclasses import asdict, dataclass, field

from agent.provision import plan as planmod

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_POD_CIDR = "10.244.0.0/16"


@dataclass(frozen=True)
class Host:
    """One machine: its node name, the address others reach it on, how SSH reaches it."""

    name: str
    address: str
    target: str             # user@host[:port]
    control: bool = False
    worker: bool = False
    bootstrap: bool = False     # joined with a bootstrap token (`steer node join`)

    @property
    def roles(self):
        return ",".join(r for r, on in (("control", self.control), ("worker", self.worker)) if on)


@dataclass
class Topology:
    name: str
    version: str
    hosts: list = field(default_factory=list)
    service_cidr: str = DEFAULT_SERVICE_CIDR
    pod_cidr: str = DEFAULT_POD_CIDR
    sandbox_image: str = ""                             # "": the plan's default
    registry_mirrors: list = field(default_factory=list)    # [[registry, URL], ...]

    @property
    def control(self):
        return [h for h in self.hosts if h.control]

    @property
    def workers(self):
        return [h for h in self.hosts if h.worker]

    def host(self, name):
        for h in self.hosts:
            if h.name == name or h.target == name or h.address == name:
                return h
        raise KeyError(name)

    def to_json(self):
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        data["hosts"] = [Host(**h) for h in data.get("hosts", [])]
        return cls(**data)


def split_target(text):
    """(user, host, port) of ``user@host[:port]``; a clear ValueError when it is not one."""
    user, at, rest = text.strip().rpartition("@")
    if not at or not user or not rest:
        raise ValueError(f"{text!r} is not user@host[:port]")
    host, port = rest, 22
    if rest.startswith("["):                 # [v6]:port
        host, _, tail = rest[1:].partition("]")
        port = int(tail[1:]) if tail.startswith(":") else 22
    elif rest.count(":") == 1:
        host, _, port_text = rest.partition(":")
        if not port_text.isdigit():
            raise ValueError(f"{text!r}: the port must be a number")
        port = int(port_text)
    return user, host, port


def _address(host, resolve):
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        return resolve(host)


def build(name, version, control_targets, worker_targets, dedicated_control=False,
          service_cidr=DEFAULT_SERVICE_CIDR, pod_cidr=DEFAULT_POD_CIDR,
          resolve=socket.gethostbyname):
    """A Topology from the command line's targets; ValueError says what is wrong."""
    if len(control_targets) not in (1, 3, 5):
        raise ValueError(f"--ssh names {len(control_targets)} control hosts: the store "
                         "needs 1, 3 or 5 members (3 or 5 to survive a host's loss)")
    hosts, seen = [], set()
    for targets, control in ((control_targets, True), (worker_targets, False)):
        for target in targets:
            host = make_host(target, control, not (control and dedicated_control), resolve)
            if host.name in seen:
                raise ValueError(f"{host.name} is named twice")
            seen.add(host.name)
            hosts.append(host)
    return Topology(name=name, version=version, hosts=hosts, service_cidr=service_cidr,
                    pod_cidr=pod_cidr)


def make_host(target, control=False, worker=True, resolve=socket.gethostbyname):
    """The Host ``user@host[:port]`` names; its address resolved if it is a DNS name."""
    _, host, _ = split_target(target)
    return Host(name=host, address=_address(host, resolve), target=target, control=control,
                worker=worker)


def parse_targets(text):
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def clusters_home():
    """~/.steer/clusters ($STEER_HOME/clusters), where each cluster's PKI and record live."""
    home = os.environ.get("STEER_HOME") or os.path.expanduser("~/.steer")
    return os.path.join(os.path.abspath(home), "clusters")


def to_spec(topology):
    """The plan's ClusterSpec (agent/provision/plan.py) of a Topology."""
    def spec_host(h):
        return planmod.HostSpec(name=h.name, address=h.address, target=h.target,
                                bootstrap=h.bootstrap)
    return planmod.ClusterSpec(
        name=topology.name, version=topology.version,
        control=tuple(spec_host(h) for h in topology.control),
        workers=tuple(spec_host(h) for h in topology.workers),
        pod_cidr=topology.pod_cidr, service_cidr=topology.service_cidr,
        registry_mirrors=tuple(tuple(m) for m in topology.registry_mirrors),
        **({"sandbox_image": topology.sandbox_image} if topology.sandbox_image else {}))
