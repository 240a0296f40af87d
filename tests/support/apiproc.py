"""Run a real store cluster and a real `steer-apiserver` for API integration tests.

``LocalApiServer`` starts both on free loopback ports, writes a kubeconfig that
points kubectl (and the official Python client) at the server, and stops every
process it started, by pid.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from cli.local_store import LocalStoreCluster, free_ports
from tests.support.kubectl import run_kubectl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAFT_ARGS = ["--election-min", "1.0", "--election-max", "2.0"]


class LocalApiServer:
    """A 3-node store and one API server (gunicorn, one worker) in ``base_dir``."""

    def __init__(self, base_dir, store_nodes=3, workers=1, threads=16, store=None,
                 extra_args=()):
        self.base_dir = str(base_dir)
        os.makedirs(self.base_dir, exist_ok=True)
        # A second server can share the first one's store (``store=first.store``).
        self.owns_store = store is None
        self.store = store or LocalStoreCluster(store_nodes, os.path.join(self.base_dir, "store"),
                                                extra_args=RAFT_ARGS)
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        self.extra_args = list(extra_args)     # more steer-apiserver flags
        self.kubeconfig = os.path.join(self.base_dir, "kubeconfig")
        self.log_path = os.path.join(self.base_dir, "apiserver.log")
        self.proc = None

    def start(self, timeout=60):
        if self.owns_store:
            self.store.start_all()
            self.store.wait_ready(timeout)
        env = {**os.environ, "PYTHONPATH": ROOT}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "control.api.server", "--bind", f"127.0.0.1:{self.port}",
                 "--store-endpoints", ",".join(self.store.endpoints),
                 "--workers", str(self.workers), "--threads", str(self.threads),
                 *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=2)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"steer-apiserver did not become ready:\n{self.logs()}") from None
                time.sleep(0.1)
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: steersman, cluster: {{server: "{self.url}"}}}}]
users: [{{name: dev, user: {{token: dev-token}}}}]
contexts: [{{name: steersman, context: {{cluster: steersman, user: dev}}}}]
current-context: steersman
""")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.owns_store:
            self.store.stop_all()

    def steer_argv(self, *args):
        """The command line of `steer ARGS` against this server (for Popen)."""
        return [sys.executable, "-m", "cli.main", "--server", self.url, *args]

    def steer(self, *args, input=None, timeout=60, check=True):
        """Run `steer ARGS` against this server; return the CompletedProcess (text)."""
        result = subprocess.run(self.steer_argv(*args), input=input, capture_output=True,
                                text=True, timeout=timeout, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": ROOT})
        if check and result.returncode != 0:
            raise AssertionError(f"steer {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args, input=None, timeout=60, check=True):
        """Run the real kubectl against this server (kubectl-marked tests only)."""
        return run_kubectl(self.kubeconfig, *args, input=input, timeout=timeout, check=check)

    def logs(self):
        text = ""
        if os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                text = f.read()[-20000:]
        return f"--- apiserver ---\n{text}\n{self.store.logs()}"


class ComponentProcesses:
    """Run copies of a control-plane process (scheduler, controller manager) by identity.

    Each copy gets short leader-election timings so handover tests stay quick,
    logs to ``<base_dir>/<identity>.log``, and is stopped or killed by its pid.
    """

    def __init__(self, server, base_dir, module, extra_args=()):
        self.server, self.base_dir, self.module = server, str(base_dir), module
        self.extra_args = list(extra_args)
        self.procs = {}

    def start(self, identity):
        with open(os.path.join(self.base_dir, f"{identity}.log"), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--api-server", self.server.url,
                 "--identity", identity, "--lease-duration", "3", "--renew-deadline", "2",
                 "--retry-period", "0.5", "--log-level", "DEBUG", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": ROOT})
        self.procs[identity] = proc
        return proc

    def kill(self, identity):
        proc = self.procs[identity]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()

    def logs(self):
        text = []
        for identity in self.procs:
            with open(os.path.join(self.base_dir, f"{identity}.log"), errors="replace") as f:
                text.append(f"--- {identity} ---\n{f.read()[-8000:]}")
        return "\n".join(text)


def eventually(predicate, timeout=30.0, message="condition", logs=None):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}\n{logs() if logs else ''}")
        time.sleep(0.05)
