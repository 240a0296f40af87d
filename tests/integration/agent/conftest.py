"""Fixtures for the agent's integration tests: a real store, API server and steer-agent.

Every agent's port serves TLS with a certificate for its node from the server's CA
(``LocalApiServer.agent_tls_args``) and takes only that CA's client certificates; the
server reaches it with its kubelet client certificate (tests/support/apiproc.py).
"""

import glob
import json
import os
import signal
import subprocess
import sys

import pytest

from cli.cluster_cmd import remove_agent_tmpfs
from control.client import NotFound
from control.objects import kinds
from tests.support.apiproc import ROOT, eventually


def pod_gone(rest, name):
    """Whether the pod ``name`` of the default namespace no longer exists."""
    try:
        rest.get(kinds.PODS, "default", name)
        return False
    except NotFound:
        return True


class AgentProcess:
    """A real ``steer-agent`` (process runtime) on a free port; restartable, killable."""

    def __init__(self, server, base_dir, node_name="agent-1", extra_args=()):
        self.server, self.base_dir, self.node_name = server, str(base_dir), node_name
        self.extra_args = list(extra_args)
        self.data_dir = os.path.join(self.base_dir, "data")
        self.tls_args = server.agent_tls_args(node_name)      # its port's certificate
        self.log_path = os.path.join(self.base_dir, "agent.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.main", "--kubeconfig", self.kubeconfig(),
                 "--node-name", self.node_name, "--node-ip", "127.0.0.1", "--port", "0",
                 "--runtime", "process", "--data-dir", self.data_dir,
                 *self.tls_args,
                 "--heartbeat-interval", "1",
                 "--backoff-base", "0.2", "--backoff-max", "1", "--sync-period", "0.2",
                 "--log-level", "DEBUG", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": ROOT})
        return self

    def kubeconfig(self):
        """The agent's kubeconfig: a client certificate CN=system:node:<name>, O=system:nodes."""
        return self.server.kubeconfig_for(f"node-{self.node_name}",
                                          f"system:node:{self.node_name}", ["system:nodes"])

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        # The pods' secrets it kept on tmpfs (/dev/shm), which outlive the test's tmp dir.
        remove_agent_tmpfs(os.path.join(self.data_dir, "tmpfs-dir"))

    def containers(self, pod_uid=None):
        """(config, pid info) of every container attempt the agent's runtime recorded."""
        found = []
        for state in sorted(glob.glob(os.path.join(self.data_dir, "containers", "*"))):
            try:
                with open(os.path.join(state, "config.json")) as f:
                    config = json.load(f)
                with open(os.path.join(state, "pid")) as f:
                    pid = json.load(f)
            except (OSError, ValueError):
                continue
            if pod_uid is None or config["pod_uid"] == pod_uid:
                found.append((config, pid))
        return found

    def kill_containers(self):
        """Kill every container process group this agent started (test cleanup)."""
        for _, pid in self.containers():
            try:
                os.killpg(pid["pid"], signal.SIGKILL)
            except OSError:
                pass

    def logs(self):
        with open(self.log_path, errors="replace") as f:
            return f"--- agent ---\n{f.read()[-15000:]}"


@pytest.fixture(scope="module")
def agent(server, tmp_path_factory):
    proc = AgentProcess(server, tmp_path_factory.mktemp("agent"))
    try:
        proc.start()
        rest = server.rest_client()

        def registered():
            try:
                node = rest.get(kinds.NODES, None, proc.node_name)
            except Exception:
                return None
            port = ((node.get("status") or {}).get("daemonEndpoints") or {}) \
                .get("kubeletEndpoint", {}).get("Port")
            return port and node
        eventually(registered, timeout=60, message="node registered", logs=proc.logs)
        yield proc
    finally:
        proc.stop()
        proc.kill_containers()
