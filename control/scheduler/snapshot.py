"""Hold an immutable view of the cluster for placement: nodes and the pods on them.

``NodeInfo`` aggregates what placement asks of a node many times (requested
resources, used host ports, pods per owner), so scoring a pod is proportional to
the number of nodes, not pods. ``Snapshot.with_pod`` returns a new snapshot with
one pod added and shares every other node's aggregates, which is what lets a
batch of pods be placed without re-reading the world for each.
"""

from dataclasses import dataclass, field
from types import MappingProxyType

from control.objects.quantity import milli_value, value

#: kube-scheduler's non-zero defaults: a pod that requests nothing still counts
#: this much when *scoring*, so best-effort pods spread out instead of piling up.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 2**20


@dataclass(frozen=True)
class Resources:
    """cpu in millicores, memory in bytes, and a pod count."""

    cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other):
        return Resources(self.cpu + other.cpu, self.memory + other.memory,
                         self.pods + other.pods)


def _container_requests(container):
    requests = (container.get("resources") or {}).get("requests") or {}
    return (milli_value(requests["cpu"]) if "cpu" in requests else 0,
            value(requests["memory"]) if "memory" in requests else 0)


def pod_requests(pod, non_zero=False):
    """Return a pod's effective requests as Kubernetes computes them.

    Containers run together, so their requests add up; init containers run one at
    a time before them, so each only needs to fit on its own (plus the restartable
    "sidecar" init containers started before it, which keep running). The pod
    needs the larger of the two, plus spec.overhead. ``non_zero`` substitutes
    kube-scheduler's defaults for containers that request no cpu or memory.
    """
    spec = pod.get("spec") or {}

    def requests(container):
        cpu, memory = _container_requests(container)
        if non_zero:
            cpu, memory = cpu or DEFAULT_MILLI_CPU, memory or DEFAULT_MEMORY
        return cpu, memory

    cpu = memory = 0
    for container in spec.get("containers") or ():
        c, m = requests(container)
        cpu, memory = cpu + c, memory + m
    sidecar_cpu = sidecar_memory = init_cpu = init_memory = 0
    for container in spec.get("initContainers") or ():
        c, m = requests(container)
        if container.get("restartPolicy") == "Always":
            sidecar_cpu, sidecar_memory = sidecar_cpu + c, sidecar_memory + m
            c, m = sidecar_cpu, sidecar_memory
        else:
            c, m = c + sidecar_cpu, m + sidecar_memory
        init_cpu, init_memory = max(init_cpu, c), max(init_memory, m)
    cpu = max(cpu + sidecar_cpu, init_cpu)
    memory = max(memory + sidecar_memory, init_memory)
    overhead = spec.get("overhead") or {}
    if "cpu" in overhead:
        cpu += milli_value(overhead["cpu"])
    if "memory" in overhead:
        memory += value(overhead["memory"])
    return Resources(cpu, memory, 1)


#: The label a node agent puts on its Node to say which runtime runs its pods.
RUNTIME_LABEL = "node.steersman.io/runtime"


def shares_host_network(node):
    """True if pods on ``node`` run as plain processes in the node's network namespace
    (runtime=process): each containerPort is then a port of the node itself."""
    labels = ((node or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(RUNTIME_LABEL) == "process"


def host_ports(pod, host_network=False):
    """Return the (protocol, hostIP, hostPort) triples a pod's containers claim.

    With ``host_network`` (a process-runtime node), every containerPort is claimed on
    all the node's addresses, hostPort or not, as it is for a hostNetwork pod.
    """
    ports = set()
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            protocol = port.get("protocol") or "TCP"
            if host_network and port.get("containerPort"):
                ports.add((protocol, "0.0.0.0", int(port["containerPort"])))
            elif port.get("hostPort"):
                ports.add((protocol, port.get("hostIP") or "0.0.0.0", int(port["hostPort"])))
    return frozenset(ports)


def controller_uid(pod):
    """Return the uid of the pod's controlling owner, or None."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid")
    return None


def allocatable(node):
    """Return what a node offers pods (status.allocatable, else status.capacity)."""
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return Resources(milli_value(alloc["cpu"]) if "cpu" in alloc else 0,
                     value(alloc["memory"]) if "memory" in alloc else 0,
                     value(alloc["pods"]) if "pods" in alloc else 0)


@dataclass(frozen=True)
class NodeInfo:
    """One node with the aggregates of the pods on it."""

    node: dict
    pods: tuple
    allocatable: Resources
    requested: Resources            # the pods' real requests (for fitting)
    non_zero_requested: Resources   # with kube-scheduler's defaults (for scoring)
    ports: frozenset                # (protocol, hostIP, port) in use
    owners: MappingProxyType        # controller uid -> number of its pods here

    @property
    def name(self):
        return self.node["metadata"]["name"]

    @classmethod
    def of(cls, node, pods=()):
        info = cls(node, (), allocatable(node), Resources(), Resources(), frozenset(),
                   MappingProxyType({}))
        for pod in pods:
            info = info.with_pod(pod)
        return info

    def with_pod(self, pod):
        """Return a copy of this NodeInfo with ``pod`` added."""
        owners = self.owners
        uid = controller_uid(pod)
        if uid is not None:
            owners = MappingProxyType({**owners, uid: owners.get(uid, 0) + 1})
        return NodeInfo(self.node, self.pods + (pod,), self.allocatable,
                        self.requested + pod_requests(pod),
                        self.non_zero_requested + pod_requests(pod, non_zero=True),
                        self.ports | host_ports(pod, shares_host_network(self.node)), owners)


def _terminated(pod):
    # Finished pods hold no resources; kube-scheduler leaves them out too.
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass(frozen=True)
class Snapshot:
    """Nodes (by name) and the pods bound to each; never changed once built."""

    nodes: MappingProxyType                     # name -> node object
    pods_by_node: MappingProxyType              # name -> tuple of pod objects
    infos: MappingProxyType = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.infos is None:
            infos = {name: NodeInfo.of(node, self.pods_by_node.get(name, ()))
                     for name, node in sorted(self.nodes.items())}
            object.__setattr__(self, "infos", MappingProxyType(infos))

    @classmethod
    def from_objects(cls, nodes, pods=()):
        """Build from node objects and any pods; pods bound to unknown nodes are ignored."""
        by_name = {node["metadata"]["name"]: node for node in nodes}
        pods_by_node = {name: [] for name in by_name}
        for pod in pods:
            name = (pod.get("spec") or {}).get("nodeName")
            if name in pods_by_node and not _terminated(pod):
                pods_by_node[name].append(pod)
        return cls(MappingProxyType(by_name),
                   MappingProxyType({k: tuple(v) for k, v in pods_by_node.items()}))

    def with_pod(self, node_name, pod):
        """Return a new snapshot in which ``pod`` also runs on ``node_name``."""
        pods = {**self.pods_by_node, node_name: self.pods_by_node.get(node_name, ()) + (pod,)}
        infos = {**self.infos, node_name: self.infos[node_name].with_pod(pod)}
        return Snapshot(self.nodes, MappingProxyType(pods), MappingProxyType(infos))
