"""Log rotation for cri containers: rename past the size, keep max_files, ReopenContainerLog."""

import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from agent import logs
from agent.runtime.cri import api_pb2
from agent.runtime.cri import api_pb2_grpc as api_grpc
from agent.runtime.cri.client import CriClient, CriError
from agent.runtime.cri.logrotation import ContainerLogRotator, rotated_indexes

LINE = b"2026-12-04T22:00:00.000000000Z stdout F " + b"x" * 40 + b"\n"


class WritingCri:
    """A CRI that writes container output as containerd does: to an open file it reopens."""

    def __init__(self):
        self.containers = {}        # id -> (status, open file)
        self.reopened = []
        self.fail_reopen = False

    def add(self, container_id, path, state=api_pb2.CONTAINER_RUNNING, labels=None):
        status = api_pb2.ContainerStatus(id=container_id, state=state, log_path=str(path),
                                         labels=labels or {"steersman.io/node": "n1"})
        self.containers[container_id] = (status, open(path, "ab"))

    def write(self, container_id, lines=1, tag=b"x"):
        handle = self.containers[container_id][1]
        handle.write(LINE.replace(b"x" * 40, tag * 40) * lines)
        handle.flush()

    def list_containers(self, label_selector=None, state=None):
        return [api_pb2.Container(id=cid, state=status.state, labels=status.labels)
                for cid, (status, _) in self.containers.items()
                if all(status.labels.get(k) == v for k, v in (label_selector or {}).items())
                and (state is None or status.state == state)]

    def container_status(self, container_id):
        return api_pb2.ContainerStatusResponse(status=self.containers[container_id][0])

    def reopen_container_log(self, container_id):
        if self.fail_reopen:
            raise CriError(grpc.StatusCode.UNKNOWN, "reopen failed", "ReopenContainerLog")
        status, handle = self.containers[container_id]
        handle.close()
        self.containers[container_id] = (status, open(status.log_path, "ab"))
        self.reopened.append(container_id)

    def close(self):
        for _, handle in self.containers.values():
            handle.close()


@pytest.fixture
def cri():
    fake = WritingCri()
    yield fake
    fake.close()


def _log(tmp_path, name="c"):
    directory = tmp_path / "logs" / name
    directory.mkdir(parents=True)
    return directory / "0.log"


def test_a_log_below_the_size_is_left_alone(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    cri.write("c1", 2)
    assert ContainerLogRotator(cri, 10 * len(LINE), 3).rotate_all() == []
    assert cri.reopened == [] and rotated_indexes(str(path)) == []


def test_a_log_past_the_size_is_renamed_and_reopened(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    cri.write("c1", 3, b"a")
    rotator = ContainerLogRotator(cri, 2 * len(LINE), 3)
    assert rotator.rotate_all() == ["c1"]
    assert cri.reopened == ["c1"]
    assert Path(f"{path}.1").read_bytes().count(b"a" * 40) == 3
    cri.write("c1", 1, b"b")                 # containerd now writes the fresh file
    assert path.read_bytes().count(b"b" * 40) == 1 and b"a" * 40 not in path.read_bytes()


def test_at_most_max_files_are_kept_oldest_removed_first(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    rotator = ContainerLogRotator(cri, len(LINE), 3)
    for tag in (b"a", b"b", b"c", b"d"):
        cri.write("c1", 1, tag)
        rotator.rotate_all()
    cri.write("c1", 1, b"e")
    assert rotated_indexes(str(path)) == [1, 2]            # 3 files with the live one
    assert Path(f"{path}.2").read_bytes().count(b"c" * 40) == 1
    assert Path(f"{path}.1").read_bytes().count(b"d" * 40) == 1
    # kubectl logs through the agent reads the kept files in order, oldest first.
    text = b"".join(logs.read(str(path)))
    assert [tag for tag in b"cde" if bytes([tag]) * 40 in text] == list(b"cde")
    assert text.index(b"c" * 40) < text.index(b"d" * 40) < text.index(b"e" * 40)


def test_max_files_one_keeps_only_the_live_file(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    cri.write("c1", 2)
    ContainerLogRotator(cri, len(LINE), 1).rotate_all()
    assert cri.reopened == ["c1"] and rotated_indexes(str(path)) == []
    assert path.exists() and path.stat().st_size == 0


def test_a_failed_reopen_puts_the_file_back(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    cri.write("c1", 3, b"a")
    cri.fail_reopen = True
    assert ContainerLogRotator(cri, len(LINE), 3).rotate_all() == []
    assert path.read_bytes().count(b"a" * 40) == 3 and rotated_indexes(str(path)) == []


def test_only_running_containers_of_this_node_rotate_and_negative_size_is_off(cri, tmp_path):
    mine, exited, other = _log(tmp_path, "a"), _log(tmp_path, "b"), _log(tmp_path, "c")
    cri.add("mine", mine)
    cri.add("exited", exited, state=api_pb2.CONTAINER_EXITED)
    cri.add("other", other, labels={"steersman.io/node": "n2"})
    for cid in ("mine", "exited", "other"):
        cri.write(cid, 3)
    assert ContainerLogRotator(cri, -1, 3, labels={"steersman.io/node": "n1"}).rotate_all() == []
    rotator = ContainerLogRotator(cri, len(LINE), 3, labels={"steersman.io/node": "n1"})
    assert rotator.rotate_all() == ["mine"]


def test_a_follower_goes_on_in_the_new_file_after_a_rotation(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    cri.write("c1", 1, b"a")
    running = threading.Event()
    running.set()
    reader = logs.read(str(path), follow=True, is_running=running.is_set, poll=0.01)
    assert b"a" * 40 in next(reader)
    cri.write("c1", 1, b"b")
    ContainerLogRotator(cri, len(LINE), 3).rotate_all()
    cri.write("c1", 1, b"c")
    assert b"b" * 40 in next(reader)
    assert b"c" * 40 in next(reader)
    running.clear()
    assert list(reader) == []


def test_run_rotates_every_interval_until_stopped(cri, tmp_path):
    path = _log(tmp_path)
    cri.add("c1", path)
    cri.write("c1", 2)
    stop = threading.Event()
    rotator = ContainerLogRotator(cri, len(LINE), 3)
    thread = threading.Thread(target=rotator.run, args=(stop, 0.01))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not cri.reopened and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cri.reopened == ["c1"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_the_agent_rotates_only_for_an_image_runtime():
    from agent.main import build_log_rotation, parse_args
    from agent.runtime.fake import FakeRuntime
    args = parse_args(["--node-name", "n1", "--container-log-max-size", "100",
                       "--container-log-max-files", "4"])
    assert build_log_rotation(args, FakeRuntime()) is None

    class ImageRuntime(FakeRuntime):
        runs_images = True
        client = WritingCri()
    rotator = build_log_rotation(args, ImageRuntime())
    assert (rotator.max_bytes, rotator.max_files) == (100, 4)
    assert rotator.labels == {"steersman.io/managed": "true", "steersman.io/node": "n1"}
    args.container_log_max_size = -1
    assert build_log_rotation(args, ImageRuntime()) is None


class _Reopens(api_grpc.RuntimeServiceServicer):
    def __init__(self):
        self.requests = []

    def ReopenContainerLog(self, request, context):
        self.requests.append(request)
        if request.container_id == "gone":
            context.abort(grpc.StatusCode.NOT_FOUND, "container gone not found")
        return api_pb2.ReopenContainerLogResponse()


def test_reopen_container_log_crosses_the_wire():
    servicer = _Reopens()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    api_grpc.add_RuntimeServiceServicer_to_server(servicer, server)
    with tempfile.TemporaryDirectory(prefix="cri-", dir="/tmp") as tmp:
        server.add_insecure_port(f"unix://{tmp}/cri.sock")
        server.start()
        try:
            with CriClient(f"unix://{tmp}/cri.sock", timeout=5) as client:
                client.reopen_container_log("abc")
                with pytest.raises(CriError) as raised:
                    client.reopen_container_log("gone")
        finally:
            server.stop(grace=None).wait()
    assert [r.container_id for r in servicer.requests] == ["abc", "gone"]
    assert raised.value.not_found and raised.value.method == "ReopenContainerLog"
