"""What a pod worker remembers per container, and what all workers of an agent share.

``ContainerState`` holds a container's current and previous attempts (runtime
Records), its probes and any kill or retry under way; ``Context`` bundles the
runtime, the API, the event recorder, backoff, prober and clock.
"""

import dataclasses

from agent import status as statusmod
from agent.runtime.base import Record

#: Seconds between looks at the runtime when nothing else is due (exits are polled).
POLL = 1.0


@dataclasses.dataclass
class ContainerState:
    """The worker's memory of one container of the pod."""
    spec: dict
    init: bool = False
    current: Record = None
    previous: Record = None
    probes: dict = dataclasses.field(default_factory=dict)     # kind -> ProbeState
    waiting_reason: str = None
    waiting_message: str = None
    kill_deadline: float = None     # set while a kill (probe failure, deletion) is under way
    backoff_reported: float = None  # finishedAt of the crash a BackOff event was recorded for
    retry_at: float = None          # no new start before this (configuration errors)

    @property
    def name(self):
        return self.spec["name"]

    @property
    def running(self):
        return self.current is not None and self.current.running

    def started(self):
        if not self.running:
            return False
        startup = self.probes.get("startup")
        return startup is None or startup.result is True

    def ready(self):
        if not self.started() or self.kill_deadline is not None:
            return False
        readiness = self.probes.get("readiness")
        return readiness is None or readiness.result is True

    def view(self):
        restarts = self.current.attempt if self.current else 0
        return statusmod.ContainerView(
            self.name, self.spec.get("image", ""), self.current, self.previous, restarts,
            self.waiting_reason, self.waiting_message, self.ready(), self.started())


@dataclasses.dataclass
class Context:
    """What every worker of an agent shares."""
    runtime: object
    api: object             # lookup(kind, ns, name), patch_status(pod, status), delete(pod)
    recorder: object        # event(obj, type, reason, message)
    backoff: object
    prober: object
    clock: object           # wall-clock seconds
    data_dir: str
    host_ip: str
    node_name: str = ""
    poll: float = POLL
    secret_dir: str = None  # tmpfs directory for secret and projected volumes (None: on disk)
    images: object = None   # image runtimes: ensure(pod, container, pull_secrets) -> ImageResult


_MEMORY_SUFFIXES = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4,
                    "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "T": 1000 ** 4}


def memory_bytes(quantity):
    """A memory quantity ("128Mi", "1G", "1000") in bytes, or None."""
    if not quantity:
        return None
    text = str(quantity)
    for suffix, factor in _MEMORY_SUFFIXES.items():
        if text.endswith(suffix):
            return int(float(text[:-len(suffix)]) * factor)
    return int(float(text))


def cpu_millis(quantity):
    """A cpu quantity ("500m", "2", "0.5") in millicores, or None."""
    if not quantity:
        return None
    text = str(quantity)
    return int(text[:-1]) if text.endswith("m") else int(float(text) * 1000)
