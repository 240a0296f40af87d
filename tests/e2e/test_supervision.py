"""`steer up` supervises what it starts: a killed scheduler, controller manager or agent comes back.

One small local cluster (one node) for the whole module, its tests in order: the
supervisor runs and `steer status` shows it; the scheduler and the controller
manager are SIGKILLed, come back with new pids and a restart each in `steer
status`; a Deployment created afterwards still gets Running pods (so both
really work again); `steer down` leaves nothing running, the supervisor included.
"""

import os
import signal
import stat

import pytest

from control.objects import kinds
from tests.e2e.conftest import running_cluster
from tests.support.apiproc import eventually

CONTROL_PLANE = ("scheduler", "controller-manager", "node-1")   # node-1: its agent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=1) as c:
        yield c


def status_rows(cluster):
    """`steer status`'s process table: name -> its columns."""
    out = cluster.steer("status", check=False).stdout
    rows = {}
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] in cluster.local.processes and fields[0] not in rows:
            rows[fields[0]] = fields    # the first table only (the node table repeats names)
    return out, rows


def test_the_supervisor_runs_and_status_shows_it(cluster):
    out, rows = status_rows(cluster)
    assert "RESTARTS" in out and "supervisor: pid" in out, out
    assert rows["scheduler"][2:4] == ["running", "0"], out


def test_secrets_are_encrypted_at_rest_by_default(cluster):
    argv = cluster.local.processes["apiserver"]["argv"]
    path = argv[argv.index("--encryption-provider-config") + 1]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_killed_scheduler_controller_manager_and_agent_are_restarted(cluster):
    old = {name: cluster.pid(name) for name in CONTROL_PLANE}
    for pid in old.values():
        os.kill(pid, signal.SIGKILL)

    def back():
        local = cluster.local
        return all(local.is_running(n) and local.processes[n]["pid"] != old[n]
                   for n in CONTROL_PLANE)

    eventually(back, timeout=30, message="the scheduler, controller manager and agent to come back",
               logs=cluster.logs)
    out, rows = status_rows(cluster)
    for name in CONTROL_PLANE:
        assert rows[name][2:4] == ["running", "1"], out


def test_a_new_deployment_still_gets_running_pods(cluster):
    labels = {"app": "after-restart"}
    cluster.rest.create(kinds.DEPLOYMENTS, "default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "after-restart"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                     {"name": "main", "image": "none",
                      "command": ["python3", "-c", "import time; time.sleep(3600)"]}]}}}})

    def running():
        pods = cluster.pods("app=after-restart")
        return len(pods) == 2 and all(p.get("status", {}).get("phase") == "Running"
                                      for p in pods)

    eventually(running, timeout=60, message="two Running pods", logs=cluster.logs)


def test_down_stops_the_supervisor_and_everything(cluster):
    out = cluster.steer("down", "--timeout", "5").stdout
    assert "stopped the supervisor" in out, out
    assert cluster.local.running() == []
    eventually(lambda: cluster.processes_under_home() == [], timeout=20,
               message="no process of the cluster left")
