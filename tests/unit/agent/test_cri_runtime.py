"""The cri runtime against an in-memory CRI: sandboxes, records, re-adoption, stops."""

import itertools
import signal
import threading

import grpc
import pytest

from agent.backoff import Backoff
from agent.containers import Context
from agent.env import ConfigError
from agent.podworker import PodWorker
from agent.runtime.base import RuntimeError_
from agent.runtime.cri import api_pb2
from agent.runtime.cri import labels as labelmod
from agent.runtime.cri.client import CriError
from agent.runtime.cri.runtime import CriRuntime
from tests.unit.agent.fakes import FakeApi, FakeClock, FakeProber, FakeRecorder, make_pod

NS = 10 ** 9


class FakeCri:
    """Just enough of CriClient, keeping sandboxes and containers as CRI messages."""

    def __init__(self):
        self.sandboxes, self.containers = {}, {}    # id -> (config message, status message)
        self.ids = itertools.count(1)
        self.calls = []
        self.images = {}                            # ref -> Image
        self.fail_start = False
        self.stopped = threading.Event()

    def _not_found(self, method, what):
        return CriError(grpc.StatusCode.NOT_FOUND, f"{what} not found", method)

    def run_pod_sandbox(self, config, runtime_handler=""):
        sandbox_id = f"sb{next(self.ids)}"
        self.calls.append(("RunPodSandbox", sandbox_id))
        status = api_pb2.PodSandboxStatus(
            id=sandbox_id, metadata=config.metadata, state=api_pb2.SANDBOX_READY,
            created_at=next(self.ids) * NS, network=api_pb2.PodSandboxNetworkStatus(
                ip=f"10.244.0.{len(self.sandboxes) + 2}"), labels=config.labels)
        self.sandboxes[sandbox_id] = (config, status)
        return sandbox_id

    def pod_sandbox_status(self, sandbox_id, verbose=False):
        if sandbox_id not in self.sandboxes:
            raise self._not_found("PodSandboxStatus", sandbox_id)
        return api_pb2.PodSandboxStatusResponse(status=self.sandboxes[sandbox_id][1])

    def list_pod_sandbox(self, label_selector=None, state=None, sandbox_id=None):
        return [api_pb2.PodSandbox(id=s.id, metadata=s.metadata, state=s.state,
                                   created_at=s.created_at, labels=s.labels)
                for _, s in self.sandboxes.values()
                if all(s.labels.get(k) == v for k, v in (label_selector or {}).items())]

    def stop_pod_sandbox(self, sandbox_id):
        self.calls.append(("StopPodSandbox", sandbox_id))
        if sandbox_id in self.sandboxes:
            self.sandboxes[sandbox_id][1].state = api_pb2.SANDBOX_NOTREADY

    def remove_pod_sandbox(self, sandbox_id):
        self.calls.append(("RemovePodSandbox", sandbox_id))
        self.sandboxes.pop(sandbox_id, None)

    def create_container(self, sandbox_id, config, sandbox_config):
        container_id = f"c{next(self.ids)}"
        self.calls.append(("CreateContainer", container_id))
        status = api_pb2.ContainerStatus(
            id=container_id, metadata=config.metadata, state=api_pb2.CONTAINER_CREATED,
            created_at=100 * NS, labels=config.labels, annotations=config.annotations,
            image_ref=config.image.image)
        self.containers[container_id] = (config, status, sandbox_id)
        return container_id

    def start_container(self, container_id):
        if self.fail_start:
            raise CriError(grpc.StatusCode.UNKNOWN, "exec: no such file", "StartContainer")
        status = self.containers[container_id][1]
        status.state, status.started_at = api_pb2.CONTAINER_RUNNING, 101 * NS

    def container_status(self, container_id, verbose=False):
        if container_id not in self.containers:
            raise self._not_found("ContainerStatus", container_id)
        return api_pb2.ContainerStatusResponse(status=self.containers[container_id][1])

    def list_containers(self, label_selector=None, sandbox_id=None, state=None):
        return [api_pb2.Container(id=cid, pod_sandbox_id=sb, labels=s.labels)
                for cid, (_, s, sb) in self.containers.items()
                if all(s.labels.get(k) == v for k, v in (label_selector or {}).items())]

    def exit(self, container_id, code, reason=""):
        status = self.containers[container_id][1]
        status.state, status.exit_code, status.finished_at = api_pb2.CONTAINER_EXITED, code, \
            200 * NS
        status.reason = reason

    def stop_container(self, container_id, timeout):
        self.calls.append(("StopContainer", container_id, timeout))
        if container_id not in self.containers:
            raise self._not_found("StopContainer", container_id)
        if self.containers[container_id][1].state == api_pb2.CONTAINER_RUNNING:
            self.exit(container_id, 137 if timeout == 0 else 143)
        self.stopped.set()

    def remove_container(self, container_id):
        self.calls.append(("RemoveContainer", container_id))
        self.containers.pop(container_id, None)

    def exec_sync(self, container_id, cmd, timeout):
        return (0, b"out\n", b"") if cmd == ["true"] else (1, b"", b"bad\n")

    def image_status(self, image):
        return self.images.get(image)

    def close(self):
        pass


@pytest.fixture
def cri():
    return FakeCri()


def _runtime(cri, node="n1"):
    return CriRuntime(cri, node, resolv_conf="")


def _start(runtime, pod, tmp_path, name="c", attempt=0, **spec):
    from agent import volumes
    from agent.runtime.base import ContainerConfig
    container = {"name": name, "image": "busybox", **spec}
    pod["spec"]["containers"] = [container]
    pod_dir = tmp_path / "pods" / pod["metadata"]["uid"]
    config = ContainerConfig(pod["metadata"]["uid"], "default/web", name, attempt, ["sleep"],
                             {}, "", str(pod_dir / "logs" / name / f"{attempt}.log"),
                             image="sha256:1", args=["100"],
                             mounts=volumes.container_mounts(container, {}), pod=pod,
                             spec=container, pod_dir=str(pod_dir))
    return runtime.start(config)


def _prepare(runtime, pod, tmp_path):
    pod_dir = tmp_path / "pods" / pod["metadata"]["uid"]
    pod_dir.mkdir(parents=True, exist_ok=True)
    return runtime.prepare_pod(pod, str(pod_dir))


def test_prepare_pod_runs_one_sandbox_and_writes_hosts(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    first = _prepare(runtime, pod, tmp_path)
    assert _prepare(runtime, pod, tmp_path) == first          # idempotent
    assert [c for c in cri.calls if c[0] == "RunPodSandbox"] == [("RunPodSandbox", first.id)]
    assert runtime.pod_ip(pod["metadata"]["uid"], "192.0.2.1") == first.ip == "10.244.0.2"
    hosts = (tmp_path / "pods" / pod["metadata"]["uid"] / "etc-hosts").read_text()
    assert "127.0.0.1\tlocalhost" in hosts and "10.244.0.2\tweb" in hosts
    config = cri.sandboxes[first.id][0]
    assert config.log_directory.endswith("/logs")
    assert config.linux.cgroup_parent == f"/steer/n1/pod{pod['metadata']['uid']}"


def test_a_dead_sandbox_is_replaced_with_the_next_attempt(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    first = _prepare(runtime, pod, tmp_path)
    cri.sandboxes[first.id][1].state = api_pb2.SANDBOX_NOTREADY
    second = _prepare(runtime, pod, tmp_path)
    assert second.id != first.id and second.attempt == 1


def test_host_network_pods_take_the_node_ip(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod(hostNetwork=True)
    _prepare(runtime, pod, tmp_path)
    assert runtime.pod_ip(pod["metadata"]["uid"], "192.0.2.1") == "192.0.2.1"


def test_start_inspect_and_readoption_from_labels(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    sandbox = _prepare(runtime, pod, tmp_path)
    record = _start(runtime, pod, tmp_path, attempt=3)
    assert record.running and record.attempt == 3 and record.sandbox_id == sandbox.id
    assert record.started_at == 101 and record.image_id == "sha256:1"
    config = cri.containers[record.container_id][0]
    assert list(config.command) == ["sleep"] and list(config.args) == ["100"]
    assert "/etc/hosts" in [m.container_path for m in config.mounts]
    # A new agent (a new runtime object) finds the same containers and sandbox.
    again = _runtime(cri)
    [adopted] = again.list()
    assert (adopted.container_id, adopted.pod_uid, adopted.name, adopted.attempt,
            adopted.init, adopted.running) == (record.container_id, pod["metadata"]["uid"],
                                               "c", 3, False, True)
    assert _prepare(again, pod, tmp_path).id == sandbox.id
    assert len([c for c in cri.calls if c[0] == "RunPodSandbox"]) == 1
    assert _runtime(cri, node="other").list() == []          # another node's agent


def test_oomkilled_and_the_termination_message(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    _prepare(runtime, pod, tmp_path)
    record = _start(runtime, pod, tmp_path)
    host_path = cri.containers[record.container_id][0].annotations[
        labelmod.TERMINATION_HOST_PATH]
    with open(host_path, "w") as f:
        f.write("out of memory")
    cri.exit(record.container_id, 137, "OOMKilled")
    done = runtime.inspect(record.container_id)
    assert (done.exit_code, done.reason, done.finished_at) == (137, "OOMKilled", 200)
    assert done.message == "out of memory"


def test_exit_without_reason_is_completed_or_error(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    _prepare(runtime, pod, tmp_path)
    ok, bad = _start(runtime, pod, tmp_path), _start(runtime, pod, tmp_path, attempt=1)
    cri.exit(ok.container_id, 0)
    cri.exit(bad.container_id, 2)
    assert runtime.inspect(ok.container_id).reason == "Completed"
    assert runtime.inspect(bad.container_id).reason == "Error"


def test_signals_become_stop_container(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    _prepare(runtime, pod, tmp_path)
    record = _start(runtime, pod, tmp_path)
    runtime.signal(record.container_id, signal.SIGTERM, grace=7)
    assert cri.stopped.wait(10)
    assert ("StopContainer", record.container_id, 7) in cri.calls
    runtime.signal(record.container_id, signal.SIGKILL)
    assert ("StopContainer", record.container_id, 0) in cri.calls
    runtime.signal("gone", signal.SIGKILL)                   # not found: nothing to do


def test_a_failed_start_removes_the_container(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    _prepare(runtime, pod, tmp_path)
    cri.fail_start = True
    with pytest.raises(RuntimeError_, match="no such file"):
        _start(runtime, pod, tmp_path)
    assert cri.containers == {}


def test_run_as_non_root_checks_the_image_user(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    _prepare(runtime, pod, tmp_path)
    cri.images["sha256:1"] = api_pb2.Image(id="sha256:1", uid=api_pb2.Int64Value(value=0))
    with pytest.raises(ConfigError, match="will run as root"):
        _start(runtime, pod, tmp_path, securityContext={"runAsNonRoot": True})
    cri.images["sha256:1"] = api_pb2.Image(id="sha256:1", uid=api_pb2.Int64Value(value=65534))
    assert _start(runtime, pod, tmp_path, securityContext={"runAsNonRoot": True}).running


def test_exec_and_release(cri, tmp_path):
    runtime, pod = _runtime(cri), make_pod()
    sandbox = _prepare(runtime, pod, tmp_path)
    record = _start(runtime, pod, tmp_path)
    assert runtime.exec(record.container_id, ["true"], 1) == (0, "out\n")
    assert runtime.exec(record.container_id, ["false"], 1) == (1, "bad\n")
    assert runtime.pod_uids() == {pod["metadata"]["uid"]}
    runtime.release_pod(pod["metadata"]["uid"])
    assert ("StopPodSandbox", sandbox.id) in cri.calls and sandbox.id not in cri.sandboxes
    assert runtime.pod_uids() == set()


class _Worker:
    """A pod worker on the cri runtime over FakeCri, with a fake clock."""

    def __init__(self, cri, tmp_path, pod):
        self.clock, self.api, self.recorder = FakeClock(), FakeApi(), FakeRecorder()
        self.runtime = _runtime(cri)
        ctx = Context(self.runtime, self.api, self.recorder, Backoff(10, 300, 600),
                      FakeProber(), self.clock, str(tmp_path), "192.0.2.1", "n1")
        self.worker = PodWorker(ctx, pod, self.runtime.list())

    def step(self, advance=0.0):
        self.clock.advance(advance)
        return self.worker.sync(self.clock())


def test_worker_runs_containers_in_the_sandbox_with_its_ip(cri, tmp_path):
    pod = make_pod(containers=[{"name": "c", "image": "busybox", "command": ["sleep"],
                                "args": ["$(GREETING)"],
                                "env": [{"name": "GREETING", "value": "1000"}]}])
    h = _Worker(cri, tmp_path, pod)
    h.step()
    status = h.api.last
    assert status["phase"] == "Running" and status["podIP"] == "10.244.0.2"
    assert status["containerStatuses"][0]["containerID"].startswith("containerd://")
    [(config, _, sandbox_id)] = cri.containers.values()
    assert list(config.command) == ["sleep"] and list(config.args) == ["1000"]
    assert sandbox_id in cri.sandboxes


def test_worker_restarts_containers_when_the_sandbox_changes(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod())
    h.step()
    [first_id] = list(cri.containers)
    first_sandbox = cri.containers[first_id][2]
    cri.sandboxes[first_sandbox][1].state = api_pb2.SANDBOX_NOTREADY
    h.step(1)
    assert ("Normal", "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.") in h.recorder.events
    assert cri.stopped.wait(10)         # SIGTERM: StopContainer runs on a thread
    assert any(c[0] == "StopContainer" and c[1] == first_id for c in cri.calls)
    h.step(1)
    running = [cid for cid, (_, s, _) in cri.containers.items()
               if s.state == api_pb2.CONTAINER_RUNNING]
    assert running and all(cri.containers[cid][2] != first_sandbox for cid in running)
    assert h.api.last["containerStatuses"][0]["restartCount"] == 1


def test_worker_deletion_releases_the_sandbox(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod(grace=0))
    h.step()
    h.worker.gone()
    h.step()
    h.step(1)
    assert h.worker.finished and cri.sandboxes == {} and cri.containers == {}


def test_the_agent_refuses_a_missing_containerd_with_what_to_do(tmp_path):
    from agent.main import build_cri_runtime, parse_args
    endpoint = f"unix://{tmp_path}/containerd.sock"
    args = parse_args(["--runtime", "cri", "--container-runtime-endpoint", endpoint,
                       "--data-dir", str(tmp_path)])
    with pytest.raises(SystemExit) as raised:
        build_cri_runtime(args)
    message = str(raised.value)
    assert endpoint in message and "--runtime process" in message and "start it" in message


def test_a_finished_pod_stops_its_sandbox_and_keeps_its_ip(cri, tmp_path):
    h = _Worker(cri, tmp_path, make_pod(policy="Never"))
    h.step()
    [container_id] = list(cri.containers)
    cri.exit(container_id, 0)
    h.step(1)
    assert h.api.last["phase"] == "Succeeded" and h.api.last["podIP"] == "10.244.0.2"
    h.step(1)
    [(_, status)] = cri.sandboxes.values()
    assert status.state == api_pb2.SANDBOX_NOTREADY
    assert h.worker.build_status(h.clock())["podIP"] == "10.244.0.2"
