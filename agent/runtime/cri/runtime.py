"""The cri runtime: pods are sandboxes and containers in containerd, driven over CRI.

What the worker asks of a runtime maps onto CRI calls as kubelet's kuberuntime
does: ``prepare_pod`` runs (or finds again) the pod's sandbox, ``start`` is
CreateContainer + StartContainer in it, ``inspect``/``list`` read
ContainerStatus/ListContainers, ``signal`` is StopContainer (SIGTERM with the
grace period, on a thread so the worker is not blocked; SIGKILL at once),
``exec`` is ExecSync and ``release_pod`` stops and removes the sandboxes.
Nothing is kept on disk: after an agent restart the labels on containerd's
sandboxes and containers say whose they are (labels.py).
"""

import logging
import os
import signal as signals
import threading

from agent import paths
from agent.runtime.base import CreateContainerError, Record, Runtime, RuntimeError_, Sandbox
from agent.runtime.cri import api_pb2, containerconfig, podfiles
from agent.runtime.cri import labels as labelmod
from agent.runtime.cri import sandbox as sandboxmod
from agent.runtime.cri.client import CriError

log = logging.getLogger(__name__)

DEFAULT_GRACE = 30
NS = 1e9


def default_cgroup_parent(node, pod_uid):
    return f"/steer/{node}/pod{pod_uid}"


class _PodSandbox:
    """What the runtime remembers of a pod's current sandbox."""

    def __init__(self, sandbox_id, ip, attempt, config):
        self.id, self.ip, self.attempt, self.config = sandbox_id, ip, attempt, config
        self.hosts_file = None


class CriRuntime(Runtime):
    scheme = "containerd"
    host_network = False
    runs_images = True

    def __init__(self, client, node, netns_path=None, resolv_conf="/etc/resolv.conf",
                 cgroup_parent=default_cgroup_parent, version=None, cluster_dns=(),
                 cluster_domain=""):
        self.client, self.node, self.netns_path = client, node, netns_path
        #: kubelet's --cluster-dns and --cluster-domain (ClusterFirst pods' resolv.conf).
        self.cluster_dns, self.cluster_domain = tuple(cluster_dns), cluster_domain
        #: containerRuntimeVersion for the Node ("containerd://1.6.20").
        self.version = version
        self.resolv_conf, self.cgroup_parent = resolv_conf, cgroup_parent
        self._pods = {}             # pod uid -> _PodSandbox
        self._finished = {}         # container id -> Record of an exited attempt
        self._stopping = set()      # container ids with a StopContainer under way
        self._lock = threading.Lock()

    # -- sandboxes ----------------------------------------------------------------
    def prepare_pod(self, pod, pod_dir):
        uid = pod["metadata"]["uid"]
        with self._lock:
            known = self._pods.get(uid)
        if known is not None and self._ready(known.id):
            return Sandbox(known.id, known.ip, known.attempt)
        existing = self.client.list_pod_sandbox(label_selector={
            labelmod.POD_UID: uid, **labelmod.ours(self.node)})
        ready = [s for s in existing if s.state == api_pb2.SANDBOX_READY]
        if ready:
            chosen = max(ready, key=lambda s: s.created_at)
            current = self._adopt(pod, pod_dir, chosen)
        else:
            attempt = max((s.metadata.attempt + 1 for s in existing), default=0)
            current = self._run(pod, pod_dir, attempt)
        for stale in existing:
            if stale.id != current.id and stale.state == api_pb2.SANDBOX_READY:
                self._stop_sandbox(stale.id)
        with self._lock:
            self._pods[uid] = current
        return Sandbox(current.id, current.ip, current.attempt)

    def sandbox_ready(self, pod_uid):
        """True while the pod's sandbox (the one remembered, else any of ours) is ready."""
        with self._lock:
            known = self._pods.get(pod_uid)
        if known is not None:
            return self._ready(known.id)
        return any(item.state == api_pb2.SANDBOX_READY for item in self.client.list_pod_sandbox(
            label_selector={labelmod.POD_UID: pod_uid, **labelmod.ours(self.node)}))

    def _ready(self, sandbox_id):
        try:
            status = self.client.pod_sandbox_status(sandbox_id).status
        except CriError as exc:
            if exc.not_found:
                return False
            raise
        return status.state == api_pb2.SANDBOX_READY

    def _config(self, pod, pod_dir, attempt):
        return sandboxmod.build(
            pod, node=self.node, attempt=attempt,
            log_directory=os.path.join(pod_dir, "logs"),
            cgroup_parent=self.cgroup_parent(self.node, pod["metadata"]["uid"]),
            host_dns=sandboxmod.read_resolv_conf(self.resolv_conf),
            cluster_dns=self.cluster_dns, cluster_domain=self.cluster_domain)

    def _run(self, pod, pod_dir, attempt):
        config = self._config(pod, pod_dir, attempt)
        paths.make_private_dir(config.log_directory)
        try:
            sandbox_id = self.client.run_pod_sandbox(config)
        except CriError as exc:
            raise RuntimeError_(f"failed to create pod sandbox: {exc.details or exc}") from None
        log.info("pod=%s/%s sandbox=%s attempt=%d msg=sandbox running",
                 config.metadata.namespace, config.metadata.name, sandbox_id[:12], attempt)
        return self._remember(pod, pod_dir, sandbox_id, attempt, config)

    def _adopt(self, pod, pod_dir, item):
        config = self._config(pod, pod_dir, item.metadata.attempt)
        return self._remember(pod, pod_dir, item.id, item.metadata.attempt, config)

    def _remember(self, pod, pod_dir, sandbox_id, attempt, config):
        status = self.client.pod_sandbox_status(sandbox_id).status
        spec = pod.get("spec") or {}
        ip = None if spec.get("hostNetwork") else (status.network.ip or None)
        current = _PodSandbox(sandbox_id, ip, attempt, config)
        if not spec.get("hostNetwork"):
            current.hosts_file = podfiles.write_hosts(pod_dir, ip, config.hostname,
                                                      spec.get("hostAliases"))
        return current

    def _stop_sandbox(self, sandbox_id, remove=False):
        try:
            self.client.stop_pod_sandbox(sandbox_id)
            if remove:
                self.client.remove_pod_sandbox(sandbox_id)
        except CriError as exc:
            if not exc.not_found:
                raise

    def stop_pod(self, pod_uid):
        # The IP stays in the pod's status (kubelet keeps podIP of a finished pod too).
        for item in self.client.list_pod_sandbox(label_selector={
                labelmod.POD_UID: pod_uid, **labelmod.ours(self.node)}):
            if item.state == api_pb2.SANDBOX_READY:
                self._stop_sandbox(item.id)
                log.info("pod_uid=%s sandbox=%s msg=sandbox of a finished pod stopped",
                         pod_uid, item.id[:12])

    def pod_ip(self, pod_uid, host_ip):
        with self._lock:
            known = self._pods.get(pod_uid)
        return (known.ip if known is not None else None) or host_ip

    def release_pod(self, pod_uid):
        with self._lock:
            self._pods.pop(pod_uid, None)
        for item in self.client.list_pod_sandbox(label_selector={
                labelmod.POD_UID: pod_uid, **labelmod.ours(self.node)}):
            self._stop_sandbox(item.id, remove=True)
            log.info("pod_uid=%s sandbox=%s msg=sandbox removed", pod_uid, item.id[:12])

    def stats(self):
        """Usage of this node's running containers (CRI ListContainers + ListContainerStats)."""
        from agent.stats import cri_stats
        return cri_stats(self.client, labels=labelmod.ours(self.node))

    def pod_uids(self):
        return {item.labels.get(labelmod.POD_UID)
                for item in self.client.list_pod_sandbox(label_selector=labelmod.ours(self.node))
                if item.labels.get(labelmod.POD_UID)}

    # -- containers -----------------------------------------------------------------
    def start(self, config):
        with self._lock:
            current = self._pods.get(config.pod_uid)
        if current is None:
            raise RuntimeError_(f"pod {config.pod_key} has no sandbox yet")
        image_user = self._image_user(config)
        termination = podfiles.termination_file(config.pod_dir, config.name, config.attempt) \
            if config.pod_dir else None
        os.makedirs(os.path.dirname(config.log_path), mode=0o700, exist_ok=True)
        request = containerconfig.build(config, node=self.node, image_user=image_user,
                                        hosts_file=current.hosts_file,
                                        termination_file=termination, sandbox_id=current.id)
        try:
            container_id = self.client.create_container(current.id, request, current.config)
        except CriError as exc:
            # kubelet shows the runtime's own message (no prefix) as CreateContainerError.
            raise CreateContainerError(exc.details or str(exc)) from None
        try:
            self.client.start_container(container_id)
        except CriError as exc:
            self._remove_quietly(container_id)
            raise RuntimeError_(f"failed to start container {config.name}: "
                                f"{exc.details or exc}") from None
        return self.inspect(container_id)

    def _image_user(self, config):
        """(uid or None, username) of the image, when the securityContext needs it."""
        context = containerconfig.effective_context(config.pod, config.spec or {})
        if not context.get("runAsNonRoot") and not (context.get("runAsGroup") is not None and
                                                    context.get("runAsUser") is None):
            return None
        image = self.client.image_status(config.image)
        if image is None:
            return None
        return (image.uid.value if image.HasField("uid") else None), image.username

    def inspect(self, container_id):
        with self._lock:
            done = self._finished.get(container_id)
        if done is not None:
            return Record(**done.__dict__)
        try:
            status = self.client.container_status(container_id).status
        except CriError as exc:
            if exc.not_found:
                return None
            raise
        record = record_of(status)
        if not record.running:
            annotations = status.annotations
            record.message = podfiles.termination_message(
                annotations.get(labelmod.TERMINATION_HOST_PATH),
                annotations.get(labelmod.TERMINATION_POLICY), record.exit_code,
                record.log_path) or status.message or None
            with self._lock:
                self._finished[container_id] = Record(**record.__dict__)
        return record

    def list(self):
        records = []
        for item in self.client.list_containers(label_selector=labelmod.ours(self.node)):
            record = self.inspect(item.id)
            if record is not None:
                records.append(record)
        return records

    def signal(self, container_id, sig, grace=None):
        if sig == signals.SIGKILL:
            self._stop(container_id, 0)
            return
        if sig != signals.SIGTERM:
            log.warning("container=%s signal=%s msg=CRI can only stop containers; ignored",
                        container_id[:12], sig)
            return
        with self._lock:
            if container_id in self._stopping:
                return
            self._stopping.add(container_id)
        timeout = DEFAULT_GRACE if grace is None else max(0, int(grace))
        threading.Thread(target=self._stop, args=(container_id, timeout, True),
                         name=f"stop-{container_id[:12]}", daemon=True).start()

    def _stop(self, container_id, timeout, background=False):
        try:
            self.client.stop_container(container_id, timeout)
        except CriError as exc:
            if not exc.not_found:
                if not background:
                    raise
                log.warning("container=%s msg=stop failed error=%s", container_id[:12], exc)
        finally:
            if background:
                with self._lock:
                    self._stopping.discard(container_id)

    def exec(self, container_id, command, timeout):
        try:
            code, out, err = self.client.exec_sync(container_id, command, timeout)
        except CriError as exc:
            return 1, str(exc)
        return code, (out + err).decode("utf-8", "replace")

    def remove(self, container_id):
        self._remove_quietly(container_id)
        with self._lock:
            self._finished.pop(container_id, None)

    def _remove_quietly(self, container_id):
        try:
            self.client.remove_container(container_id)
        except CriError as exc:
            if not exc.not_found:
                raise

    def close(self):
        self.client.close()


def record_of(status):
    """The worker's Record of a CRI ContainerStatus."""
    annotations, labels = status.annotations, status.labels
    record = Record(
        container_id=status.id, pod_uid=labels.get(labelmod.POD_UID, ""),
        name=labels.get(labelmod.CONTAINER_NAME) or status.metadata.name,
        attempt=labelmod.attempt_of(annotations, status.metadata.attempt),
        started_at=(status.started_at or status.created_at) / NS or None,
        init=labelmod.is_init(annotations),
        log_path=annotations.get(labelmod.LOG_PATH) or status.log_path,
        sandbox_id=annotations.get(labelmod.SANDBOX_ID, ""), image_id=status.image_ref)
    if status.state == api_pb2.CONTAINER_RUNNING:
        return record
    if status.state == api_pb2.CONTAINER_EXITED:
        record.exit_code = status.exit_code
        record.reason = status.reason or ("Completed" if status.exit_code == 0 else "Error")
    elif status.state == api_pb2.CONTAINER_CREATED:
        # Created but never started (the agent stopped in between): it never ran.
        record.exit_code, record.reason = 128, "StartError"
    else:
        record.exit_code, record.reason = 137, "ContainerStatusUnknown"
    record.finished_at = (status.finished_at / NS) if status.finished_at else \
        record.started_at
    return record
