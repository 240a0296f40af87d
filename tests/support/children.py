"""Stop a child process the test started: by its pid, SIGTERM first, SIGKILL if it lingers."""

import os
import signal
import subprocess


def stop(proc, grace=15.0):
    """SIGTERM ``proc`` (a Popen) and wait ``grace`` seconds; then SIGKILL and reap it."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
