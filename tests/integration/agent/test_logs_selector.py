"""`steer logs -l` across pods (prefixes, follow picking up new pods), `-p` after a
restart and size rotation, on a real API server and a process-runtime agent.

The agent rotates at 4 KiB with 3 files kept, so rotation happens within a test.
"""

import os
import subprocess
import threading

import pytest

from control.objects.kinds import NODES, PODS
from tests.integration.agent.conftest import AgentProcess, pod_gone
from tests.support import children
from tests.support.apiproc import ROOT, eventually

MAX_BYTES, MAX_FILES = 4096, 3


@pytest.fixture(scope="module")
def agent(server, tmp_path_factory):
    proc = AgentProcess(server, tmp_path_factory.mktemp("agent"), extra_args=[
        "--container-log-max-size", str(MAX_BYTES), "--container-log-max-files", str(MAX_FILES)])
    try:
        proc.start()
        rest = server.rest_client()
        eventually(lambda: _node_port(rest, proc.node_name), timeout=60,
                   message="node registered", logs=proc.logs)
        yield proc
    finally:
        proc.stop()
        proc.kill_containers()


def _node_port(rest, name):
    try:
        node = rest.get(NODES, None, name)
    except Exception:
        return None
    return ((node.get("status") or {}).get("daemonEndpoints") or {}) \
        .get("kubeletEndpoint", {}).get("Port")


def _pod(name, node, script, containers=("main",), app="web"):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": c, "image": "none",
                                     "command": ["sh", "-c", script.replace("@", c)]}
                                    for c in containers]}}


def _running(rest, name, restarts=0):
    pod = rest.get(PODS, "default", name)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses and all("running" in s.get("state", {}) and
                            s.get("restartCount", 0) >= restarts for s in statuses)


class Follower:
    """`steer logs ... -f` in the background, its output lines collected."""

    def __init__(self, server, *args):
        self.lines, self.proc = [], subprocess.Popen(
            server.steer_argv("logs", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def has(self, line):
        return line in self.lines

    def stop(self):
        children.stop(self.proc, grace=5)
        self.thread.join(5)


@pytest.fixture(scope="module")
def web(agent, rest):
    """web-a (one container) and web-b (two), each printing a line per container."""
    rest.create(PODS, "default", _pod("web-a", agent.node_name, "echo hi from a/@; sleep 1000"))
    rest.create(PODS, "default", _pod("web-b", agent.node_name, "echo hi from b/@; sleep 1000",
                                      containers=("main", "side")))
    rest.create(PODS, "default", _pod("other", agent.node_name, "echo other; sleep 1000",
                                      app="db"))
    for name in ("web-a", "web-b", "other"):
        eventually(lambda name=name: _running(rest, name), timeout=60,
                   message=f"{name} running", logs=agent.logs)
    return ["web-a", "web-b"]


def test_selector_prefixes_every_pods_lines(server, agent, web):
    def output():
        return server.steer("logs", "-l", "app=web", check=False).stdout.splitlines()
    lines = eventually(lambda: len(output()) == 2 and output(), timeout=30,
                       message="both pods' lines", logs=agent.logs)
    assert lines == ["[pod/web-a/main] hi from a/main", "[pod/web-b/main] hi from b/main"]
    every = server.steer("logs", "-l", "app=web", "--all-containers").stdout.splitlines()
    assert every == ["[pod/web-a/main] hi from a/main", "[pod/web-b/main] hi from b/main",
                     "[pod/web-b/side] hi from b/side"]
    side = server.steer("logs", "-l", "app=web", "-c", "side", check=False)
    assert side.returncode == 1 and "container side is not valid for pod web-a" in side.stderr
    plain = server.steer("logs", "pod/web-b", "--all-containers").stdout.splitlines()
    assert plain == ["hi from b/main", "hi from b/side"]       # kubectl: no prefix by default


def test_following_more_streams_than_allowed_is_refused(server, web):
    result = server.steer("logs", "-l", "app=web", "-f", "--max-log-requests", "1",
                          check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert ("you are attempting to follow 2 log streams, but maximum allowed concurrency is 1, "
            "use --max-log-requests to increase the limit") in result.stderr


def test_follow_picks_up_new_pods_and_drops_deleted_ones(server, agent, rest, web):
    follower = Follower(server, "-l", "app=web", "-f")
    try:
        eventually(lambda: follower.has("[pod/web-a/main] hi from a/main") and
                   follower.has("[pod/web-b/main] hi from b/main"), timeout=30,
                   message="the running pods' lines", logs=agent.logs)
        rest.create(PODS, "default", _pod(
            "web-c", agent.node_name, "echo hi from c/@; sleep 1; echo later from c; sleep 1000"))
        eventually(lambda: follower.has("[pod/web-c/main] hi from c/main") and
                   follower.has("[pod/web-c/main] later from c"), timeout=60,
                   message="a pod that started later", logs=agent.logs)
        rest.delete(PODS, "default", "web-c", grace_period_seconds=0)
        eventually(lambda: pod_gone(rest, "web-c"), timeout=60, message="web-c deleted")
        assert follower.proc.poll() is None                 # still following the others
        assert not any("other" in line for line in follower.lines)
    finally:
        follower.stop()


def test_previous_instance_lines_after_a_restart(server, agent, rest, tmp_path):
    marker = tmp_path / "ran-once"
    script = (f"if [ -e {marker} ]; then echo second run; sleep 1000; "
              f"else touch {marker}; echo first run; exit 3; fi")
    pod = _pod("flaky", agent.node_name, script, app="flaky")
    pod["spec"]["restartPolicy"] = "Always"
    rest.create(PODS, "default", pod)
    eventually(lambda: _running(rest, "flaky", restarts=1), timeout=60,
               message="flaky restarted", logs=agent.logs)
    previous = eventually(lambda: server.steer("logs", "flaky", "-p", check=False).stdout,
                          timeout=30, message="the previous instance's log")
    assert previous.splitlines() == ["first run"]
    assert server.steer("logs", "flaky").stdout.splitlines() == ["second run"]
    labelled = server.steer("logs", "-l", "app=flaky", "-p").stdout.splitlines()
    assert labelled == ["[pod/flaky/main] first run"]


def test_rotation_keeps_at_most_max_files_and_the_newest_lines(server, agent, rest):
    lines = 600          # ~60 bytes a stored line: 36 KB, far past 3 files of 4 KiB
    rest.create(PODS, "default", _pod(
        "chatty", agent.node_name,
        f"i=0; while [ $i -lt {lines} ]; do echo line-$i; i=$((i+1)); done; sleep 1000",
        app="chatty"))
    eventually(lambda: _running(rest, "chatty"), timeout=60, message="chatty running",
               logs=agent.logs)
    uid = rest.get(PODS, "default", "chatty")["metadata"]["uid"]
    log_path = agent.containers(uid)[0][0]["log_path"]
    last = f"line-{lines - 1}"
    shown = eventually(lambda: (out := server.steer("logs", "chatty").stdout.splitlines())
                       and out[-1] == last and out, timeout=30, message="the last line")
    directory = os.path.dirname(log_path)
    files = sorted(os.listdir(directory))
    base = os.path.basename(log_path)
    ours = [f for f in files if f == base or f.startswith(base + ".")]
    assert 1 < len(ours) <= MAX_FILES, ours
    assert all(os.path.getsize(os.path.join(directory, f)) <= MAX_BYTES + 200 for f in ours)
    assert "line-0" not in shown                            # the oldest were dropped
    numbers = [int(line.split("-")[1]) for line in shown]
    assert numbers == list(range(numbers[0], lines))        # the newest, in order, no gap
    assert server.steer("logs", "chatty", "--tail", "2").stdout.splitlines() == \
        [f"line-{lines - 2}", last]
