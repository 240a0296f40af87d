"""Memory and cpu limits through cgroup v2, where the host lets the agent write it.

A container's processes join ``/sys/fs/cgroup/steersman/<container id>``, whose
``memory.max`` and ``cpu.max`` carry the limits. On hosts without a writable
cgroup v2 hierarchy (cgroup v1, a read-only /sys/fs/cgroup in a container) limits
are skipped with one log line, and pods still run.
"""

import logging
import os

log = logging.getLogger(__name__)

ROOT = "/sys/fs/cgroup"
PARENT = "steersman"
CPU_PERIOD = 100_000        # microseconds, the kernel's default cfs period
_warned = []


def available(root=ROOT):
    """True if cgroup v2 is mounted at ``root`` and we may create groups under it."""
    return os.path.exists(os.path.join(root, "cgroup.controllers")) and os.access(root, os.W_OK)


def create(container_id, memory_bytes=None, cpu_millis=None, root=ROOT):
    """Make the container's cgroup with its limits; return its path, or None if unsupported."""
    if memory_bytes is None and cpu_millis is None:
        return None
    if not available(root):
        if not _warned:
            _warned.append(True)
            log.info("msg=cgroup v2 is not writable here, memory and cpu limits are not "
                     "enforced root=%s", root)
        return None
    try:
        parent = os.path.join(root, PARENT)
        os.makedirs(parent, exist_ok=True)
        with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +cpu")
        with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +cpu")
        path = os.path.join(parent, container_id)
        os.makedirs(path, exist_ok=True)
        if memory_bytes is not None:
            with open(os.path.join(path, "memory.max"), "w") as f:
                f.write(str(memory_bytes))
        if cpu_millis is not None:
            with open(os.path.join(path, "cpu.max"), "w") as f:
                f.write(f"{max(1000, cpu_millis * CPU_PERIOD // 1000)} {CPU_PERIOD}")
        return path
    except OSError as exc:
        log.info("msg=cannot set up a cgroup, limits not enforced container=%s error=%s",
                 container_id, exc)
        return None


def oom_killed(path):
    """True if the kernel OOM-killed a process of the cgroup at ``path``."""
    try:
        with open(os.path.join(path, "memory.events")) as f:
            return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0
                       for line in f if line.strip())
    except (OSError, ValueError, IndexError):
        return False


def remove(path):
    try:
        os.rmdir(path)
    except OSError:
        pass
