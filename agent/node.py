"""Register this machine's Node, keep its status current, renew its Lease.

As kubelet does: the Node is created once with its labels and taints; its status
(capacity and allocatable read from the machine, addresses, the agent's port in
daemonEndpoints, nodeInfo, the Ready/MemoryPressure/DiskPressure/PIDPressure
conditions) is posted at start, whenever it changes, when someone else (the node
lifecycle controller) set Ready to anything but True, and at least every
``report_interval``; the Lease in kube-node-lease is renewed every heartbeat.
"""

import logging
import os
import platform
import socket
import threading
import time

from control.client import AlreadyExists, Conflict, NotFound
from control.client.errors import ApiException
from control.objects import conditions, kinds, meta

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
#: Tells the scheduler how pods run here: with runtime=process every containerPort is
#: a port of the node (control/scheduler/snapshot.py reads it).
RUNTIME_LABEL = "node.steersman.io/runtime"
LEASE_DURATION = 40             # kubelet's nodeLeaseDurationSeconds
VERSION = "v1.32.0-steersman"
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x"}.get(platform.machine(), platform.machine())


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def memory_kib():
    """MemTotal from /proc/meminfo, in KiB."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def memory_available_kib():
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return None


#: kubelet's default hard eviction thresholds: memory.available<100Mi, nodefs.available<10%.
MEMORY_AVAILABLE_MIN_KIB = 100 * 1024
DISK_AVAILABLE_MIN_FRACTION = 0.10
PID_AVAILABLE_MIN_FRACTION = 0.05


def machine_pressure(data_dir):
    """{condition type: under pressure?} for memory, the data dir's disk, and pids."""
    memory = memory_available_kib()
    try:
        disk = os.statvfs(data_dir)
        disk_low = disk.f_blocks > 0 and disk.f_bavail / disk.f_blocks < \
            DISK_AVAILABLE_MIN_FRACTION
    except OSError:
        disk_low = False
    try:
        pid_max = int(_read("/proc/sys/kernel/pid_max", "0"))
        pids = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
        pids_low = pid_max > 0 and (pid_max - pids) / pid_max < PID_AVAILABLE_MIN_FRACTION
    except (OSError, ValueError):
        pids_low = False
    return {"MemoryPressure": memory is not None and memory < MEMORY_AVAILABLE_MIN_KIB,
            "DiskPressure": disk_low, "PIDPressure": pids_low}


def os_image():
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def default_node_ip():
    """The address this machine would use to reach others (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))
            return sock.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def cri_problem(client):
    """kubelet's reason for NotReady from CRI Status (RuntimeReady, NetworkReady), or None."""
    conditions = client.status().status.conditions
    down = [c for c in conditions if not c.status]
    for c in down:
        if c.type == "RuntimeReady":
            return f"container runtime is down: {c.reason}: {c.message}"
    for c in down:
        return (f"container runtime network not ready: {c.type}=false reason:{c.reason} "
                f"message:{c.message}")
    return None


def parse_taints(text):
    """``key=value:Effect,key:Effect`` -> taints, as --register-with-taints takes them."""
    taints = []
    for item in filter(None, (text or "").split(",")):
        head, _, effect = item.rpartition(":")
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not head:
            raise ValueError(f"invalid taint {item!r}: want key[=value]:Effect")
        key, _, value = head.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


def parse_labels(text):
    labels = {}
    for item in filter(None, (text or "").split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid label {item!r}: want key=value")
        labels[key] = value
    return labels


def _pressure_condition(kind, under, what, fine, bad, no_has=False):
    """kubelet's wording: KubeletHasSufficientMemory / KubeletHasInsufficientMemory, ..."""
    if under:
        return (kind, "True", f"KubeletHas{what}Pressure" if no_has else
                f"KubeletHasInsufficient{what}", f"kubelet has {bad}")
    return (kind, "False", f"KubeletHasNo{what}Pressure" if no_has else
            f"KubeletHasSufficient{what}", f"kubelet has {fine}")


class NodeAgent:
    """The Node and Lease side of the agent."""

    def __init__(self, rest, name, node_ip, port, max_pods=110, labels=None, taints=None,
                 heartbeat=10.0, report_interval=300.0, runtime_name="process", clock=None,
                 pressure=None, runtime_version=None, on_node=None, runtime_problem=None,
                 annotations=None):
        self.rest, self.name, self.node_ip, self.port = rest, name, node_ip, port
        #: Annotations the agent keeps on its Node (the pod network address: routes.py).
        self.annotations = dict(annotations or {})
        self.max_pods, self.labels, self.taints = max_pods, dict(labels or {}), taints or []
        self.heartbeat, self.report_interval = heartbeat, report_interval
        self.runtime_name = runtime_name
        #: containerRuntimeVersion, e.g. "containerd://1.6.20" (the runtime's own answer).
        self.runtime_version = runtime_version or f"{runtime_name}://0.1.0"
        self.pressure = pressure or (lambda: machine_pressure("/"))
        #: Called with the stored Node at every heartbeat (the pod network follows podCIDR).
        self.on_node = on_node
        #: Why the container runtime cannot run pods yet (None: it can): the Node is
        #: NotReady meanwhile, as kubelet's, so nothing is scheduled here in vain.
        self.runtime_problem = runtime_problem or (lambda: None)
        self.clock = clock or time.monotonic
        self._last_report, self._last_digest = None, None
        self._conditions = {}
        self._stop = threading.Event()
        self._thread = None

    # -- the Node ---------------------------------------------------------------------
    def node_labels(self):
        return {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": ARCH, "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": ARCH, RUNTIME_LABEL: self.runtime_name,
                **self.labels}

    def register(self):
        """Create the Node (or adopt the existing one, merging our labels)."""
        metadata = {"name": self.name, "labels": self.node_labels()}
        if self.annotations:
            metadata["annotations"] = dict(self.annotations)
        body = {"apiVersion": "v1", "kind": "Node", "metadata": metadata,
                "spec": {"taints": self.taints} if self.taints else {}}
        try:
            self.rest.create(kinds.NODES, None, body)
            log.info("node=%s msg=registered", self.name)
        except AlreadyExists:
            self.rest.patch(kinds.NODES, None, self.name,
                            {"metadata": {k: v for k, v in metadata.items() if k != "name"}})
            log.info("node=%s msg=node already registered, labels reconciled", self.name)
        self.post_status(force=True)
        self.renew_lease()

    def capacity(self):
        return {"cpu": str(os.cpu_count() or 1), "memory": f"{memory_kib()}Ki",
                "pods": str(self.max_pods)}

    def status(self):
        """The node status this agent reports (heartbeat times stamped now)."""
        now = meta.timestamp(meta.utcnow())
        capacity = self.capacity()
        pressure = self.pressure()
        wanted = [_pressure_condition("MemoryPressure", pressure.get("MemoryPressure"),
                                      "Memory", "sufficient memory available",
                                      "insufficient memory available"),
                  _pressure_condition("DiskPressure", pressure.get("DiskPressure"), "Disk",
                                      "no disk pressure", "disk pressure", no_has=True),
                  _pressure_condition("PIDPressure", pressure.get("PIDPressure"), "PID",
                                      "sufficient PID available", "insufficient PID available"),
                  self._ready()]
        conditions = []
        for kind, value, reason, message in wanted:
            previous = self._conditions.get(kind)
            since = previous[1] if previous and previous[0] == value else now
            self._conditions[kind] = (value, since)
            conditions.append({"type": kind, "status": value, "reason": reason,
                               "message": message, "lastHeartbeatTime": now,
                               "lastTransitionTime": since})
        return {
            "capacity": capacity, "allocatable": dict(capacity),
            "addresses": [{"type": "InternalIP", "address": self.node_ip},
                          {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"machineID": _read("/etc/machine-id"),
                         "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
                         "bootID": _read("/proc/sys/kernel/random/boot_id"),
                         "kernelVersion": platform.release(), "osImage": os_image(),
                         "containerRuntimeVersion": self.runtime_version,
                         "kubeletVersion": VERSION, "kubeProxyVersion": VERSION,
                         "operatingSystem": "linux", "architecture": ARCH},
            "conditions": conditions}

    def _ready(self):
        try:
            problem = self.runtime_problem()
        except Exception as exc:        # noqa: BLE001 - an unreadable runtime is not ready
            problem = f"container runtime status check failed: {exc}"
        if problem:
            return ("Ready", "False", "KubeletNotReady", problem)
        return ("Ready", "True", "KubeletReady", "kubelet is posting ready status")

    @staticmethod
    def _digest(status):
        return (status["capacity"], status["addresses"], status["daemonEndpoints"],
                [(c["type"], c["status"]) for c in status["conditions"]])

    def post_status(self, force=False):
        status = self.status()
        digest = self._digest(status)
        due = self._last_report is None or \
            self.clock() - self._last_report >= self.report_interval
        if not (force or due or digest != self._last_digest):
            return False
        self.rest.patch(kinds.NODES, None, self.name, {"status": status}, subresource="status")
        self._last_report, self._last_digest = self.clock(), digest
        return True

    def needs_report(self):
        """True if the stored Node says something else than we do (Ready not True)."""
        try:
            node = self.rest.get(kinds.NODES, None, self.name)
        except NotFound:
            self.register()             # deleted under us: register again, as kubelet does
            return False
        if self.on_node is not None:
            self.on_node(node)
        self._keep_annotations(node)
        ready = conditions.find(node, "Ready")
        ports = ((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint")
        return ready is None or ready.get("status") != "True" or \
            (ports or {}).get("Port") != self.port

    def _keep_annotations(self, node):
        """Put our annotations back if the stored Node lost or changed them."""
        stored = (node.get("metadata") or {}).get("annotations") or {}
        changed = {k: v for k, v in self.annotations.items() if stored.get(k) != v}
        if changed:
            self.rest.patch(kinds.NODES, None, self.name, {"metadata": {"annotations": changed}})
            log.info("node=%s annotations=%s msg=node annotations set", self.name,
                     ",".join(sorted(changed)))

    # -- the Lease --------------------------------------------------------------------
    def renew_lease(self):
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": meta.micro_timestamp(meta.utcnow())}
        try:
            self.rest.patch(kinds.LEASES, LEASE_NAMESPACE, self.name, {"spec": spec})
        except NotFound:
            node = self.rest.get(kinds.NODES, None, self.name)
            try:
                self.rest.create(kinds.LEASES, LEASE_NAMESPACE, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                      "name": self.name,
                                                      "uid": node["metadata"]["uid"]}]},
                    "spec": {**spec, "acquireTime": spec["renewTime"]}})
            except (AlreadyExists, Conflict):
                pass        # created meanwhile; the next renewal patches it

    # -- the loop -----------------------------------------------------------------------
    def heartbeat_once(self):
        self.renew_lease()
        self.post_status(force=self.needs_report())

    def start(self):
        self._thread = threading.Thread(target=self._loop, name="node-heartbeat", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()

    def _loop(self):
        while not self._stop.wait(self.heartbeat):
            try:
                self.heartbeat_once()
            except (ApiException, OSError) as exc:
                log.warning("node=%s msg=heartbeat failed error=%s", self.name, exc)
