"""Tie the agent together: watch this node's pods and keep one worker per pod.

``PodManager`` runs an Informer on pods with ``spec.nodeName=<node>``. Before
the first worker starts it asks the runtime what is already running (an earlier
agent's containers) and hands each worker its pod's records, so containers are
re-adopted, not started twice; containers of pods that no longer exist are
stopped. Pods beyond --max-pods are rejected as kubelet does (phase Failed,
reason OutOfpods).
"""

import collections
import logging
import signal
import threading

from agent.env import ConfigError
from agent.podworker import PodWorker
from agent.projected import token_request_body
from control.client import ApiException, Conflict, Informer, NotFound, object_key
from control.objects import kinds

log = logging.getLogger(__name__)


class ApiAdapter:
    """What a pod worker needs from the API server, on a RestClient."""

    def __init__(self, rest):
        self.rest = rest

    def lookup(self, kind, namespace, name):
        resource = {"ConfigMap": kinds.CONFIGMAPS, "Secret": kinds.SECRETS,
                    "PersistentVolumeClaim": kinds.lookup("", "v1", "persistentvolumeclaims"),
                    "PersistentVolume": kinds.lookup("", "v1", "persistentvolumes")}[kind]
        try:
            return self.rest.get(resource, namespace, name)
        except NotFound:
            return None

    def services(self, namespace):
        """The Services of ``namespace`` and of default (for the containers' variables)."""
        names = [namespace] if namespace == "default" else [namespace, "default"]
        return [svc for ns in names for svc in self.rest.list_all(kinds.SERVICES, ns)[0]]

    def request_token(self, pod, source):
        """Ask the TokenRequest API for a token of the pod's ServiceAccount, bound to the pod."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        path = self.rest.path(kinds.SERVICEACCOUNTS, meta["namespace"], account, "token")
        try:
            answer = self.rest.request("POST", path, body=token_request_body(pod, source))
        except ApiException as exc:
            raise ConfigError(f"failed to fetch token: {exc}") from None
        token = ((answer or {}).get("status") or {}).get("token")
        if not token:
            raise ConfigError(f"TokenRequest for serviceaccount {account} returned no token")
        return token

    def patch_status(self, pod, status):
        meta = pod["metadata"]
        try:
            self.rest.patch(kinds.PODS, meta["namespace"], meta["name"], {"status": status},
                            subresource="status")
        except NotFound:
            pass            # deleted meanwhile: the informer will say so

    def delete(self, pod):
        """Delete for good (grace 0), only the pod we know (its uid)."""
        meta = pod["metadata"]
        try:
            self.rest.delete(kinds.PODS, meta["namespace"], meta["name"], grace_period_seconds=0,
                             preconditions={"uid": meta["uid"]})
        except (NotFound, Conflict):
            pass            # gone already, or the name now belongs to a new pod


class PodManager:
    """One PodWorker per pod bound to this node."""

    def __init__(self, rest, ctx, max_pods=110, resync=0):
        self.rest, self.ctx, self.max_pods = rest, ctx, max_pods
        self.informer = Informer(rest, kinds.PODS, field_selector=f"spec.nodeName={ctx.node_name}",
                                 resync=resync)
        self.informer.add_handler(self._added, lambda old, new: self._added(new), self._deleted)
        self.workers = {}           # pod key -> PodWorker
        self._lock = threading.Lock()
        self._records = None        # runtime records by pod uid, until adopted
        self._rejected = set()

    def start(self, timeout=60):
        records = self.ctx.runtime.list()
        by_uid = {}
        for record in records:
            by_uid.setdefault(record.pod_uid, []).append(record)
        with self._lock:
            self._records = by_uid
        self.informer.start()
        if not self.informer.wait_for_sync(timeout):
            raise RuntimeError("the pod informer did not sync")
        live = {pod["metadata"]["uid"] for pod in self.informer.store.list()}
        for uid, orphans in by_uid.items():
            if uid not in live:
                self._stop_orphans(uid, orphans)
        # Sandboxes of pods that are gone (image runtimes), with or without containers.
        for uid in self.ctx.runtime.pod_uids() - live:
            log.info("pod_uid=%s msg=removing the sandbox of a pod that is gone", uid)
            self.ctx.runtime.release_pod(uid)

    def _stop_orphans(self, uid, records):
        """Containers of a pod that is gone: kill them and forget them."""
        for record in records:
            if record.running:
                log.info("pod_uid=%s container=%s msg=stopping orphaned container", uid,
                         record.name)
                self.ctx.runtime.signal(record.container_id, signal.SIGKILL)
        for record in records:
            self.ctx.runtime.remove(record.container_id)

    def _added(self, pod):
        key = object_key(pod)
        with self._lock:
            worker = self.workers.get(key)
            if worker is not None and worker.uid != pod["metadata"]["uid"]:
                worker.gone()           # a new pod with the old name: the old one is gone
                worker = None
            if worker is not None:
                if not worker.finished:
                    worker.update(pod)
                return
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and \
                    not pod["metadata"].get("deletionTimestamp") and \
                    pod["metadata"]["uid"] not in (self._records or {}):
                return              # finished before we knew it: nothing to run
            if self._over_capacity(pod):
                return
            records = (self._records or {}).pop(pod["metadata"]["uid"], ())
            worker = PodWorker(self.ctx, pod, records)
            self.workers[key] = worker
        worker.start()

    def _over_capacity(self, pod):
        for key in [k for k, w in self.workers.items() if w.finished]:
            del self.workers[key]
        active = sum(1 for w in self.workers.values() if not w.finished)
        if active < self.max_pods or pod["metadata"].get("deletionTimestamp"):
            return False
        uid = pod["metadata"]["uid"]
        if uid not in self._rejected:
            self._rejected.add(uid)
            message = f"Node didn't have enough resource: pods, capacity {self.max_pods}"
            self.ctx.recorder.event(pod, "Warning", "OutOfpods", message)
            self.ctx.api.patch_status(pod, {"phase": "Failed", "reason": "OutOfpods",
                                            "message": message})
        return True

    def _deleted(self, pod):
        key = object_key(pod)
        with self._lock:
            worker = self.workers.get(key)
        if worker is not None and worker.uid == pod["metadata"]["uid"]:
            worker.gone()

    def reap(self):
        """Forget finished workers (called now and then)."""
        with self._lock:
            for key in [k for k, w in self.workers.items() if w.finished]:
                del self.workers[key]

    def find_logs(self, namespace, name, container, previous):
        """(log path, is_running) of a container, for the HTTP server.

        LookupError means 404 (no such pod or container here), ValueError 400 (it has
        not started yet), as kubelet answers.
        """
        with self._lock:
            worker = self.workers.get(f"{namespace}/{name}")
        if worker is None:
            raise LookupError(f'pod "{name}" in namespace "{namespace}" is not on this node')
        path = worker.log_path(container, previous)
        if path is None:
            if previous:
                raise LookupError(f'previous terminated container "{container}" in pod '
                                  f'"{name}" not found')
            reason = worker.waiting_reason(container)
            if reason is None:
                raise LookupError(f'container {container} is not valid for pod {name}')
            raise ValueError(f'container "{container}" in pod "{name}" is waiting to start: '
                             f'{reason}')
        return path, (lambda: False) if previous else (lambda: worker.is_running(container))

    def pods_by_uid(self):
        """{uid: pod object} of the pods this agent runs now (their stats are reported)."""
        with self._lock:
            return {w.uid: w.pod for w in self.workers.values() if not w.finished}

    def find_container(self, namespace, name, container=None):
        """The running attempt (a Record) of a container, for exec and attach.

        With ``container`` None, any running attempt (its ``sandbox_id`` is the pod's
        sandbox, for port-forward). LookupError means 404, ValueError 400, as kubelet.
        """
        with self._lock:
            worker = self.workers.get(f"{namespace}/{name}")
        if worker is None or worker.finished:
            raise LookupError(f'pod "{name}" in namespace "{namespace}" is not on this node')
        states = worker.init + worker.main
        if container is None:
            for state in states:
                if state.running and state.current.sandbox_id:
                    return state.current
            raise ValueError(f'pod "{name}" has no running container to forward ports to')
        state = next((s for s in states if s.name == container), None)
        if state is None:
            raise LookupError(f"container {container} is not valid for pod {name}")
        if not state.running:
            raise ValueError(f'container "{container}" in pod "{name}" is not running')
        return state.current

    def metrics(self):
        """Prometheus text: pods handled, containers running, container restarts."""
        with self._lock:
            workers = [w for w in self.workers.values() if not w.finished]
        states = [s for w in workers for s in w.init + w.main]
        running = sum(1 for s in states if s.running)
        restarts = sum(s.current.attempt for s in states if s.current is not None)
        phases = collections.Counter((w.last_status or w.pod.get("status") or {}).get("phase")
                                     or "Pending" for w in workers)
        return "\n".join([
            "# HELP steer_agent_pods Pods this agent is running or stopping.",
            "# TYPE steer_agent_pods gauge", f"steer_agent_pods {len(workers)}",
            "# HELP steer_agent_running_containers Containers running now.",
            "# TYPE steer_agent_running_containers gauge",
            f"steer_agent_running_containers {running}",
            "# HELP steer_agent_container_restarts Restarts of the current pods' containers.",
            "# TYPE steer_agent_container_restarts gauge",
            f"steer_agent_container_restarts {restarts}",
            # Per container, as kube-state-metrics' kube_pod_container_status_restarts_total
            # (the monitoring addon's crash-looping alert reads it).
            "# HELP steer_agent_pod_container_restarts Restarts of a current pod's container.",
            "# TYPE steer_agent_pod_container_restarts gauge",
            *(f'steer_agent_pod_container_restarts{{namespace="{w.key.split("/")[0]}",'
              f'pod="{w.key.split("/", 1)[1]}",container="{s.spec.get("name", "")}"}} '
              f'{s.current.attempt}'
              for w in workers for s in w.init + w.main if s.current is not None),
            "# HELP steer_agent_pods_by_phase Pods this agent handles, by their last phase.",
            "# TYPE steer_agent_pods_by_phase gauge",
            *(f'steer_agent_pods_by_phase{{phase="{phase}"}} {count}'
              for phase, count in sorted(phases.items()))]) + "\n"

    def stop(self):
        self.informer.stop()
        with self._lock:
            for worker in self.workers.values():
                worker.stop()
