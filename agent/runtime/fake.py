"""A runtime that pretends: containers "run" until signalled or told to exit.

Used by unit tests (with a fake clock) and by scale tests where many agents share
one process, as kubemark's hollow kubelets do. Nothing is forked; an exec probe
answers from ``exec_results``; ``exit`` ends an attempt as a crash would.
"""

import itertools
import signal
import threading
import time

from agent.runtime.base import ContainerStats, Record, Runtime, RuntimeError_

#: What a fake container uses: 1 millicore (cpu ns per second) and 4 MiB.
FAKE_CPU_NS_PER_SECOND = 1_000_000
FAKE_MEMORY_BYTES = 4 * 2**20


class FakeRuntime(Runtime):
    scheme = "fake"

    def __init__(self, clock=None):
        self.clock = clock or time.time
        self._records = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        #: container name -> exit code that exec probes return (0 when absent).
        self.exec_results = {}
        #: commands whose start fails (their first word), to test start errors.
        self.failing_commands = set()
        #: name -> exit code: an attempt of that container exits at once with it.
        self.exit_at_start = {}
        self.started = []           # ContainerConfigs, in start order
        self.signals = []           # (container_id, signal), in order

    def start(self, config):
        if config.command and config.command[0] in self.failing_commands:
            raise RuntimeError_(f'exec: "{config.command[0]}": executable file not found')
        with self._lock:
            cid = f"{next(self._ids):012x}"
            now = self.clock()
            record = Record(cid, config.pod_uid, config.name, config.attempt, pid=None,
                            started_at=now, init=config.init, log_path=config.log_path)
            if config.name in self.exit_at_start:
                _finish(record, self.exit_at_start[config.name], now)
            self._records[cid] = record
            self.started.append(config)
            return _copy(record)

    def inspect(self, container_id):
        with self._lock:
            record = self._records.get(container_id)
            return _copy(record) if record else None

    def list(self):
        with self._lock:
            return [_copy(r) for r in self._records.values()]

    def signal(self, container_id, sig, grace=None):
        with self._lock:
            self.signals.append((container_id, sig))
            record = self._records.get(container_id)
            # A fake process honours SIGTERM and SIGKILL at once.
            if record and record.running and sig in (signal.SIGTERM, signal.SIGKILL):
                _finish(record, 128 + int(sig), self.clock())

    def exec(self, container_id, command, timeout):
        record = self.inspect(container_id)
        code = self.exec_results.get(record.name if record else None, 0)
        return code, ""

    def remove(self, container_id):
        with self._lock:
            self._records.pop(container_id, None)

    def stats(self):
        """Small fixed usage for every running attempt: 1 millicore and 4 MiB each."""
        now = self.clock()
        return [ContainerStats(r.pod_uid, "", "", r.name,
                               int((now - r.started_at) * FAKE_CPU_NS_PER_SECOND),
                               FAKE_MEMORY_BYTES, now) for r in self.running()]

    # -- test controls ------------------------------------------------------------
    def exit(self, pod_uid, name, code):
        """End the running attempt of container ``name`` with ``code``."""
        with self._lock:
            for record in self._records.values():
                if record.pod_uid == pod_uid and record.name == name and record.running:
                    _finish(record, code, self.clock())
                    return
        raise KeyError(f"no running container {name} in pod {pod_uid}")

    def running(self, pod_uid=None):
        with self._lock:
            return [_copy(r) for r in self._records.values()
                    if r.running and (pod_uid is None or r.pod_uid == pod_uid)]


def _finish(record, code, now):
    record.exit_code, record.finished_at = code, now
    record.reason = "Completed" if code == 0 else "Error"


def _copy(record):
    return Record(**record.__dict__)
