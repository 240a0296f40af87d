"""CriClient against an in-process fake CRI server on a unix socket.

The fake records every request it receives, so the tests check what actually crossed
the wire (after serialisation), not what the client meant to send.
"""
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri import api_pb2_grpc as api_grpc
from agent.runtime.cri.client import CriClient, CriError


class FakeRuntime(api_grpc.RuntimeServiceServicer):
    """Answers the rpcs the tests use; the others stay UNIMPLEMENTED (the base class)."""

    def __init__(self):
        self.requests = []
        self.api_version = "v1"
        self.containers = []
        self.release = threading.Event()

    def _record(self, request):
        self.requests.append(request)

    def Version(self, request, context):
        self._record(request)
        return api.VersionResponse(
            version="0.1.0", runtime_name="fake", runtime_version="1.0",
            runtime_api_version=self.api_version,
        )

    def RunPodSandbox(self, request, context):
        self._record(request)
        return api.RunPodSandboxResponse(pod_sandbox_id="sandbox-1")

    def ListContainers(self, request, context):
        self._record(request)
        wanted = request.filter.label_selector.items()
        return api.ListContainersResponse(containers=[
            c for c in self.containers if wanted <= c.labels.items()
        ])

    def ContainerStatus(self, request, context):
        self._record(request)
        context.abort(grpc.StatusCode.NOT_FOUND, f"container {request.container_id} not found")

    def StopContainer(self, request, context):
        self._record(request)
        return api.StopContainerResponse()

    def ExecSync(self, request, context):
        self._record(request)
        return api.ExecSyncResponse(stdout=b"out\n", stderr=b"err\n", exit_code=3)

    def Status(self, request, context):
        # Hangs until the test lets go: lets a test exceed the client's deadline.
        self._record(request)
        self.release.wait(30)
        return api.StatusResponse()


class FakeImages(api_grpc.ImageServiceServicer):
    def __init__(self):
        self.requests = []
        self.images = {}

    def ImageStatus(self, request, context):
        self.requests.append(request)
        image = self.images.get(request.image.image)
        return api.ImageStatusResponse(image=image) if image else api.ImageStatusResponse()

    def PullImage(self, request, context):
        self.requests.append(request)
        return api.PullImageResponse(image_ref="sha256:abc")


class FakeCri:
    """A gRPC server with both fakes, listening on ``socket`` once started."""

    def __init__(self, socket):
        self.socket = socket
        self.runtime = FakeRuntime()
        self.images = FakeImages()
        self.server = None

    def start(self):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        api_grpc.add_RuntimeServiceServicer_to_server(self.runtime, self.server)
        api_grpc.add_ImageServiceServicer_to_server(self.images, self.server)
        self.server.add_insecure_port(f"unix://{self.socket}")
        self.server.start()

    def stop(self):
        self.runtime.release.set()
        if self.server is not None:
            self.server.stop(grace=None).wait()


@pytest.fixture
def socket_path():
    # Short path: unix socket names are limited to 107 bytes, pytest's tmp_path may not be.
    with tempfile.TemporaryDirectory(prefix="cri-", dir="/tmp") as tmp:
        yield Path(tmp) / "cri.sock"


@pytest.fixture
def fake(socket_path):
    cri = FakeCri(socket_path)
    cri.start()
    try:
        yield cri
    finally:
        cri.stop()


@pytest.fixture
def client(fake):
    with CriClient(f"unix://{fake.socket}", timeout=5.0) as cri:
        yield cri


def sandbox_config():
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name="web-0", uid="uid-1", namespace="default", attempt=2),
        hostname="web-0",
        log_directory="/var/log/pods/default_web-0_uid-1",
        dns_config=api.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"],
                                 options=["ndots:5"]),
        port_mappings=[api.PortMapping(protocol=api.UDP, container_port=53, host_port=1053,
                                       host_ip="127.0.0.1")],
        labels={"io.kubernetes.pod.uid": "uid-1"},
        annotations={"note": "x"},
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent="/steer/poduid-1",
            sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=api.NODE, pid=api.CONTAINER),
                run_as_user=api.Int64Value(value=0),
                run_as_group=api.Int64Value(value=1000),
                supplemental_groups=[5, 6],
            ),
        ),
    )


def test_run_pod_sandbox_sends_the_whole_config(client, fake):
    config = sandbox_config()

    sandbox_id = client.run_pod_sandbox(config, runtime_handler="runc")

    assert sandbox_id == "sandbox-1"
    (received,) = fake.runtime.requests
    assert received.config == config
    assert received.runtime_handler == "runc"
    # uid 0 must arrive as "set to 0", not as "unset".
    assert received.config.linux.security_context.HasField("run_as_user")


def test_list_containers_sends_the_label_selector(client, fake):
    fake.runtime.containers = [
        api.Container(id="a", labels={"app": "web", "tier": "front"}),
        api.Container(id="b", labels={"app": "db"}),
    ]

    found = client.list_containers(label_selector={"app": "web"}, sandbox_id="sandbox-1",
                                   state=api.CONTAINER_RUNNING)

    assert [c.id for c in found] == ["a"]
    (received,) = fake.runtime.requests
    assert dict(received.filter.label_selector) == {"app": "web"}
    assert received.filter.pod_sandbox_id == "sandbox-1"
    assert received.filter.HasField("state")
    assert received.filter.state.state == api.CONTAINER_RUNNING


def test_a_zero_state_filter_still_arrives_as_a_filter(client, fake):
    client.list_containers(state=api.CONTAINER_CREATED)

    (received,) = fake.runtime.requests
    assert received.filter.HasField("state")
    assert received.filter.state.state == api.CONTAINER_CREATED


def test_list_containers_without_a_state_sends_no_state_filter(client, fake):
    client.list_containers()

    (received,) = fake.runtime.requests
    # An unset wrapper means "any state"; a zero one would mean CONTAINER_CREATED only.
    assert not received.filter.HasField("state")


def test_exec_sync_returns_exit_code_and_output(client, fake):
    assert client.exec_sync("c1", ["sh", "-c", "exit 3"], timeout=7) == (3, b"out\n", b"err\n")

    (received,) = fake.runtime.requests
    assert (received.container_id, list(received.cmd), received.timeout) == (
        "c1", ["sh", "-c", "exit 3"], 7)


def test_stop_container_sends_the_grace_period(client, fake):
    client.stop_container("c1", timeout=30)

    (received,) = fake.runtime.requests
    assert (received.container_id, received.timeout) == ("c1", 30)


def test_image_status_is_none_when_the_image_is_absent(client, fake):
    assert client.image_status("steer.local/busybox:1.35") is None


def test_image_status_returns_the_image_when_present(client, fake):
    fake.images.images["steer.local/busybox:1.35"] = api.Image(
        id="sha256:1", repo_tags=["steer.local/busybox:1.35"], size=1024,
        uid=api.Int64Value(value=0),
    )

    image = client.image_status("steer.local/busybox:1.35")

    assert image.id == "sha256:1"
    assert image.HasField("uid") and image.uid.value == 0


def test_pull_image_sends_auth_and_returns_the_ref(client, fake):
    ref = client.pull_image("127.0.0.1:5000/app:1",
                            auth={"username": "u", "password": "p"},
                            sandbox_config=sandbox_config())

    assert ref == "sha256:abc"
    (received,) = fake.images.requests
    assert received.image.image == "127.0.0.1:5000/app:1"
    assert (received.auth.username, received.auth.password) == ("u", "p")
    assert received.sandbox_config.metadata.name == "web-0"


def test_runtime_errors_become_cri_errors_naming_the_method(client):
    with pytest.raises(CriError) as caught:
        client.container_status("missing")

    error = caught.value
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.not_found
    assert error.method == "ContainerStatus"
    assert str(error) == "CRI ContainerStatus failed: NOT_FOUND: container missing not found"


def test_unimplemented_rpcs_raise_unimplemented(client):
    with pytest.raises(CriError) as caught:
        client.list_pod_sandbox_stats()

    assert caught.value.code == grpc.StatusCode.UNIMPLEMENTED
    assert "ListPodSandboxStats" in str(caught.value)


def test_a_call_past_its_deadline_raises_deadline_exceeded(fake):
    with CriClient(f"unix://{fake.socket}", timeout=0.2) as client:
        with pytest.raises(CriError) as caught:
            client.status()

    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.method == "Status"


def test_check_version_accepts_v1(client):
    assert client.check_version().runtime_api_version == "v1"


def test_check_version_refuses_another_api_version(client, fake):
    fake.runtime.api_version = "v1alpha2"

    with pytest.raises(CriError, match="speaks CRI 'v1alpha2', Steersman needs 'v1'"):
        client.check_version()


def test_check_version_explains_a_runtime_without_cri_v1(socket_path):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    server.add_insecure_port(f"unix://{socket_path}")  # no services at all
    server.start()
    try:
        with CriClient(str(socket_path), timeout=5.0) as client:
            with pytest.raises(CriError, match="does not serve the CRI API runtime.v1"):
                client.check_version()
    finally:
        server.stop(grace=None).wait()


def test_wait_ready_gives_up_then_succeeds_once_the_runtime_listens(socket_path):
    cri = FakeCri(socket_path)
    with CriClient(f"unix://{socket_path}", timeout=5.0) as client:
        with pytest.raises(CriError, match="did not answer within 0.3s"):
            client.wait_ready(0.3)
        cri.start()
        try:
            assert client.wait_ready(30).runtime_api_version == "v1"
        finally:
            cri.stop()


def test_a_bare_socket_path_is_accepted(fake):
    with CriClient(str(fake.socket)) as client:
        assert client.version().runtime_name == "fake"
