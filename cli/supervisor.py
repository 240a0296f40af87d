"""Keep a local cluster's programs running: restart any that exits, with backoff.

`steer up` starts each program detached (cli/local_cluster.py), then starts this
supervisor (`python -m cli.supervisor --home HOME`), itself detached, which adopts
the recorded programs of the kinds it is given. A scheduler or controller manager
that loses its lease exits by design; here it comes back. The local cluster's job,
as supervisord's on bare metal.

- Restart delay: 1 s after the first exit, doubling to 30 s; a program that ran
  60 s or more before exiting starts again after 1 s.
- ``cluster/supervisor.json`` (0600) records the supervisor's pid and, per
  program, its pid, restarts, state and last exit (the code is only known for
  programs the supervisor started itself: an adopted one is not its child). A
  restarted program's pid also goes to ``cluster.json`` so every `steer` verb
  finds it.
- On SIGTERM (what `steer down` sends) it stops every program it supervises,
  SIGTERM then SIGKILL after a grace, and exits.
"""

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass

from cli import certrenewal
from cli.local_cluster import (
    LocalCluster,
    alive,
    child_environment,
    proc_start_time,
    python_module,
    terminate,
)

STATE_FILE = "supervisor.json"
#: Kinds the supervisor restarts but does not stop when it stops (see stop_all).
LEFT_FOR_STEER_DOWN = ("containerd", "addon")
LOG_NAME = "supervisor"
FIRST_DELAY, MAX_DELAY, STEADY_SECONDS = 1.0, 30.0, 60.0
#: The kinds `steer up` supervises: every component it starts.
DEFAULT_KINDS = ("store", "apiserver", "scheduler", "controller-manager", "agent", "proxy",
                 "containerd", "addon")

log = logging.getLogger("steer.supervisor")


@dataclass
class Program:
    """What the supervisor knows of one program."""

    name: str
    kind: str
    argv: list
    log: str
    pid: int = 0
    start: int = None
    state: str = "running"          # running | backoff | stopped
    restarts: int = 0
    last_exit: str = ""
    last_exit_at: float = 0.0
    started_at: float = 0.0
    delay: float = 0.0
    next_start: float = 0.0


def spawn(argv, log_path, cwd):
    """Start ``argv`` in its own session, appending to ``log_path``; return the Popen."""
    with open(log_path, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=child_environment(), cwd=cwd,
                                start_new_session=True)


def describe_exit(code):
    if code is None:
        return "exited (not a child of the supervisor: code unknown)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Watch programs by pid; restart exited ones after their backoff delay."""

    def __init__(self, home, kinds=DEFAULT_KINDS, clock=time.monotonic, wall=time.time,
                 spawn=spawn, alive=alive, start_time=proc_start_time):
        self.home = home
        self.cluster = LocalCluster(home)
        self.kinds = tuple(kinds)
        self.clock, self.wall = clock, wall
        self._spawn, self._alive, self._start_time = spawn, alive, start_time
        self.state_path = os.path.join(self.cluster.dir, STATE_FILE)
        self.children = {}              # name -> Popen of the programs started here
        now = clock()
        self.programs = {
            name: Program(name, proc["kind"], list(proc["argv"]), proc["log"],
                          proc.get("pid") or 0, proc.get("start"), started_at=now)
            for name, proc in self.cluster.processes.items() if proc["kind"] in self.kinds}
        for program in self.programs.values():
            if not self._alive(program.pid, program.start):
                self._exited(program, None, now)

    # -- one pass ---------------------------------------------------------------------
    def step(self):
        """Notice exits, start programs whose delay is over; return whether anything changed."""
        now, changed = self.clock(), False
        for program in self.programs.values():
            if program.state == "running" and not self._running(program):
                self._exited(program, self._exit_code(program), now)
                changed = True
            elif program.state == "backoff" and now >= program.next_start:
                self._restart(program, now)
                changed = True
        return changed

    def _running(self, program):
        child = self.children.get(program.name)
        if child is not None and child.poll() is not None:
            return False
        return self._alive(program.pid, program.start)

    def _exit_code(self, program):
        child = self.children.pop(program.name, None)
        if child is None:
            return None
        try:
            return child.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return None

    def _exited(self, program, code, now):
        up = now - program.started_at
        if up >= STEADY_SECONDS or not program.delay:
            program.delay = FIRST_DELAY
        else:
            program.delay = min(MAX_DELAY, program.delay * 2)
        program.state, program.pid, program.start = "backoff", 0, None
        program.last_exit, program.last_exit_at = describe_exit(code), self.wall()
        program.next_start = now + program.delay
        log.warning("event=program_exited name=%s how=%r up_seconds=%.1f restart_in=%g",
                    program.name, program.last_exit, up, program.delay)

    def _restart(self, program, now):
        try:
            child = self._spawn(program.argv, program.log, self.cluster.dir)
        except OSError as exc:
            program.last_exit = f"could not start: {exc}"
            program.delay = min(MAX_DELAY, program.delay * 2)
            program.next_start = now + program.delay
            log.error("event=start_failed name=%s error=%r", program.name, str(exc))
            return
        self.children[program.name] = child
        start = None
        deadline = time.monotonic() + 2.0
        while start is None and time.monotonic() < deadline and child.poll() is None:
            start = self._start_time(child.pid)
        program.pid, program.start, program.state = child.pid, start, "running"
        program.started_at, program.restarts = now, program.restarts + 1
        log.info("event=program_restarted name=%s pid=%d restarts=%d",
                 program.name, child.pid, program.restarts)
        self._record_in_cluster(program)

    def _record_in_cluster(self, program):
        """Put the new pid in cluster.json (read afresh: `steer` may have written it)."""
        cluster = LocalCluster(self.home)
        proc = cluster.processes.get(program.name)
        if proc is None:
            return
        proc.update(pid=program.pid, start=program.start)
        cluster.save()
        os.makedirs(cluster.pids_dir, exist_ok=True)
        with open(os.path.join(cluster.pids_dir, f"{program.name}.pid"), "w") as f:
            f.write(f"{program.pid}\n")

    # -- the record -------------------------------------------------------------------
    def save(self):
        state = {"pid": os.getpid(), "start": self._start_time(os.getpid()),
                 "kinds": list(self.kinds),
                 "programs": {n: {k: v for k, v in asdict(p).items()
                                  if k not in ("argv", "log", "delay", "next_start",
                                               "started_at")}
                              for n, p in self.programs.items()}}
        write_private_json(self.state_path, state)

    # -- the end ----------------------------------------------------------------------
    def stop_all(self, grace):
        """Stop every supervised program: the store last (the rest need it to stop cleanly).

        containerd and the addons are left running: `steer down` removes the pods
        through CRI first, then stops them (cli/local_containers.py); a containerd
        stopped first would leave its shims and containers to be killed instead.
        """
        programs = [p for p in self.programs.values() if p.kind not in LEFT_FOR_STEER_DOWN]
        order = [[p for p in programs if p.kind != "store"],
                 [p for p in programs if p.kind == "store"]]
        for programs in order:
            pids = {p.pid: p.start for p in programs if p.pid and self._alive(p.pid, p.start)}
            killed = terminate(pids, grace, groups=True)
            for program in programs:
                if program.pid:
                    log.info("event=program_stopped name=%s pid=%d sigkill=%s", program.name,
                             program.pid, program.pid in killed)
                program.state, program.pid, program.start = "stopped", 0, None
        for child in self.children.values():
            try:
                child.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.children.clear()

    def run(self, stop, interval=0.5, grace=10.0):
        """Supervise until ``stop`` (a threading.Event) is set; then stop everything."""
        self.save()
        while not stop.is_set():
            if self.step():
                self.save()
            stop.wait(interval)
        self.stop_all(grace)
        self.save()


def write_private_json(path, data):
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


# -- used by `steer up/down/status` ----------------------------------------------------
def read_state(cluster):
    """The supervisor's record ({} if none)."""
    try:
        with open(os.path.join(cluster.dir, STATE_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def running_pid(cluster):
    """The supervisor's pid if it runs, else None."""
    state = read_state(cluster)
    pid = state.get("pid")
    return pid if pid and alive(pid, state.get("start")) else None


def supervised(cluster, names):
    """Those of ``names`` a running supervisor restarts by itself."""
    if not running_pid(cluster):
        return []
    kinds = set(read_state(cluster).get("kinds", ()))
    return [n for n in names if cluster.processes.get(n, {}).get("kind") in kinds]


def start(cluster, kinds=DEFAULT_KINDS, grace=10.0, timeout=10.0):
    """Start the supervisor of ``cluster`` (unless it runs); return its pid."""
    pid = running_pid(cluster)
    if pid:
        return pid
    try:
        os.remove(os.path.join(cluster.dir, STATE_FILE))
    except FileNotFoundError:
        pass
    os.makedirs(cluster.logs_dir, exist_ok=True)
    argv = python_module("cli.supervisor", "--home", cluster.home, "--kinds", ",".join(kinds),
                         "--grace", f"{grace:g}")
    proc = spawn(argv, cluster.log_path(LOG_NAME), cluster.dir)
    proc.returncode = 0         # detached: the state file, not Popen, tracks it
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running_pid(cluster) == proc.pid:
            os.makedirs(cluster.pids_dir, exist_ok=True)
            with open(os.path.join(cluster.pids_dir, f"{LOG_NAME}.pid"), "w") as f:
                f.write(f"{proc.pid}\n")
            return proc.pid
        time.sleep(0.05)
    raise RuntimeError(f"the supervisor did not start; see {cluster.log_path(LOG_NAME)}")


def stop(cluster, timeout=10.0):
    """Stop the supervisor, which stops its programs first; return its pid (None: none ran)."""
    state = read_state(cluster)
    pid = running_pid(cluster)
    if pid:
        # Its programs get ``grace`` seconds each tier; allow for both tiers and more.
        terminate({pid: state.get("start")}, 2 * timeout + 10.0)
    try:
        os.remove(os.path.join(cluster.pids_dir, f"{LOG_NAME}.pid"))
    except FileNotFoundError:
        pass
    return pid


def main(argv=None):
    p = argparse.ArgumentParser(prog="steer-supervisor",
                                description="Restart a local cluster's programs that exit.")
    p.add_argument("--home", required=True, help="the cluster's STEER_HOME")
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                   help="comma-separated kinds of programs to supervise")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds between SIGTERM and SIGKILL when stopping")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between checks")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    stop_event = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    supervisor = Supervisor(args.home, [k for k in args.kinds.split(",") if k])
    log.info("event=supervising programs=%s", ",".join(supervisor.programs))
    # Certificates are re-issued before they expire (cli/certrenewal.py).
    threading.Thread(target=certrenewal.Renewer(args.home).run, args=(stop_event,),
                     name="certificate-renewal", daemon=True).start()
    supervisor.run(stop_event, args.interval, args.grace)
    log.info("event=stopped")


if __name__ == "__main__":
    main()
