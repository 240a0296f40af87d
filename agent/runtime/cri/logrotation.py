"""Rotate the log files containerd writes for running containers, as kubelet's log manager.

containerd appends a container's output to the file at its log path and never
limits it. Every ``interval`` seconds (kubelet: 10 s) each running container of
this node whose file reached ``max_bytes`` gets it renamed, and CRI
ReopenContainerLog makes containerd start a fresh file under the old name.

Rotated files use the names agent/logs.py writes and reads for the process
runtime (``0.log.1`` newest, then ``0.log.2`` ...), with ``max_files`` files in
all, the live one included; the oldest go first. kubelet gzips older rotations
and names them by time; agent/logs.py reads neither, so ``kubectl logs`` through
the agent would lose them: they stay plain text and numbered here. A follower
(``kubectl logs -f``) finishes the renamed file, then moves to the new one.
"""

import logging
import os
import threading

from agent.runtime.cri import api_pb2
from agent.runtime.cri.client import CriError

log = logging.getLogger(__name__)

#: kubelet's containerLogMonitorInterval.
DEFAULT_INTERVAL = 10.0


def rotated_indexes(path):
    """The numbers n of the existing ``path.n`` files, lowest (newest) first."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return []
    prefix = base + "."
    return sorted(int(name[len(prefix):]) for name in names
                  if name.startswith(prefix) and name[len(prefix):].isdigit()
                  and int(name[len(prefix):]) > 0)


class ContainerLogRotator:
    """Rotate the logs of a CRI runtime's running containers that grew past a size.

    ``labels`` selects the containers this agent owns (labels.ours(node)); a
    negative ``max_bytes`` turns rotation off, as kubelet's does.
    """

    def __init__(self, client, max_bytes, max_files, labels=None):
        self.client, self.labels = client, dict(labels or {})
        self.max_bytes, self.max_files = max_bytes, max(1, int(max_files))
        self._lock = threading.Lock()

    @property
    def enabled(self):
        return self.max_bytes is not None and self.max_bytes >= 0

    def rotate_all(self):
        """One pass over the running containers; return the ids whose log was rotated."""
        if not self.enabled:
            return []
        rotated = []
        with self._lock:
            try:
                containers = self.client.list_containers(
                    label_selector=self.labels, state=api_pb2.CONTAINER_RUNNING)
            except CriError as exc:
                log.warning("msg=cannot list containers to rotate their logs error=%s", exc)
                return rotated
            for container in containers:
                try:
                    if self.rotate_if_needed(container.id):
                        rotated.append(container.id)
                except (CriError, OSError) as exc:
                    log.warning("container=%s msg=log rotation failed error=%s",
                                container.id[:12], exc)
        return rotated

    def rotate_if_needed(self, container_id):
        """Rotate one running container's log if it reached max_bytes; True if it did."""
        status = self.client.container_status(container_id).status
        if status.state != api_pb2.CONTAINER_RUNNING or not status.log_path:
            return False
        path = status.log_path
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            # Removed behind containerd's back: have it write a new file (kubelet does).
            self.client.reopen_container_log(container_id)
            return False
        if size < self.max_bytes:
            return False
        self._rotate(container_id, path)
        return True

    def _rotate(self, container_id, path):
        """Shift path.n -> path.n+1 (dropping what exceeds max_files), path -> path.1, reopen."""
        keep_rotated = self.max_files - 1        # the live file is one of max_files
        for index in reversed(rotated_indexes(path)):
            if index + 1 > max(keep_rotated, 1):
                os.remove(f"{path}.{index}")
            else:
                os.replace(f"{path}.{index}", f"{path}.{index + 1}")
        os.replace(path, f"{path}.1")
        try:
            self.client.reopen_container_log(container_id)
        except CriError:
            # Put it back so the next pass tries again and nothing is lost (kubelet too).
            os.replace(f"{path}.1", path)
            raise
        if keep_rotated < 1:
            os.remove(f"{path}.1")       # max_files 1: only the live file is kept
        log.info("container=%s path=%s msg=log rotated", container_id[:12], path)

    def run(self, stop, interval=DEFAULT_INTERVAL):
        """Rotate every ``interval`` seconds until ``stop`` (an Event) is set."""
        while not stop.wait(interval):
            try:
                self.rotate_all()
            except Exception as exc:        # keep rotating after a surprise
                log.warning("msg=log rotation pass failed error=%r", exc)
