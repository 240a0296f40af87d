"""The pod worker on the cri runtime (in-memory CRI): a replaced sandbox re-runs the init
containers, restartPolicy decides whether a dead sandbox is replaced at all, and a failed
CreateContainer waits as CreateContainerError with backoff (a failed start stays StartError).
"""

import grpc
import pytest

from agent.runtime.base import CreateContainerError, RuntimeError_
from agent.runtime.cri import api_pb2
from agent.runtime.cri.client import CriError
from tests.unit.agent.fakes import make_pod
from tests.unit.agent.test_cri_runtime import FakeCri, _prepare, _runtime, _start, _Worker


class FailingCri(FakeCri):
    """FakeCri whose CreateContainer fails while ``create_error`` is set."""

    def __init__(self):
        super().__init__()
        self.create_error = None

    def create_container(self, sandbox_id, config, sandbox_config):
        if self.create_error:
            self.calls.append(("CreateContainer", "failed"))
            raise CriError(grpc.StatusCode.UNKNOWN, self.create_error, "CreateContainer")
        return super().create_container(sandbox_id, config, sandbox_config)


@pytest.fixture
def cri():
    return FailingCri()


def _by_name(cri, name):
    """(container id, sandbox id, state) of every container named ``name``, oldest first."""
    return [(cid, sandbox, status.state) for cid, (config, status, sandbox) in
            cri.containers.items() if config.metadata.name == name]


def _statuses(h):
    status = h.api.last
    return {s["name"]: s for s in status.get("initContainerStatuses", []) +
            status["containerStatuses"]}


def _kill_sandbox(cri, container_id):
    sandbox = cri.containers[container_id][2]
    cri.sandboxes[sandbox][1].state = api_pb2.SANDBOX_NOTREADY
    return sandbox


def _running_in(cri, name, sandbox):
    return [cid for cid, sb, state in _by_name(cri, name)
            if sb == sandbox and state == api_pb2.CONTAINER_RUNNING]


def _run_sandboxes(cri):
    return [c for c in cri.calls if c[0] == "RunPodSandbox"]


def _init_pod(policy="Always"):
    return make_pod(policy=policy, init=[{"name": "init", "image": "busybox",
                                          "command": ["true"]}])


def test_a_new_sandbox_runs_the_init_containers_again_before_the_others(cri, tmp_path):
    h = _Worker(cri, tmp_path, _init_pod())
    h.step()
    [(init_id, first_sandbox, _)] = _by_name(cri, "init")
    assert _by_name(cri, "c") == []               # the app waits for its init container
    cri.exit(init_id, 0)
    h.step(1)
    [(main_id, _, _)] = _by_name(cri, "c")
    _kill_sandbox(cri, main_id)
    h.step(1)
    assert len(_run_sandboxes(cri)) == 2
    assert ("Normal", "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.") in h.recorder.events
    assert cri.stopped.wait(10)                   # the app in the old sandbox is stopped
    new_sandbox = next(s for s in cri.sandboxes if s != first_sandbox)
    [again] = _running_in(cri, "init", new_sandbox)
    assert _statuses(h)["init"]["restartCount"] == 1
    h.step(1)
    assert _running_in(cri, "c", new_sandbox) == []   # not before init succeeded again
    assert h.api.last["phase"] == "Pending"
    cri.exit(again, 0)
    h.step(1)
    assert len(_running_in(cri, "c", new_sandbox)) == 1
    statuses = _statuses(h)
    assert "running" in statuses["c"]["state"] and statuses["c"]["restartCount"] == 1
    assert statuses["init"]["state"]["terminated"]["exitCode"] == 0
    assert h.api.last["phase"] == "Running"


def test_a_restart_policy_never_pod_that_ran_gets_no_new_sandbox(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod(policy="Never", grace=0))
    h.step()
    [(main_id, _, _)] = _by_name(cri, "c")
    _kill_sandbox(cri, main_id)
    h.step(1)
    assert len(_run_sandboxes(cri)) == 1
    assert ("StopContainer", main_id, 0) in cri.calls
    assert "SandboxChanged" not in h.recorder.reasons()
    h.step(1)
    assert h.api.last["phase"] == "Failed"
    assert _statuses(h)["c"]["state"]["terminated"]["exitCode"] == 137
    h.step(1)
    assert len(_run_sandboxes(cri)) == 1 and len(cri.containers) == 1


def test_a_never_pod_whose_sandbox_died_before_anything_ran_gets_a_new_one(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod(policy="Never"))
    cri.create_error = "no space left on device"
    h.step()
    [sandbox] = cri.sandboxes
    cri.sandboxes[sandbox][1].state = api_pb2.SANDBOX_NOTREADY
    cri.create_error = None
    h.step(10)
    assert len(_run_sandboxes(cri)) == 2 and "running" in _statuses(h)["c"]["state"]


def test_on_failure_restarts_only_what_has_not_succeeded_in_the_new_sandbox(cri, tmp_path):
    pod = make_pod(policy="OnFailure", containers=[
        {"name": "done", "image": "busybox", "command": ["true"]},
        {"name": "c", "image": "busybox", "command": ["sleep"]}])
    h = _Worker(cri, tmp_path, pod)
    h.step()
    [(done_id, _, _)] = _by_name(cri, "done")
    [(main_id, _, _)] = _by_name(cri, "c")
    cri.exit(done_id, 0)
    h.step(1)
    old = _kill_sandbox(cri, main_id)
    h.step(1)
    assert cri.stopped.wait(10)
    h.step(1)
    new_sandbox = next(s for s in cri.sandboxes if s != old)
    assert len(_running_in(cri, "c", new_sandbox)) == 1
    assert len(_by_name(cri, "done")) == 1        # succeeded: not run again
    assert h.api.last["phase"] == "Running"


def test_a_failed_create_waits_as_create_container_error_with_backoff(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod())
    cri.create_error = 'failed to create containerd container: mount "/nope": bad'
    h.step()
    status = _statuses(h)["c"]
    assert status["state"] == {"waiting": {
        "reason": "CreateContainerError",
        "message": 'failed to create containerd container: mount "/nope": bad'}}
    assert status["restartCount"] == 0 and status["lastState"] == {}
    assert h.api.last["phase"] == "Pending"
    assert ("Warning", "Failed",
            'Error: failed to create containerd container: mount "/nope": bad') \
        in h.recorder.events
    assert cri.containers == {}
    failed = lambda: len([c for c in cri.calls if c == ("CreateContainer", "failed")])  # noqa: E731
    h.step(9)
    assert failed() == 1                          # the first retry waits 10 s
    h.step(1)
    assert failed() == 2
    h.step(19)
    assert failed() == 2                          # then 20 s
    cri.create_error = None
    h.step(1)
    status = _statuses(h)["c"]
    assert "running" in status["state"] and status["restartCount"] == 0
    [(container_id, _, _)] = _by_name(cri, "c")
    assert cri.containers[container_id][0].metadata.attempt == 0


def test_a_create_error_after_a_crash_keeps_the_restart_count(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod())
    h.step()
    [(first, _, _)] = _by_name(cri, "c")
    cri.exit(first, 1)
    cri.create_error = "image config broken"
    h.step(1)
    status = _statuses(h)["c"]
    assert status["state"]["waiting"]["reason"] == "CreateContainerError"
    assert status["restartCount"] == 0
    cri.create_error = None
    h.step(10)
    status = _statuses(h)["c"]
    assert "running" in status["state"] and status["restartCount"] == 1


def test_a_failed_start_is_still_a_start_error(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod(policy="Never"))
    cri.fail_start = True
    h.step()
    terminated = _statuses(h)["c"]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("StartError", 128)
    assert "no such file" in terminated["message"]


def test_the_runtime_raises_create_container_error_with_the_runtimes_message(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    _prepare(runtime, pod, tmp_path)
    cri.create_error = "failed to get image: not found"
    with pytest.raises(CreateContainerError) as raised:
        _start(runtime, pod, tmp_path)
    assert str(raised.value) == "failed to get image: not found"
    assert isinstance(raised.value, RuntimeError_)


def test_sandbox_ready_follows_the_known_or_listed_sandbox(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    uid = pod["metadata"]["uid"]
    assert runtime.sandbox_ready(uid) is False
    sandbox = _prepare(runtime, pod, tmp_path)
    assert runtime.sandbox_ready(uid) is True
    assert _runtime(cri).sandbox_ready(uid) is True        # a new agent lists it
    cri.sandboxes[sandbox.id][1].state = api_pb2.SANDBOX_NOTREADY
    assert runtime.sandbox_ready(uid) is False and _runtime(cri).sandbox_ready(uid) is False
