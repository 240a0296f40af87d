"""The interface every runtime implements, so the pod worker never knows which one runs.

A *container* here is one attempt at running one container of a pod: restarting a
container starts a new attempt (attempt numbers count restarts, as kubelet's
restartCount does). Records outlive the agent process: after a restart the agent
calls ``list`` and re-adopts what still runs instead of starting duplicates.
A later ``runc`` runtime fits the same shape: ``ContainerConfig`` carries the
image, and ``Record.container_id`` is whatever id the runtime uses.
"""

import abc
import dataclasses


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

    @property
    def running(self):
        return self.exit_code is None


class RuntimeError_(Exception):
    """A container could not be started (bad command, missing binary): the pod says so."""


class Runtime(abc.ABC):
    """Start, watch, signal and forget container attempts."""

    #: The scheme of container IDs in pod status ("process://...").
    scheme = "runtime"
    #: True when pods share the node's network (podIP = hostIP).
    host_network = True

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
    def signal(self, container_id, sig):
        """Send ``sig`` to the attempt (its whole process group where that applies)."""

    @abc.abstractmethod
    def exec(self, container_id, command, timeout):
        """Run ``command`` in the attempt's context; return (exit code, output)."""

    @abc.abstractmethod
    def remove(self, container_id):
        """Forget a finished attempt and its state (not its logs)."""

    def pod_ip(self, pod_uid, host_ip):
        """The pod's IP: the node's for host-network runtimes; runc will give each pod its own."""
        return host_ip

    def release_pod(self, pod_uid):
        """Free what the runtime holds for a pod (a network namespace, an IP) once it is gone."""
        return None

    def close(self):
        """Release what the runtime holds (not the containers: they outlive the agent)."""
        return None
