"""Supervise the processes of a local cluster: start them detached, find them by pid, stop them.

Everything `steer up` starts lives under ``$STEER_HOME/cluster``:

    cluster.json     what was started: each process's command, pid and /proc start time
    pids/<name>.pid  the same pids, one file each, for humans and shell scripts
    logs/<name>.log  each process's stdout and stderr
    store/ agents/   the store's and the agents' data

A process is started in its own session (so it outlives `steer up` and a Ctrl-C
in its terminal), with stdin from /dev/null. It is stopped by its pid only:
SIGTERM, then SIGKILL after a deadline. A pid is only taken for ours if the
process still has the start time recorded with it, so a pid the kernel handed to
someone else since is never signalled.

The agents' containers are not started here but by the agents' process runtime,
which records each one under ``<agent data dir>/containers/<id>/pid`` (pid and
start time). `stop_containers` reads those records: a stopped agent leaves its
containers running (the next agent adopts them), so `steer down` ends them itself.
"""

import json
import os
import signal
import subprocess
import sys
import time

STATE_FILE = "cluster.json"


def proc_start_time(pid):
    """The process's start time in clock ticks since boot (None if it is gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def alive(pid, start=None):
    """Is ``pid`` running, and (if ``start`` is given) is it the process that started then?"""
    if not pid:
        return False
    now = proc_start_time(pid)
    return now is not None and (start is None or now == start)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_all_gone(pids, timeout):
    """Wait until none of ``{pid: start}`` runs; return those still running."""
    deadline = time.monotonic() + timeout
    while True:
        left = {pid: start for pid, start in pids.items() if alive(pid, start)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def terminate(pids, timeout=10.0, groups=False):
    """SIGTERM every ``{pid: start}``, SIGKILL whatever still runs after ``timeout``.

    With ``groups``, each pid leads its own process group (it was started in its
    own session) and the SIGKILL goes to the whole group, so helpers it forked
    (gunicorn's workers) go with it. Returns the pids that needed SIGKILL.
    """
    for pid, start in pids.items():
        if alive(pid, start):
            _signal(pid, signal.SIGTERM, group=False)
    left = wait_all_gone(pids, timeout)
    for pid in left:
        _signal(pid, signal.SIGKILL, group=groups)
    wait_all_gone(left, 5.0)
    if groups:
        # The leader is gone; anything left in its group was ours too.
        for pid in pids:
            if _group_alive(pid):
                _signal(pid, signal.SIGKILL, group=True)
    return sorted(left)


def _signal(pid, sig, group):
    try:
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def project_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_environment():
    """The environment of a child process: this checkout first on its path, unbuffered."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [project_root()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


class LocalCluster:
    """The record of one local cluster's processes under ``<home>/cluster``."""

    def __init__(self, home):
        self.home = os.path.abspath(home)
        self.dir = os.path.join(self.home, "cluster")
        self.logs_dir = os.path.join(self.dir, "logs")
        self.pids_dir = os.path.join(self.dir, "pids")
        self.state_path = os.path.join(self.dir, STATE_FILE)
        self.state = {"processes": {}}
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                self.state = json.load(f)
            self.state.setdefault("processes", {})

    # -- the record -------------------------------------------------------------------
    @property
    def exists(self):
        return os.path.exists(self.state_path)

    @property
    def processes(self):
        """name -> {"argv", "pid", "start", "log", "kind"} in start order."""
        return self.state["processes"]

    def save(self):
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.state_path)

    def log_path(self, name):
        return os.path.join(self.logs_dir, f"{name}.log")

    def is_running(self, name):
        proc = self.processes.get(name)
        return bool(proc) and alive(proc.get("pid"), proc.get("start"))

    def running(self):
        return [name for name in self.processes if self.is_running(name)]

    # -- starting ---------------------------------------------------------------------
    def start(self, name, argv, kind):
        """Start ``argv`` detached, logging to logs/<name>.log; record and return its pid."""
        os.makedirs(self.logs_dir, exist_ok=True)
        os.makedirs(self.pids_dir, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=child_environment(),
                                    cwd=self.dir,
                                    start_new_session=True)
        start = None
        deadline = time.monotonic() + 2.0
        while start is None and time.monotonic() < deadline and proc.poll() is None:
            start = proc_start_time(proc.pid)
        # Popen would reap it at garbage collection; forget it: the record is the pid.
        proc.returncode = 0
        self.processes[name] = {"argv": list(argv), "pid": proc.pid, "start": start,
                                "log": self.log_path(name), "kind": kind}
        with open(os.path.join(self.pids_dir, f"{name}.pid"), "w") as f:
            f.write(f"{proc.pid}\n")
        self.save()
        return proc.pid

    def restart(self, name):
        """Start a recorded process again with its recorded command."""
        proc = self.processes[name]
        return self.start(name, proc["argv"], proc["kind"])

    def log_tail(self, name, lines=30):
        try:
            with open(self.log_path(name), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- stopping ---------------------------------------------------------------------
    def stop(self, names, timeout=10.0):
        """Stop the named processes (those still ours); return {name: pid} that needed SIGKILL."""
        pids = {}
        for name in names:
            proc = self.processes.get(name)
            if proc and alive(proc["pid"], proc.get("start")):
                pids[proc["pid"]] = proc.get("start")
        killed = terminate(pids, timeout, groups=True)
        for name in names:
            if name in self.processes:
                self.processes[name]["pid"] = 0
            try:
                os.remove(os.path.join(self.pids_dir, f"{name}.pid"))
            except FileNotFoundError:
                pass
        self.save()
        self._reap()
        return killed

    @staticmethod
    def _reap():
        """Collect exit statuses of children of this process (when `steer up` fails)."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    # -- the agents' containers -------------------------------------------------------
    def agent_dirs(self):
        base = os.path.join(self.dir, "agents")
        if not os.path.isdir(base):
            return []
        return [os.path.join(base, d) for d in sorted(os.listdir(base))]

    def containers(self):
        """Every container the agents' process runtime recorded: [(state dir, pid, start)]."""
        found = []
        for agent_dir in self.agent_dirs():
            base = os.path.join(agent_dir, "containers")
            if not os.path.isdir(base):
                continue
            for cid in sorted(os.listdir(base)):
                state = os.path.join(base, cid)
                try:
                    with open(os.path.join(state, "pid")) as f:
                        info = json.load(f)
                except (OSError, ValueError):
                    continue
                found.append((state, info.get("pid"), info.get("start")))
        return found

    def running_containers(self):
        return [(state, pid, start) for state, pid, start in self.containers()
                if alive(pid, start)]

    def shims(self):
        """Pids of the runtime's shims still running for this cluster's containers.

        A shim is recognized by the ``--state <container dir>`` it was started with,
        as the process runtime itself recognizes the shims of an earlier agent.
        """
        markers = [os.path.join(d, "containers").encode() for d in self.agent_dirs()]
        if not markers:
            return {}
        pids = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"agent.runtime.shim" in argv and any(
                    arg.startswith(m) for arg in argv for m in markers):
                start = proc_start_time(int(entry))
                if start is not None:
                    pids[int(entry)] = start
        return pids

    def stop_containers(self, timeout=10.0):
        """End every container (its whole process group), then wait for their shims.

        Returns how many containers were running.
        """
        running = self.running_containers()
        for _, pid, _ in running:
            _signal(pid, signal.SIGTERM, group=True)     # it leads its own session
        left = wait_all_gone({pid: start for _, pid, start in running}, timeout)
        for pid in left:
            _signal(pid, signal.SIGKILL, group=True)
        wait_all_gone(left, 5.0)
        # A shim ends right after its container, writing the exit code; give it that
        # moment, then stop any that lingers.
        shims = self.shims()
        leftover = wait_all_gone(shims, 5.0)
        if leftover:
            terminate(leftover, 2.0)
        return len(running)


def python_module(module, *args):
    """The command that runs ``module`` with this very interpreter (a venv needs no PATH)."""
    return [sys.executable, "-m", module, *args]
