"""The interface every runtime implements, so the pod worker never knows which one runs.

A *container* here is one attempt at running one container of a pod: restarting a
container starts a new attempt (attempt numbers count restarts, as kubelet's
restartCount does). Records outlive the agent process: after a restart the agent
calls ``list`` and re-adopts what still runs instead of starting duplicates.
Runtimes that run images in pod sandboxes (cri) also answer ``prepare_pod``:
the worker asks for the pod's sandbox (its own network namespace and IP) before it
starts a container, and every Record says which sandbox it ran in.
"""

import abc
import dataclasses


@dataclasses.dataclass
class Mount:
    """A host path that an image runtime bind-mounts at ``container_path``."""
    container_path: str
    host_path: str
    read_only: bool = False


@dataclasses.dataclass
class Sandbox:
    """A pod's sandbox as an image runtime reports it (process runtimes have none)."""
    id: str
    ip: str
    attempt: int = 0


@dataclasses.dataclass
class ContainerConfig:
    """Everything a runtime needs to start one attempt of a container."""
    pod_uid: str
    pod_key: str                    # namespace/name, for logs and messages
    name: str
    attempt: int                    # 0 for the first start, +1 per restart
    command: list                   # argv, already $(VAR)-expanded
    env: dict
    workdir: str
    log_path: str
    image: str = ""
    memory_limit: int = None        # bytes
    cpu_limit_millis: int = None
    init: bool = False
    # Image runtimes: command and args stay apart (they override the image's
    # ENTRYPOINT and CMD), volumes come as mounts, and the pod and container specs
    # carry what maps to the runtime's own settings (securityContext, ports, ...).
    args: list = ()
    mounts: list = ()               # Mount, in the container's order
    pod: dict = None
    spec: dict = None
    pod_dir: str = ""


@dataclasses.dataclass
class Record:
    """What a runtime knows about one attempt; ``exit_code`` is None while it runs."""
    container_id: str
    pod_uid: str
    name: str
    attempt: int
    pid: int = None
    started_at: float = None        # wall-clock seconds
    exit_code: int = None
    finished_at: float = None
    reason: str = None              # Completed, Error, OOMKilled, ...
    init: bool = False
    log_path: str = ""
    sandbox_id: str = ""            # image runtimes: the sandbox the attempt ran in
    message: str = None             # the termination message, when the runtime has one
    image_id: str = ""              # the image the attempt runs (status.imageID)

    @property
    def running(self):
        return self.exit_code is None


@dataclasses.dataclass
class ContainerStats:
    """One running container's usage: cumulative cpu and current memory (agent/stats.py)."""
    pod_uid: str
    pod_namespace: str
    pod_name: str
    container: str
    cpu_usage_core_ns: int          # cpu time since the container started, in ns
    memory_working_set: int         # bytes
    timestamp: float                # wall-clock seconds of the reading


class RuntimeError_(Exception):
    """A container could not be started (bad command, missing binary): the pod says so."""


class CreateContainerError(RuntimeError_):
    """The runtime could not even create the container (a bad mount, the image's config).

    Nothing ran, so no attempt is counted: the container waits with kubelet's reason
    CreateContainerError and is retried with backoff (a failed start is a StartError).
    """


class Runtime(abc.ABC):
    """Start, watch, signal and forget container attempts."""

    #: The scheme of container IDs in pod status ("process://...").
    scheme = "runtime"
    #: True when pods share the node's network (podIP = hostIP).
    host_network = True
    #: True when containers run images in pod sandboxes (the cri runtime).
    runs_images = False
    #: The network namespace pod IPs are reachable from (None: this one).
    netns_path = None

    @abc.abstractmethod
    def start(self, config):
        """Start an attempt; return its Record (raise RuntimeError_ if it cannot start)."""

    @abc.abstractmethod
    def inspect(self, container_id):
        """Return the up-to-date Record of an attempt, or None if unknown."""

    @abc.abstractmethod
    def list(self):
        """Return the Records of every attempt this runtime remembers (for re-adoption)."""

    @abc.abstractmethod
    def signal(self, container_id, sig, grace=None):
        """Send ``sig`` to the attempt (its whole process group where that applies).

        ``grace`` is the seconds a SIGTERM leaves before the worker sends SIGKILL;
        a runtime that stops containers in one call (CRI StopContainer) uses it.
        """

    @abc.abstractmethod
    def exec(self, container_id, command, timeout):
        """Run ``command`` in the attempt's context; return (exit code, output)."""

    @abc.abstractmethod
    def remove(self, container_id):
        """Forget a finished attempt and its state (not its logs)."""

    def prepare_pod(self, pod, pod_dir):
        """Make sure the pod's sandbox runs; return it (a Sandbox), or None without sandboxes.

        Idempotent; a sandbox that died is replaced by a new one (a new id), and
        the worker then restarts every container in it.
        """
        return None

    def sandbox_ready(self, pod_uid):
        """False once the pod's sandbox died (the worker then decides whether to replace it)."""
        return True

    def stop_pod(self, pod_uid):
        """Stop the pod's sandbox once nothing will run in it again (its IP is freed)."""
        return None

    def pod_ip(self, pod_uid, host_ip):
        """The pod's IP: the node's for host-network runtimes, the sandbox's for cri."""
        return host_ip

    def pod_uids(self):
        """The uids of pods the runtime holds something for (sandboxes), to find orphans."""
        return set()

    def release_pod(self, pod_uid):
        """Free what the runtime holds for a pod (a network namespace, an IP) once it is gone."""
        return None

    def stats(self):
        """Return a ContainerStats per running container (none known: an empty list)."""
        return []

    def close(self):
        """Release what the runtime holds (not the containers: they outlive the agent)."""
        return None
