"""ImageManager: pull policies, events, backoff, shared pulls, pull secrets; image references."""

import base64
import dataclasses
import json
import threading

import grpc
import pytest

from agent import imageref, images
from agent.images import ImageManager, cri_error_text, go_duration, image_id_from
from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri.client import CriError
from tests.unit.agent.fakes import FakeClock, FakeRecorder, make_pod

BUSYBOX_ID = "sha256:" + "b" * 64


class FakeImageClient:
    """The image half of CriClient: a store of images, pulls scripted per image."""

    def __init__(self, clock):
        self.clock = clock
        self.images = {}            # name as asked -> api.Image
        self.registry = {}          # name -> (id, size) a pull can fetch
        self.pulls = []             # (image, auth) per PullImage call
        self.pull_seconds = 0.0     # fake time a pull takes
        self.gate = None            # threading.Event a pull waits on, if set
        self.logins = None          # required auth dict per image, if any

    def image_status(self, image):
        return self.images.get(image) or next(
            (i for i in self.images.values() if i.id == image), None)

    def pull_image(self, image, auth=None, sandbox_config=None):
        self.pulls.append((image, auth))
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        self.clock.advance(self.pull_seconds)
        if image not in self.registry:
            raise CriError(grpc.StatusCode.NOT_FOUND,
                           f'failed to pull and unpack image "{image}": not found', "PullImage")
        required = (self.logins or {}).get(image)
        if required is not None and (auth is None or auth["username"] != required):
            raise CriError(grpc.StatusCode.UNKNOWN, "401 Unauthorized", "PullImage")
        image_id, size = self.registry[image]
        self.images[image] = api.Image(id=image_id, size=size,
                                       repo_digests=[f"docker.io/library/x@sha256:{'d' * 64}"])
        return image_id


@pytest.fixture
def env():
    clock = FakeClock()
    client = FakeImageClient(clock)
    recorder = FakeRecorder()
    return clock, client, recorder, ImageManager(client, recorder, clock)


def container(image="busybox:1.35", policy=None):
    spec = {"name": "c", "image": image}
    if policy:
        spec["imagePullPolicy"] = policy
    return spec


# -- references and policies ---------------------------------------------------------

@pytest.mark.parametrize("image, name, tag", [
    ("busybox", "docker.io/library/busybox", ""),
    ("busybox:1.35", "docker.io/library/busybox", "1.35"),
    ("library/busybox", "docker.io/library/busybox", ""),
    ("index.docker.io/me/app:v1", "docker.io/me/app", "v1"),
    ("127.0.0.1:5000/hello:1", "127.0.0.1:5000/hello", "1"),
    ("localhost/hello", "localhost/hello", ""),
    ("steer.local/pause:3.9", "steer.local/pause", "3.9"),
])
def test_parse_normalizes_names(image, name, tag):
    ref = imageref.parse(image)
    assert (ref.name, ref.tag) == (name, tag)


@pytest.mark.parametrize("image", ["", "Busybox", "busybox:", "a b", "busybox@sha256:12", "-x/y"])
def test_parse_rejects_invalid_references(image):
    with pytest.raises(imageref.InvalidReference):
        imageref.parse(image)


def test_default_tag_keeps_short_names_short():
    assert imageref.with_default_tag("busybox") == "busybox:latest"
    assert imageref.with_default_tag("busybox:1.35") == "busybox:1.35"
    digest = "busybox@sha256:" + "a" * 64
    assert imageref.with_default_tag(digest) == digest


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.35", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ("busybox:latest@sha256:" + "a" * 64, "Always"),
])
def test_pull_policy_defaults_as_the_api_server(image, policy):
    assert imageref.pull_policy({"image": image}) == policy
    assert imageref.pull_policy({"image": image, "imagePullPolicy": "Never"}) == "Never"


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.015, "15ms"), (1.234, "1.234s"), (2.0, "2s"), (1.5, "1.5s"),
    (65.25, "1m5.25s"), (3600, "1h0m0s"), (0.0004, "0s")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


def test_cri_errors_read_like_grpc_go():
    error = CriError(grpc.StatusCode.NOT_FOUND, "no such image", "PullImage")
    assert cri_error_text(error) == "rpc error: code = NotFound desc = no such image"
    assert cri_error_text(ValueError("plain")) == "plain"


def test_image_id_prefers_repo_digest():
    assert image_id_from(api.Image(id=BUSYBOX_ID)) == BUSYBOX_ID
    assert image_id_from(api.Image(id=BUSYBOX_ID, repo_digests=["r@sha256:1"])) == "r@sha256:1"


# -- policies --------------------------------------------------------------------------

def test_if_not_present_pulls_once_then_reports_present(env):
    clock, client, recorder, manager = env
    client.registry["busybox:1.35"] = (BUSYBOX_ID, 1234)
    client.pull_seconds = 1.234
    result = manager.ensure(make_pod(), container())
    assert result.ok and result.ref == BUSYBOX_ID and result.waiting_reason is None
    assert recorder.events == [
        ("Normal", "Pulling", 'Pulling image "busybox:1.35"'),
        ("Normal", "Pulled", 'Successfully pulled image "busybox:1.35" in 1.234s '
                             "(1.234s including waiting). Image size: 1234 bytes.")]
    recorder.events.clear()
    again = manager.ensure(make_pod(), container())
    assert again.ref == BUSYBOX_ID and len(client.pulls) == 1
    assert recorder.events == [
        ("Normal", "Pulled", 'Container image "busybox:1.35" already present on machine')]


def test_always_pulls_even_when_present(env):
    clock, client, recorder, manager = env
    client.registry["busybox:latest"] = (BUSYBOX_ID, 10)
    pod = make_pod()
    for _ in range(2):
        assert manager.ensure(pod, container("busybox")).ref == BUSYBOX_ID
    assert [image for image, _ in client.pulls] == ["busybox:latest", "busybox:latest"]
    assert recorder.reasons() == ["Pulling", "Pulled", "Pulling", "Pulled"]


def test_never_with_absent_image_waits_with_err_image_never_pull(env):
    clock, client, recorder, manager = env
    result = manager.ensure(make_pod(), container(policy="Never"))
    message = 'Container image "busybox:1.35" is not present with pull policy of Never'
    assert (result.ref, result.waiting_reason, result.waiting_message) == (
        None, "ErrImageNeverPull", message)
    assert result.retry_at > clock()
    assert recorder.events == [("Warning", "ErrImageNeverPull", message),
                               ("Warning", "Failed", "Error: ErrImageNeverPull")]
    assert client.pulls == []


def test_never_with_present_image_uses_it(env):
    clock, client, recorder, manager = env
    client.images["busybox:1.35"] = api.Image(id=BUSYBOX_ID)
    assert manager.ensure(make_pod(), container(policy="Never")).ref == BUSYBOX_ID


def test_invalid_image_name(env):
    clock, client, recorder, manager = env
    result = manager.ensure(make_pod(), container("Bad:Name"))
    assert result.waiting_reason == "InvalidImageName"
    assert result.waiting_message.startswith('Failed to apply default image tag "Bad:Name"')
    assert recorder.reasons() == ["InspectFailed", "Failed"]


def test_inspect_failure_is_image_inspect_error(env):
    clock, client, recorder, manager = env

    def broken(image):
        raise CriError(grpc.StatusCode.UNAVAILABLE, "connection refused", "ImageStatus")
    client.image_status = broken
    result = manager.ensure(make_pod(), container())
    assert result.waiting_reason == "ImageInspectError"
    assert result.waiting_message == ('Failed to inspect image "busybox:1.35": rpc error: '
                                      "code = Unavailable desc = connection refused")


# -- failures and backoff ----------------------------------------------------------------

def test_failed_pull_then_backoff_doubling_to_the_cap(env):
    clock, client, recorder, manager = env
    pod, spec = make_pod(), container("nothere:1")
    first = manager.ensure(pod, spec)
    error = ('rpc error: code = NotFound desc = failed to pull and unpack image '
             '"nothere:1": not found')
    assert (first.waiting_reason, first.waiting_message) == ("ErrImagePull", error)
    assert first.retry_at == clock() + 10
    assert recorder.events == [
        ("Normal", "Pulling", 'Pulling image "nothere:1"'),
        ("Warning", "Failed", f'Failed to pull image "nothere:1": {error}'),
        ("Warning", "Failed", "Error: ErrImagePull")]
    recorder.events.clear()

    clock.advance(1)
    backing_off = manager.ensure(pod, spec)
    assert (backing_off.waiting_reason, backing_off.waiting_message) == (
        "ImagePullBackOff", 'Back-off pulling image "nothere:1"')
    assert backing_off.retry_at == first.retry_at
    assert recorder.events == [("Normal", "BackOff", 'Back-off pulling image "nothere:1"'),
                               ("Warning", "Failed", "Error: ImagePullBackOff")]
    clock.advance(1)
    manager.ensure(pod, spec)
    assert len(recorder.events) == 2, "BackOff events are recorded once per window"
    assert len(client.pulls) == 1

    delays = []
    for _ in range(7):
        clock.now = manager.ensure(pod, spec).retry_at
        result = manager.ensure(pod, spec)
        assert result.waiting_reason == "ErrImagePull"
        delays.append(result.retry_at - clock())
    assert delays == [20, 40, 80, 160, 300, 300, 300]


def test_success_resets_the_backoff(env):
    clock, client, recorder, manager = env
    pod, spec = make_pod(), container("later:1")
    manager.ensure(pod, spec)
    clock.now = manager.ensure(pod, spec).retry_at
    manager.ensure(pod, spec)                                 # second failure: 20 s
    client.registry["later:1"] = ("sha256:" + "1" * 64, 5)
    clock.advance(20)
    assert manager.ensure(pod, spec).ok
    client.images.clear()
    del client.registry["later:1"]
    assert manager.ensure(pod, spec).retry_at == clock() + 10


def test_backoff_is_per_pod(env):
    clock, client, recorder, manager = env
    spec = container("nothere:1")
    manager.ensure(make_pod(), spec)
    assert manager.ensure(make_pod(), spec).waiting_reason == "ErrImagePull"
    assert len(client.pulls) == 2


# -- concurrency ---------------------------------------------------------------------

def _ensure_in_threads(manager, pods, spec, secrets=()):
    results = [None] * len(pods)

    def run(index):
        results[index] = manager.ensure(pods[index], spec, secrets)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pods))]
    for thread in threads:
        thread.start()
    return threads, results


def _wait_for(condition, timeout=5.0):
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not condition():
            if done.wait(0.01):
                raise AssertionError("condition not reached in time")
    finally:
        deadline.cancel()


class CountingEvent(threading.Event):
    """An Event that counts the threads that started waiting on it."""
    waiters = 0

    def wait(self, timeout=None):
        CountingEvent.waiters += 1
        return super().wait(timeout)


def test_two_pods_same_image_share_one_pull(env, monkeypatch):
    clock, client, recorder, manager = env

    @dataclasses.dataclass
    class CountingFlight(images._Flight):
        done: threading.Event = dataclasses.field(default_factory=CountingEvent)
    monkeypatch.setattr(images, "_Flight", CountingFlight)
    monkeypatch.setattr(CountingEvent, "waiters", 0)
    client.registry["busybox:1.35"] = (BUSYBOX_ID, 7)
    client.gate = threading.Event()
    threads, results = _ensure_in_threads(manager, [make_pod(), make_pod(), make_pod()],
                                          container(policy="Always"))
    _wait_for(lambda: len(client.pulls) == 1 and CountingEvent.waiters == 2)
    client.gate.set()
    for thread in threads:
        thread.join(10)
    assert [r.ref for r in results] == [BUSYBOX_ID] * 3
    assert len(client.pulls) == 1
    assert recorder.reasons().count("Pulled") == 3


def test_other_images_pull_while_one_is_stuck(env):
    clock, client, recorder, manager = env
    client.registry["slow:1"] = ("sha256:" + "5" * 64, 1)
    client.registry["fast:1"] = ("sha256:" + "f" * 64, 1)
    gate = threading.Event()
    original = client.pull_image

    def pull(image, auth=None, sandbox_config=None):
        if image == "slow:1":
            assert gate.wait(10)
        return original(image, auth, sandbox_config)
    client.pull_image = pull
    threads, results = _ensure_in_threads(manager, [make_pod()], container("slow:1"))
    _wait_for(lambda: "Pulling" in recorder.reasons())
    assert manager.ensure(make_pod(), container("fast:1")).ok
    gate.set()
    threads[0].join(10)
    assert results[0].ok


# -- pull secrets ----------------------------------------------------------------------

def dockerconfigjson(name, registry, user, password):
    config = {"auths": {registry: {"auth": base64.b64encode(f"{user}:{password}".encode())
                                   .decode()}}}
    return {"metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}


def test_pull_uses_matching_secret_and_server_address(env):
    clock, client, recorder, manager = env
    image = "127.0.0.1:5000/private:1"
    client.registry[image] = ("sha256:" + "9" * 64, 3)
    client.logins = {image: "alice"}
    secrets = [dockerconfigjson("other", "quay.io", "bob", "x"),
               dockerconfigjson("mine", "http://127.0.0.1:5000", "alice", "s3cret")]
    assert manager.ensure(make_pod(), container(image), secrets).ok
    assert client.pulls == [(image, {"username": "alice", "password": "s3cret",
                                     "server_address": "https://127.0.0.1:5000"})]


def test_pull_tries_each_matching_login_and_reports_all_failures(env):
    clock, client, recorder, manager = env
    image = "127.0.0.1:5000/private:1"
    client.registry[image] = ("sha256:" + "9" * 64, 3)
    client.logins = {image: "carol"}
    secrets = [dockerconfigjson("a", "127.0.0.1:5000", "alice", "1"),
               dockerconfigjson("b", "127.0.0.1:5000/private", "bob", "2")]
    result = manager.ensure(make_pod(), container(image), secrets)
    assert [auth["username"] for _, auth in client.pulls] == ["bob", "alice"]
    assert result.waiting_message == ("[rpc error: code = Unknown desc = 401 Unauthorized, "
                                      "rpc error: code = Unknown desc = 401 Unauthorized]")


def test_without_matching_secret_pulls_anonymously(env):
    clock, client, recorder, manager = env
    client.registry["busybox:1.35"] = (BUSYBOX_ID, 1)
    secrets = [dockerconfigjson("q", "quay.io", "bob", "x")]
    assert manager.ensure(make_pod(), container(), secrets).ok
    assert client.pulls == [("busybox:1.35", None)]


def test_broken_secret_fails_the_pull(env):
    clock, client, recorder, manager = env
    secret = {"metadata": {"name": "bad"}, "type": "kubernetes.io/dockerconfigjson",
              "data": {".dockerconfigjson": base64.b64encode(b"{nope").decode()}}
    result = manager.ensure(make_pod(), container(), [secret])
    assert result.waiting_reason == "ErrImagePull"
    assert "pull secret bad: .dockerconfigjson is not valid JSON" in result.waiting_message
    assert client.pulls == []


def test_image_id_of_looks_up_the_repo_digest(env):
    clock, client, recorder, manager = env
    client.registry["busybox:1.35"] = (BUSYBOX_ID, 1)
    ref = manager.ensure(make_pod(), container()).ref
    assert manager.image_id_of(ref) == f"docker.io/library/x@sha256:{'d' * 64}"
    assert manager.image_id_of("sha256:" + "0" * 64) == "sha256:" + "0" * 64
