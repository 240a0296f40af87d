"""The pod worker's state machine on the fake runtime and a fake clock (no sleeps)."""

import signal

import pytest

from agent.backoff import Backoff
from tests.unit.agent.fakes import FakeProber, Harness, make_pod


def test_start_reports_running_and_ready_with_the_node_ip(tmp_path):
    h = Harness(make_pod(), tmp_path)
    h.step()
    status = h.api.last
    assert status["phase"] == "Running" and status["podIP"] == status["hostIP"] == "10.0.0.5"
    assert h.state() == "running" and h.status()["ready"] and h.status()["started"]
    assert h.status()["containerID"].startswith("fake://")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True"}
    assert h.recorder.reasons() == ["Created", "Started"]
    posted = len(h.api.statuses)
    h.step(1)
    assert len(h.api.statuses) == posted          # nothing changed: nothing posted


def test_crash_restarts_at_once_then_backs_off(tmp_path):
    h = Harness(make_pod(), tmp_path, backoff=Backoff(10, 40, 600))
    h.step()
    h.runtime.exit(h.uid, "c", 1)
    h.step()                                      # first restart: immediate
    assert h.state() == "running" and h.status()["restartCount"] == 1
    assert h.status()["lastState"]["terminated"]["exitCode"] == 1
    h.runtime.exit(h.uid, "c", 2)
    h.step(1)
    assert h.state() == "waiting"
    assert h.status()["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off 10s" in h.status()["state"]["waiting"]["message"]
    assert h.api.last["phase"] == "Running" and h.condition("Ready") == "False"
    assert "BackOff" in h.recorder.reasons()
    assert h.step(5) == pytest.approx(h.clock() + 5)   # wakes when the backoff ends
    assert h.state() == "waiting"
    h.step(5)
    assert h.state() == "running" and h.status()["restartCount"] == 2
    h.runtime.exit(h.uid, "c", 1)
    h.step(19)
    assert h.state() == "waiting" and "back-off 20s" in \
        h.status()["state"]["waiting"]["message"]
    h.step(1)
    assert h.status()["restartCount"] == 3
    assert len(h.runtime.list()) == 2           # only the current and previous attempts


@pytest.mark.parametrize("policy, code, restarted, phase", [
    ("Always", 0, True, "Running"), ("Always", 1, True, "Running"),
    ("OnFailure", 0, False, "Succeeded"), ("OnFailure", 3, True, "Running"),
    ("Never", 0, False, "Succeeded"), ("Never", 3, False, "Failed")])
def test_restart_policy(tmp_path, policy, code, restarted, phase):
    h = Harness(make_pod(policy=policy), tmp_path)
    h.step()
    h.runtime.exit(h.uid, "c", code)
    h.step()
    assert h.api.last["phase"] == phase
    assert (h.status()["restartCount"] == 1) is restarted
    if not restarted:
        terminated = h.status()["state"]["terminated"]
        assert terminated["exitCode"] == code
        assert terminated["reason"] == ("Completed" if code == 0 else "Error")
        assert h.condition("Ready") == "False"


def test_init_containers_run_in_order_before_containers(tmp_path):
    init = [{"name": "i1", "command": ["true"]}, {"name": "i2", "command": ["true"]}]
    h = Harness(make_pod(init=init), tmp_path)
    h.step()
    assert [c.name for c in h.runtime.started] == ["i1"]
    assert h.api.last["phase"] == "Pending" and h.condition("Initialized") == "False"
    assert h.state("c") == "waiting" and \
        h.status("c")["state"]["waiting"]["reason"] == "PodInitializing"
    h.runtime.exit(h.uid, "i1", 0)
    h.step()
    assert [c.name for c in h.runtime.started] == ["i1", "i2"]
    h.runtime.exit(h.uid, "i2", 0)
    h.step()
    assert [c.name for c in h.runtime.started] == ["i1", "i2", "c"]
    assert h.api.last["phase"] == "Running" and h.condition("Initialized") == "True"
    assert h.status("i2")["state"]["terminated"]["reason"] == "Completed"


def test_failed_init_container_is_retried_or_fails_the_pod(tmp_path):
    h = Harness(make_pod(init=[{"name": "i1", "command": ["false"]}]), tmp_path)
    h.step()
    h.runtime.exit(h.uid, "i1", 1)
    h.step()
    assert h.status("i1")["restartCount"] == 1 and h.api.last["phase"] == "Pending"
    never = Harness(make_pod(init=[{"name": "i1", "command": ["false"]}], policy="Never"),
                    tmp_path)
    never.step()
    never.runtime.exit(never.uid, "i1", 1)
    never.step()
    assert never.api.last["phase"] == "Failed"
    assert [c.name for c in never.runtime.started] == ["i1"]


def test_graceful_deletion_terms_then_kills_then_confirms(tmp_path):
    h = Harness(make_pod(grace=30), tmp_path)
    h.step()
    cid = h.runtime.running()[0].container_id
    h.runtime.signal = _ignoring_sigterm(h.runtime)
    pod = {**h.pod, "metadata": {**h.pod["metadata"], "deletionTimestamp": "x",
                                 "deletionGracePeriodSeconds": 5}}
    h.worker.update(pod)
    h.step()
    assert h.runtime.signals == [(cid, signal.SIGTERM)] and h.api.deleted == []
    assert "Killing" in h.recorder.reasons()
    h.step(4)
    assert h.api.deleted == []
    h.step(1)
    assert (cid, signal.SIGKILL) in h.runtime.signals
    h.step()
    assert h.api.deleted == ["web"] and h.worker.finished and h.runtime.list() == []
    assert h.step() is None


def test_a_container_that_honours_sigterm_is_confirmed_at_once(tmp_path):
    h = Harness(make_pod(), tmp_path)
    h.step()
    h.worker.update({**h.pod, "metadata": {**h.pod["metadata"], "deletionTimestamp": "x"}})
    h.step()
    assert h.api.deleted == ["web"] and not h.runtime.running()


def test_a_pod_removed_from_the_api_is_stopped_without_a_delete(tmp_path):
    h = Harness(make_pod(), tmp_path)
    h.step()
    h.worker.gone()
    h.step()
    assert not h.runtime.running() and h.api.deleted == [] and h.worker.finished


def test_liveness_failures_restart_the_container(tmp_path):
    container = {"name": "c", "command": ["sleep"],
                 "livenessProbe": {"exec": {"command": ["check"]}, "periodSeconds": 2,
                                   "failureThreshold": 2}}
    prober = FakeProber()
    prober.script[("c", "liveness")] = [True, False, False]
    h = Harness(make_pod([container], grace=0), tmp_path, prober=prober)
    h.step()
    h.step()                                     # the first probe runs after the start
    assert h.status()["restartCount"] == 0 and prober.runs == [("c", "liveness")]
    h.step(2)
    assert h.status()["restartCount"] == 0 and "Unhealthy" in h.recorder.reasons()
    h.step(2)                                    # second consecutive failure: killed
    h.step()
    assert h.status()["restartCount"] == 1
    assert any("failed liveness probe" in m for _, _, m in h.recorder.events)


def test_readiness_gates_ready_and_startup_gates_the_others(tmp_path):
    container = {"name": "c", "command": ["sleep"],
                 "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                 "readinessProbe": {"httpGet": {"port": 80}, "periodSeconds": 1}}
    prober = FakeProber()
    prober.script[("c", "startup")] = [False]
    prober.script[("c", "readiness")] = [False, True]
    h = Harness(make_pod([container]), tmp_path, prober=prober)
    h.step()
    h.step()
    assert prober.runs == [("c", "startup")]
    h.step(1)                                    # startup succeeds, readiness runs: fails
    assert h.status()["started"] and not h.status()["ready"]
    h.step(1)
    assert h.status()["ready"] and h.condition("Ready") == "True"
    assert prober.runs == [("c", "startup"), ("c", "startup"), ("c", "readiness"),
                           ("c", "readiness")]


def test_startup_probe_failure_threshold_kills(tmp_path):
    container = {"name": "c", "command": ["sleep"],
                 "startupProbe": {"exec": {"command": ["x"]}, "failureThreshold": 1}}
    h = Harness(make_pod([container], grace=0), tmp_path, prober=FakeProber(default=False))
    h.step()
    h.step()
    h.step()
    assert h.status()["restartCount"] == 1


def test_missing_config_map_waits_with_a_reason(tmp_path):
    container = {"name": "c", "command": ["sleep"], "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}
    h = Harness(make_pod([container]), tmp_path)
    h.step()
    assert h.status()["state"]["waiting"]["reason"] == "CreateContainerConfigError"
    assert h.api.last["phase"] == "Pending" and "Failed" in h.recorder.reasons()
    h.api.objects[("ConfigMap", "default", "cm")] = {"data": {"k": "v"}}
    h.step(1)
    assert h.state() == "waiting"                # not before the retry time
    h.step(1)
    assert h.state() == "running" and h.runtime.started[-1].env["X"] == "v"


def test_start_error_counts_as_a_crash(tmp_path):
    h = Harness(make_pod([{"name": "c", "command": ["nosuch"]}]), tmp_path)
    h.runtime.failing_commands.add("nosuch")
    h.step()
    assert h.status()["state"]["terminated"]["reason"] == "StartError"
    h.step()
    assert h.status()["restartCount"] == 1
    h.step()
    assert h.status()["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_readopts_running_containers_instead_of_starting_duplicates(tmp_path):
    first = Harness(make_pod(), tmp_path)
    first.step()
    first.runtime.exit(first.uid, "c", 1)
    first.step()
    records = first.runtime.list()
    again = Harness(first.pod, tmp_path, records=records)
    again.runtime = first.runtime
    again.ctx.runtime = first.runtime
    again.step()
    assert len(first.runtime.started) == 2           # no new start
    assert again.status()["restartCount"] == 1 and again.state() == "running"


def test_volumes_and_mounts_are_laid_out_under_the_pod_dir(tmp_path):
    container = {"name": "c", "command": ["sleep"], "workingDir": "/app",
                 "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                                  {"name": "scratch", "mountPath": "/tmp/s"}]}
    pod = make_pod([container], volumes=[{"name": "cfg", "configMap": {"name": "cm"}},
                                         {"name": "scratch", "emptyDir": {}}])
    h = Harness(pod, tmp_path)
    h.api.objects[("ConfigMap", "default", "cm")] = {"data": {"a.conf": "x=1"}}
    h.step()
    config = h.runtime.started[0]
    root = config.env["STEER_ROOT"]
    assert config.workdir == root + "/app"
    with open(root + "/etc/cfg/a.conf") as f:
        assert f.read() == "x=1"


def _ignoring_sigterm(runtime):
    original = runtime.signal

    def signal_(cid, sig, grace=None):
        if sig == signal.SIGTERM:
            runtime.signals.append((cid, sig))
            return
        original(cid, sig)
    return signal_


def test_a_second_delete_shortens_the_grace_period(tmp_path):
    h = Harness(make_pod(grace=30), tmp_path)
    h.step()
    cid = h.runtime.running()[0].container_id
    h.runtime.signal = _ignoring_sigterm(h.runtime)
    meta = {**h.pod["metadata"], "deletionTimestamp": "x", "deletionGracePeriodSeconds": 30}
    h.worker.update({**h.pod, "metadata": meta})
    h.step()
    h.step(1)
    assert (cid, signal.SIGKILL) not in h.runtime.signals
    h.worker.update({**h.pod, "metadata": {**meta, "deletionGracePeriodSeconds": 1}})
    h.step()
    assert (cid, signal.SIGKILL) in h.runtime.signals
    h.step()
    assert h.api.deleted == ["web"]


def test_config_map_volumes_follow_their_source(tmp_path):
    container = {"name": "c", "command": ["sleep"],
                 "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}]}
    h = Harness(make_pod([container], volumes=[{"name": "cfg", "configMap": {"name": "cm"}}]),
                tmp_path)
    h.api.objects[("ConfigMap", "default", "cm")] = {"data": {"k": "one"}}
    h.step()
    path = h.runtime.started[0].env["STEER_ROOT"] + "/etc/cfg/k"
    h.api.objects[("ConfigMap", "default", "cm")] = {"data": {"k": "two"}}
    h.step(30)
    with open(path) as f:
        assert f.read() == "one"
    h.step(31)
    with open(path) as f:
        assert f.read() == "two"
