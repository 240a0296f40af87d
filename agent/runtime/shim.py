"""Run one container process and outlive the agent: ``python -m agent.runtime.shim``.

As conmon does for CRI-O: the shim starts the container's command in its own
session (so a signal to the container's process group never reaches the shim),
copies its stdout and stderr into the CRI log with timestamps and rotation,
writes the container's pid and start time, and when the command exits kills what
is left of its process group (a container's death ends all its processes, as a
PID namespace would) and writes the exit code. The agent can die and return
meanwhile: the files under the state directory are all it needs.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

from agent.logs import LogWriter

#: The umask a container starts with, as container runtimes give it.
CONTAINER_UMASK = 0o022


def proc_start_time(pid):
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[19])


def write_atomically(path, text):
    """Replace ``path`` with ``text`` through a temporary file created 0600."""
    tmp = f"{path}.tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _pump(pipe, stream, writer):
    for line in iter(pipe.readline, b""):
        writer.write(stream, line.rstrip(b"\n"))
    pipe.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--state", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--max-bytes", type=int, required=True)
    p.add_argument("--max-files", type=int, required=True)
    p.add_argument("--cgroup")
    args = p.parse_args(argv)
    # The agent's signals are not ours: we end when the container does.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(os.path.join(args.state, "config.json")) as f:
        config = json.load(f)
    writer = LogWriter(args.log, args.max_bytes, args.max_files)

    def prepare_child():
        # Ignored signals stay ignored across exec: give the container the defaults back.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # The agent's private umask is not the container's: a runtime gives it 022.
        os.umask(CONTAINER_UMASK)
        if args.cgroup:
            with open(os.path.join(args.cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
    try:
        child = subprocess.Popen(config["command"], cwd=config["workdir"], env=config["env"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True,
                                 preexec_fn=prepare_child)
    except OSError as exc:
        writer.write("stderr", f"cannot start {config['command'][0]}: {exc}".encode())
        write_atomically(os.path.join(args.state, "exit"),
                         json.dumps({"code": 128, "finished_at": time.time(),
                                     "reason": "StartError"}))
        return 0
    write_atomically(os.path.join(args.state, "pid"),
                     json.dumps({"pid": child.pid, "start": proc_start_time(child.pid),
                                 "started_at": time.time()}))
    pumps = [threading.Thread(target=_pump, args=(pipe, name, writer), daemon=True)
             for pipe, name in ((child.stdout, "stdout"), (child.stderr, "stderr"))]
    for pump in pumps:
        pump.start()
    code = child.wait()
    finished = time.time()
    try:
        os.killpg(child.pid, signal.SIGKILL)    # what the container left behind goes too
    except OSError:
        pass
    for pump in pumps:
        pump.join(2)
    write_atomically(os.path.join(args.state, "exit"),
                     json.dumps({"code": 128 - code if code < 0 else code,
                                 "finished_at": finished}))
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
