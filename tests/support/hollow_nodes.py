"""Pretend to be the agents of some nodes, as Kubernetes' kubemark hollow nodes do.

``HollowNodes`` registers Node objects, renews their Leases in kube-node-lease and
"runs" the pods bound to them: a bound pod gets status Running and Ready (or the
phase ``phase_for`` picks) after ``ready_after`` seconds, with a pod IP from the
node's podCIDR; a pod being deleted on a live node is deleted for good, as an
agent confirms a graceful delete. ``stop_node`` makes a node a dead machine (no
renewals, no pod handling) until ``start_node``. Nothing runs for real: this
is for controller and scheduler tests and benchmarks, not the agent's own.
"""

import heapq
import ipaddress
import logging
import threading
import time

from control.client import Conflict, Informer, NotFound, RestClient, object_key
from control.client.errors import ApiException
from control.objects import conditions, kinds, meta

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"


class HollowNodes:
    """Hollow agents for ``names``, talking to the API server at ``api_url``."""

    def __init__(self, api_url, names, cpu="4", memory="8Gi", max_pods=110,
                 renew_interval=1.0, ready_after=0.0, phase_for=None, labels=None,
                 run_pods=True, client_kwargs=None):
        # client_kwargs: RestClient's TLS keywords (a LocalApiServer's client_kwargs).
        self.rest = RestClient(api_url, timeout=15, **(client_kwargs or {}))
        self.names = list(names)
        self.capacity = {"cpu": str(cpu), "memory": str(memory), "pods": str(max_pods)}
        self.renew_interval, self.ready_after = renew_interval, ready_after
        self.phase_for = phase_for or (lambda pod: "Running")
        self.labels = dict(labels or {})
        self._live = set()
        self._ready_override = {}       # pod key -> bool, set by set_ready
        self._next_ip = {}              # node -> next host offset in its podCIDR
        self._lock = threading.Lock()
        self._due = []                  # heap of (monotonic due time, seq, pod key)
        self._seq = 0
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads = []
        self.pods = Informer(self.rest, kinds.PODS)
        self.nodes = Informer(self.rest, kinds.NODES)
        # run_pods=False: nodes only (a scheduling benchmark that never runs its pods).
        self.run_pods = run_pods
        if run_pods:
            self.pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new),
                                  None)

    # -- lifecycle ------------------------------------------------------------------
    def start(self, timeout=60):
        for name in self.names:
            self._register(name)
        with self._lock:
            self._live.update(self.names)
        informers = [self.nodes, self.pods] if self.run_pods else [self.nodes]
        for informer in informers:
            informer.start()
        if not all(informer.wait_for_sync(timeout) for informer in informers):
            raise RuntimeError("hollow nodes: informers did not sync")
        for target, name in ((self._renew_loop, "hollow-renew"), (self._pod_loop, "hollow-pods")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        with self._lock:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(10)
        self.pods.stop()
        self.nodes.stop()
        self.rest.close()

    def stop_node(self, name):
        """The machine dies: its Lease is no longer renewed and its pods are left alone."""
        with self._lock:
            self._live.discard(name)

    def start_node(self, name):
        """The machine returns: renew at once, report Ready, look after its pods again."""
        with self._lock:
            self._live.add(name)
        self._renew(name)
        self._report_ready(name)
        for pod in self.pods.store.list():
            if (pod.get("spec") or {}).get("nodeName") == name:
                self._schedule(object_key(pod), 0)

    def set_ready(self, namespace, name, ready):
        """Make a running pod's Ready condition ``ready`` (a readiness probe's verdict)."""
        key = f"{namespace}/{name}"
        with self._lock:
            self._ready_override[key] = ready
        self._schedule(key, 0)

    # -- nodes ------------------------------------------------------------------------
    def _register(self, name):
        try:
            self.rest.create(kinds.NODES, None, {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                      "kubernetes.io/os": "linux",
                                                      **self.labels}}})
        except ApiException as exc:
            if exc.status != 409:
                raise
        self._report_ready(name)
        self._renew(name)

    def _report_ready(self, name):
        """Post node status as an agent would: capacity, addresses, Ready=True."""
        for _ in range(5):
            node = self.rest.get(kinds.NODES, None, name)
            now = meta.timestamp(meta.utcnow())
            index = self.names.index(name)
            node["status"] = {
                "capacity": dict(self.capacity), "allocatable": dict(self.capacity),
                "addresses": [{"type": "InternalIP", "address": f"192.0.2.{index + 1}"},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-hollow", "operatingSystem": "linux",
                             "architecture": "amd64", "containerRuntimeVersion": "hollow://1"},
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "hollow agent is posting ready status",
                                "lastHeartbeatTime": now, "lastTransitionTime": now}]}
            try:
                self.rest.update_status(kinds.NODES, None, node)
                return
            except Conflict:
                continue

    def _renew(self, name):
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": meta.micro_timestamp(meta.utcnow())}
        try:
            self.rest.patch(kinds.LEASES, LEASE_NAMESPACE, name, {"spec": spec})
        except NotFound:
            try:
                self.rest.create(kinds.LEASES, LEASE_NAMESPACE, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                    "spec": spec})
            except Conflict:
                pass            # created meanwhile; the next renewal patches it

    def _renew_loop(self):
        while not self._stop.wait(self.renew_interval):
            with self._lock:
                live = sorted(self._live)
            for name in live:
                try:
                    self._renew(name)
                    node = self.nodes.store.get(name)
                    if node is not None and not conditions.is_ready(node):
                        self._report_ready(name)    # as an agent overwrites Ready=Unknown
                except ApiException as exc:
                    log.info("hollow node %s: renewal failed: %s", name, exc)
                except OSError as exc:
                    log.info("hollow node %s: API server unreachable: %s", name, exc)

    # -- pods -------------------------------------------------------------------------
    def _pod_changed(self, pod):
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self.names:
            return
        if pod["metadata"].get("deletionTimestamp"):
            self._schedule(object_key(pod), 0)
        elif not (pod.get("status") or {}).get("podIP"):
            self._schedule(object_key(pod), self.ready_after)

    def _schedule(self, key, delay):
        with self._lock:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + delay, self._seq, key))
            self._wake.notify()

    def _pod_loop(self):
        while not self._stop.is_set():
            with self._lock:
                while not self._stop.is_set() and \
                        (not self._due or self._due[0][0] > time.monotonic()):
                    timeout = self._due[0][0] - time.monotonic() if self._due else None
                    self._wake.wait(timeout)
                if self._stop.is_set():
                    return
                _, _, key = heapq.heappop(self._due)
            try:
                self._run_pod(key)
            except (Conflict, NotFound):
                self._schedule(key, 0.05)       # changed meanwhile: look again
            except (ApiException, OSError) as exc:
                log.info("hollow nodes: pod %s: %s", key, exc)
                self._schedule(key, 0.5)

    def _run_pod(self, key):
        pod = self.pods.store.get(key)
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        with self._lock:
            if node not in self._live:
                return
            override = self._ready_override.get(key)
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self.rest.delete(kinds.PODS, meta["namespace"], meta["name"], grace_period_seconds=0)
            return
        status = self._status(pod, node, override)
        if _same_status(pod.get("status") or {}, status):
            return
        self.rest.update_status(kinds.PODS, meta["namespace"], {**pod, "status": status})

    def _status(self, pod, node, ready_override):
        old = pod.get("status") or {}
        phase = old.get("phase") if old.get("phase") in ("Succeeded", "Failed") \
            else self.phase_for(pod)
        running = phase == "Running"
        ready = running and (ready_override if ready_override is not None else True)
        now = meta.timestamp(meta.utcnow())
        started = old.get("startTime") or now
        containers = []
        for container in (pod.get("spec") or {}).get("containers") or ():
            if running:
                state = {"running": {"startedAt": started}}
            else:
                code = 0 if phase == "Succeeded" else 1
                state = {"terminated": {"exitCode": code, "startedAt": started, "finishedAt": now,
                                        "reason": "Completed" if code == 0 else "Error"}}
            containers.append({"name": container.get("name"), "image": container.get("image"),
                               "imageID": "", "ready": ready, "started": running,
                               "restartCount": 0, "state": state,
                               "containerID": f"hollow://{pod['metadata'].get('uid')}"})

        def condition(kind, value, reason=None):
            previous = next((c for c in old.get("conditions") or () if c.get("type") == kind), None)
            status = "True" if value else "False"
            since = previous["lastTransitionTime"] if previous and \
                previous.get("status") == status and previous.get("lastTransitionTime") else now
            out = {"type": kind, "status": status, "lastProbeTime": None,
                   "lastTransitionTime": since}
            if reason and not value:
                out["reason"] = reason
            return out

        not_ready_reason = "PodCompleted" if phase in ("Succeeded", "Failed") else \
            "ContainersNotReady"
        return {"phase": phase, "hostIP": self._host_ip(node),
                "podIP": old.get("podIP") or self._pod_ip(node),
                "startTime": started, "qosClass": old.get("qosClass", "BestEffort"),
                "conditions": [condition("PodScheduled", True), condition("Initialized", True),
                               condition("ContainersReady", ready, not_ready_reason),
                               condition("Ready", ready, not_ready_reason)],
                "containerStatuses": containers}

    def _host_ip(self, node):
        return f"192.0.2.{self.names.index(node) + 1}"

    def _pod_ip(self, node):
        """The next address in the node's podCIDR, or in 10.250.<node index>.0/24 without one."""
        cached = self.nodes.store.get(node) or {}
        cidr = (cached.get("spec") or {}).get("podCIDR") or \
            f"10.250.{self.names.index(node) % 256}.0/24"
        network = ipaddress.ip_network(cidr, strict=False)
        with self._lock:
            offset = self._next_ip.get(node, 2)
            self._next_ip[node] = offset + 1
        return str(network[offset % (network.num_addresses - 2) + 1])


def _same_status(old, new):
    """Equal in what a reader acts on (phase, IPs, condition statuses, container readiness)."""
    def digest(status):
        return (status.get("phase"), status.get("podIP"), status.get("hostIP"),
                sorted((c.get("type"), c.get("status")) for c in status.get("conditions") or ()),
                [(c.get("name"), c.get("ready")) for c in status.get("containerStatuses") or ()])
    return digest(old) == digest(new)
