"""Image pulls and image GC against a real containerd and local registries.

Everything runs inside one node network namespace (tests/support/containerd.py):
containerd, an open docker-registry on 127.0.0.1:5000 and one with htpasswd auth on
127.0.0.1:5001, both inside that namespace (their fixed ports cannot collide with
anything outside it). The authenticated registry serves the same storage as the
open one, so images are pushed once, without credentials.
"""

import base64
import json
import os
import time

import pytest
import yaml

from agent.imagegc import ImageGC
from agent.images import ImageManager
from cli import local_images, registry
from tests.support.containerd import missing_requirements, running_containerd
from tests.unit.agent.fakes import FakeRecorder, make_pod

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))

OPEN = "127.0.0.1:5000"
LOCKED = "127.0.0.1:5001"
USER, PASSWORD = "puller", "pull-secret-pw"


class CountingClient:
    """The real CriClient, counting PullImage calls."""

    def __init__(self, client):
        self._client, self.pulls = client, []

    def pull_image(self, image, auth=None, sandbox_config=None):
        self.pulls.append(image)
        return self._client.pull_image(image, auth=auth, sandbox_config=sandbox_config)

    def __getattr__(self, name):
        return getattr(self._client, name)


class HtpasswdRegistry(registry.Registry):
    """A registry with htpasswd auth serving another registry's storage."""

    def __init__(self, base_dir, addr, netns, storage, htpasswd):
        super().__init__(base_dir, addr, netns=netns)
        self.auth_config = os.path.join(self.base_dir, "auth-config.yml")
        config = {"version": 0.1, "log": {"level": "info"},
                  "storage": {"filesystem": {"rootdirectory": storage}},
                  "http": {"addr": addr, "secret": os.urandom(16).hex()},
                  "auth": {"htpasswd": {"realm": "steer-test", "path": htpasswd}}}
        os.makedirs(self.base_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.auth_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f)

    def argv(self):
        return registry.in_netns([registry.REGISTRY_BINARY, "serve", self.auth_config],
                                 self.netns)


def write_htpasswd(path):
    """An htpasswd file with one bcrypt entry; None when bcrypt is not installed."""
    try:
        import bcrypt
    except ImportError:
        return None
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{USER}:{digest}\n")
    return path


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """containerd with pause and hello imported, busybox pushed to the open registry."""
    base = tmp_path_factory.mktemp("pulls")
    with running_containerd(base / "ctd", images=("pause", "hello")) as handle:
        open_registry = registry.Registry(str(base / "open"), OPEN, netns=handle.netns)
        locked = None
        try:
            open_registry.start()
            busybox = local_images.build_busybox()
            registry.push(busybox, OPEN, "busybox:1.35", netns=handle.netns)
            htpasswd = write_htpasswd(str(base / "htpasswd"))
            if htpasswd is not None:
                locked = HtpasswdRegistry(str(base / "locked"), LOCKED, handle.netns,
                                          os.path.join(open_registry.base_dir, "storage"),
                                          htpasswd)
                locked.start()
            handle.busybox = busybox
            handle.locked = locked
            yield handle
        finally:
            if locked is not None:
                locked.stop()
            open_registry.stop()


@pytest.fixture
def manager(node):
    client, recorder = CountingClient(node.client), FakeRecorder()
    # A long backoff: the second attempt right after a failure is inside it however slow
    # this machine is.
    return ImageManager(client, recorder, time.time, backoff_base=300.0), client, recorder


def spec(image, policy):
    return {"name": "c", "image": image, "imagePullPolicy": policy}


def test_if_not_present_pulls_once_then_finds_it(node, manager):
    images, client, recorder = manager
    image = f"{OPEN}/busybox:1.35"
    first = images.ensure(make_pod(), spec(image, "IfNotPresent"))
    assert first.ok, first
    assert first.ref == node.busybox.image_id
    assert recorder.reasons() == ["Pulling", "Pulled"]
    pulled = recorder.events[1][2]
    assert pulled.startswith(f'Successfully pulled image "{image}" in ')
    assert "including waiting). Image size: " in pulled and not pulled.endswith(" 0 bytes.")
    recorder.events.clear()
    second = images.ensure(make_pod(), spec(image, "IfNotPresent"))
    assert second.ref == first.ref and client.pulls == [image]
    assert recorder.events == [
        ("Normal", "Pulled", f'Container image "{image}" already present on machine')]
    assert images.image_id_of(first.ref).startswith(f"{OPEN}/busybox@sha256:")


def test_missing_image_is_err_image_pull_then_backoff(node, manager):
    images, client, recorder = manager
    image, pod = f"{OPEN}/nothere:1", make_pod()
    first = images.ensure(pod, spec(image, "IfNotPresent"))
    assert first.waiting_reason == "ErrImagePull"
    assert first.waiting_message.startswith("rpc error: code = NotFound desc = ")
    assert recorder.reasons() == ["Pulling", "Failed", "Failed"]
    assert recorder.events[1][2] == f'Failed to pull image "{image}": {first.waiting_message}'
    assert recorder.events[2][2] == "Error: ErrImagePull"
    recorder.events.clear()
    second = images.ensure(pod, spec(image, "IfNotPresent"))
    assert (second.waiting_reason, second.waiting_message) == (
        "ImagePullBackOff", f'Back-off pulling image "{image}"')
    assert recorder.events == [("Normal", "BackOff", f'Back-off pulling image "{image}"'),
                               ("Warning", "Failed", "Error: ImagePullBackOff")]
    assert client.pulls == [image]


def test_never_with_absent_image(node, manager):
    images, client, recorder = manager
    image = f"{OPEN}/busybox:never-pulled"
    result = images.ensure(make_pod(), spec(image, "Never"))
    assert result.waiting_reason == "ErrImageNeverPull"
    assert result.waiting_message == (
        f'Container image "{image}" is not present with pull policy of Never')
    assert client.pulls == []


def test_imported_image_with_never(node, manager):
    images, client, recorder = manager
    result = images.ensure(make_pod(), spec(local_images.HELLO_IMAGE, "Never"))
    assert result.ok and client.pulls == []


def _secret(registry_location, user, password):
    config = {"auths": {registry_location: {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}
    return {"metadata": {"name": "regcred", "namespace": "default"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}


def test_pull_secret_opens_an_authenticated_registry(node, manager):
    if node.locked is None:
        pytest.skip("python bcrypt is not installed: cannot write a docker-registry htpasswd")
    images, client, recorder = manager
    image = f"{LOCKED}/busybox:1.35"
    anonymous = images.ensure(make_pod(), spec(image, "Always"))
    assert anonymous.waiting_reason == "ErrImagePull", anonymous
    assert "401 Unauthorized" in anonymous.waiting_message
    wrong = images.ensure(make_pod(), spec(image, "Always"), [_secret(LOCKED, USER, "nope")])
    assert wrong.waiting_reason == "ErrImagePull", wrong
    assert "401 Unauthorized" in wrong.waiting_message
    assert client.pulls == [image, image]
    right = images.ensure(make_pod(), spec(image, "Always"),
                          [_secret(f"http://{LOCKED}", USER, PASSWORD)])
    assert right.ok, right
    assert right.ref == node.busybox.image_id


class FullDisk:
    """statvfs of the real image filesystem, but reporting it ``percent`` full."""

    def __init__(self, percent):
        self.percent, self.paths = percent, []

    def __call__(self, path):
        self.paths.append(path)
        real = os.statvfs(path)
        free = real.f_blocks * (100 - self.percent) // 100
        return os.statvfs_result((real.f_bsize, real.f_frsize, real.f_blocks, free, free,
                                  real.f_files, real.f_ffree, real.f_favail, real.f_flag,
                                  real.f_namemax))


def test_gc_removes_the_unused_image_and_keeps_used_and_sandbox(node, manager):
    images, client, recorder = manager
    busybox = images.ensure(make_pod(), spec(f"{OPEN}/busybox:1.35", "IfNotPresent"))
    assert busybox.ok
    hello = node.client.image_status(local_images.HELLO_IMAGE)
    pause = node.client.image_status(local_images.PAUSE_IMAGE)
    assert hello is not None and pause is not None

    quiet = ImageGC(node.client, time.time, min_age=0.0, in_use=lambda: {busybox.ref},
                    sandbox_image=local_images.PAUSE_IMAGE)
    assert quiet.maybe_collect().removed == ()           # the real disk: below 85 %

    full = FullDisk(95)
    events = FakeRecorder()
    gc = ImageGC(node.client, time.time, min_age=0.0, in_use=lambda: {busybox.ref},
                 sandbox_image=local_images.PAUSE_IMAGE, statvfs=full, recorder=events,
                 node={"kind": "Node", "metadata": {"name": "n1", "uid": "n1"}})
    result = gc.maybe_collect()
    assert os.path.isdir(full.paths[0])
    assert result.removed == (hello.id,)
    remaining = {image.id for image in node.client.list_images()}
    assert hello.id not in remaining and {busybox.ref, pause.id} <= remaining
    # Still 95 % "full": nothing else may go, and the Node hears about it.
    assert events.reasons() == ["FreeDiskSpaceFailed"]
