"""The process runtime: each container is a host process in its own process group.

No image and no isolation: a container's command runs on the host (host network,
so the pod's IP is the node's), in the directory the pod worker laid out, through
a shim (shim.py) that keeps its logs and exit code and outlives the agent. What
the runtime knows about an attempt is on disk under ``<data dir>/containers/<id>``:
config.json (written at start), pid (pid and its /proc start time, written by the
shim) and exit (code and time). Re-adoption after an agent restart checks that
the pid still runs *and* started when recorded, so a reused pid is never taken
for the container.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid

from agent import logs, paths
from agent.runtime import cgroups, procstats
from agent.runtime.base import ContainerStats, Record, Runtime, RuntimeError_
from agent.runtime.shim import proc_start_time, write_atomically

log = logging.getLogger(__name__)

#: Environment a container gets from the host (it has no image to bring its own).
HOST_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")
PID_WAIT = 10.0


class ProcessRuntime(Runtime):
    scheme = "process"
    host_network = True

    def __init__(self, data_dir, log_max_bytes=logs.DEFAULT_MAX_BYTES,
                 log_max_files=logs.DEFAULT_MAX_FILES):
        self.dir = os.path.join(data_dir, "containers")
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.log_max_bytes, self.log_max_files = log_max_bytes, log_max_files
        self._shims = {}        # container id -> Popen of its shim (to reap it)

    def _state(self, container_id, name=""):
        # Ids come back from disk and from callers: each must name one entry of our dir.
        return os.path.join(self.dir, paths.check_container_id(container_id), name)

    def start(self, config):
        argv = list(config.command)
        env = {k: os.environ[k] for k in HOST_ENV if k in os.environ}
        env.update(config.env)
        program = argv[0]
        if "/" in program:
            found = os.path.join(config.workdir, program) if not os.path.isabs(program) \
                else program
            found = found if os.access(found, os.X_OK) else None
        else:
            found = shutil.which(program, path=env.get("PATH", os.defpath))
        if not found:
            raise RuntimeError_(f'exec: "{program}": executable file not found in $PATH')
        container_id = uuid.uuid4().hex[:16]
        state = self._state(container_id)
        os.makedirs(state, mode=0o700)
        cgroup = cgroups.create(container_id, config.memory_limit, config.cpu_limit_millis)
        meta = {"pod_uid": config.pod_uid, "name": config.name, "attempt": config.attempt,
                "init": config.init, "log_path": config.log_path, "command": argv,
                "env": env, "workdir": config.workdir, "cgroup": cgroup,
                "created_at": time.time()}
        # Created 0600 (write_atomically): the environment may hold secrets.
        write_atomically(self._state(container_id, "config.json"), json.dumps(meta))
        shim_log = os.fdopen(os.open(self._state(container_id, "shim.log"),
                                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        command = [sys.executable, "-m", "agent.runtime.shim", "--state", state,
                   "--log", config.log_path, "--max-bytes", str(self.log_max_bytes),
                   "--max-files", str(self.log_max_files)]
        if cgroup:
            command += ["--cgroup", cgroup]
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        shim_env = {**os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [root,
                                                                os.environ.get("PYTHONPATH")]))}
        try:
            self._shims[container_id] = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=shim_log, stderr=subprocess.STDOUT,
                start_new_session=True, env=shim_env, cwd="/")
        finally:
            shim_log.close()
        deadline = time.monotonic() + PID_WAIT
        while time.monotonic() < deadline:
            record = self.inspect(container_id)
            if record.pid is not None or not record.running:
                return record
            time.sleep(0.01)
        raise RuntimeError_(f"container {config.name} did not start within {PID_WAIT:g}s")

    def _read(self, container_id, name):
        try:
            with open(self._state(container_id, name)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def inspect(self, container_id):
        meta = self._read(container_id, "config.json")
        if meta is None:
            return None
        shim = self._shims.get(container_id)
        if shim is not None and shim.poll() is not None:
            self._shims.pop(container_id, None)         # reaped
        pid_info = self._read(container_id, "pid") or {}
        exit_info = self._read(container_id, "exit")
        record = Record(container_id, meta["pod_uid"], meta["name"], meta["attempt"],
                        pid=pid_info.get("pid"), started_at=pid_info.get("started_at") or
                        meta["created_at"], init=meta.get("init", False),
                        log_path=meta.get("log_path", ""))
        if exit_info is not None:
            record.exit_code, record.finished_at = exit_info["code"], exit_info["finished_at"]
            record.reason = exit_info.get("reason") or self._reason(meta, record.exit_code)
        elif pid_info and not self._alive(pid_info) and not self._shim_alive(container_id):
            # Shim and container gone without an exit file (the machine rebooted, or both
            # were killed): the attempt is over, with an unknown code.
            record.exit_code, record.finished_at, record.reason = 137, time.time(), "Error"
            write_atomically(self._state(container_id, "exit"),
                             json.dumps({"code": 137, "finished_at": record.finished_at}))
        elif not pid_info and time.time() - meta["created_at"] > PID_WAIT and \
                not self._shim_alive(container_id):
            record.exit_code, record.finished_at, record.reason = 128, time.time(), "StartError"
        return record

    @staticmethod
    def _reason(meta, code):
        if meta.get("cgroup") and cgroups.oom_killed(meta["cgroup"]):
            return "OOMKilled"
        return "Completed" if code == 0 else "Error"

    @staticmethod
    def _alive(pid_info):
        pid = pid_info.get("pid")
        return pid is not None and proc_start_time(pid) == pid_info.get("start")

    def _shim_alive(self, container_id):
        shim = self._shims.get(container_id)
        if shim is not None:
            return shim.poll() is None
        # Not our child (started by an earlier agent): look for it by its state argument.
        marker = self._state(container_id).encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as f:
                        if marker in f.read():
                            return True
                except OSError:
                    continue
        return False

    def list(self):
        records = []
        for container_id in sorted(os.listdir(self.dir)):
            if os.path.islink(os.path.join(self.dir, container_id)):
                continue
            record = self.inspect(container_id)
            if record is not None:
                records.append(record)
        return records

    def signal(self, container_id, sig, grace=None):
        pid_info = self._read(container_id, "pid")
        if not pid_info or self._read(container_id, "exit") is not None or \
                not self._alive(pid_info):
            return
        try:
            os.killpg(pid_info["pid"], sig)     # the container's group: it leads its session
        except ProcessLookupError:
            pass

    def exec(self, container_id, command, timeout):
        meta = self._read(container_id, "config.json")
        if meta is None:
            return 1, "no such container"
        try:
            done = subprocess.run(command, cwd=meta["workdir"], env=meta["env"],
                                  stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return 1, f"command timed out after {timeout}s"
        except OSError as exc:
            return 126, str(exc)
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")

    def remove(self, container_id):
        meta = self._read(container_id, "config.json") or {}
        if meta.get("cgroup"):
            cgroups.remove(meta["cgroup"])
        self._shims.pop(container_id, None)
        state = self._state(container_id)
        if os.path.islink(state.rstrip("/")):
            os.unlink(state.rstrip("/"))
        else:
            shutil.rmtree(state, ignore_errors=True)

    def stats(self):
        """Usage of each running container: its cgroup's counters, else its process group's."""
        found, groups = [], None
        for container_id in sorted(os.listdir(self.dir)):
            meta, pid_info = self._read(container_id, "config.json"), self._read(container_id,
                                                                                 "pid")
            if not meta or not pid_info or self._read(container_id, "exit") is not None or \
                    not self._alive(pid_info):
                continue
            usage = procstats.cgroup_usage(meta["cgroup"]) if meta.get("cgroup") else None
            if usage is None:
                groups = procstats.group_usage() if groups is None else groups
                usage = groups.get(pid_info["pid"], (0, 0))
            found.append(ContainerStats(meta["pod_uid"], "", "", meta["name"], usage[0],
                                        usage[1], time.time()))
        return found

    def close(self):
        """Reap shims that already ended; running ones are left to run."""
        for shim in list(self._shims.values()):
            shim.poll()
