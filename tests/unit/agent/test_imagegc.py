"""Image GC: thresholds, least recently used first, in-use, pinned and sandbox images kept."""

import os

import pytest

from agent.imagegc import ImageGC, node_reference
from agent.runtime.cri import api_pb2 as api
from tests.unit.agent.fakes import FakeClock, FakeRecorder

MOUNT = "/var/lib/steer/containerd/io.containerd.snapshotter.v1.overlayfs"
GIB = 1024 ** 3


def image_id(char):
    return "sha256:" + char * 64


class FakeGcClient:
    def __init__(self):
        self.images = {}            # id -> api.Image
        self.containers = []
        self.removed = []
        self.failing = set()

    def add(self, char, size, tags=(), pinned=False):
        self.images[image_id(char)] = api.Image(id=image_id(char), size=size,
                                                repo_tags=list(tags), pinned=pinned)

    def list_images(self):
        return list(self.images.values())

    def list_containers(self):
        return list(self.containers)

    def remove_image(self, image):
        if image in self.failing:
            raise RuntimeError("image is busy")
        self.removed.append(image)
        del self.images[image]

    def image_fs_info(self):
        usage = api.FilesystemUsage(fs_id=api.FilesystemIdentifier(mountpoint=MOUNT))
        usage.used_bytes.value = sum(i.size for i in self.images.values())
        return api.ImageFsInfoResponse(image_filesystems=[usage])


class FakeStatvfs:
    """A disk of ``capacity`` bytes with ``available`` free, in 4 KiB blocks."""

    def __init__(self, capacity, available):
        self.capacity, self.available, self.paths = capacity, available, []

    def __call__(self, path):
        self.paths.append(path)
        frsize = 4096
        return os.statvfs_result((frsize, frsize, self.capacity // frsize, 0,
                                  self.available // frsize, 0, 0, 0, 0, 255))


@pytest.fixture
def gc_env():
    clock, client, recorder = FakeClock(), FakeGcClient(), FakeRecorder()
    statvfs = FakeStatvfs(100 * GIB, 50 * GIB)
    gc = ImageGC(client, clock, high_threshold=85, low_threshold=80, min_age=120.0,
                 recorder=recorder, node=node_reference("n1"),
                 sandbox_image="steer.local/pause:3.9", statvfs=statvfs)
    return clock, client, recorder, statvfs, gc


def test_below_the_high_threshold_nothing_is_removed(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    client.add("a", 10 * GIB)
    clock.advance(1000)
    result = gc.maybe_collect()
    assert (result.usage_percent, result.freed, client.removed) == (50, 0, [])
    assert statvfs.paths == [MOUNT]


def test_frees_least_recently_used_until_the_low_threshold(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    for char in "abc":
        client.add(char, 3 * GIB)
    client.containers = [api.Container(image_ref=image_id("a"))]
    gc.maybe_collect()                              # a in use now
    clock.advance(100)
    client.containers = [api.Container(image_ref=image_id("b"))]
    gc.maybe_collect()                              # b in use later; a's last use is older
    clock.advance(100)
    client.containers = []
    statvfs.available = 14 * GIB                    # 86 % used: free 20 - 14 = 6 GiB
    result = gc.maybe_collect()
    assert result.usage_percent == 86 and result.bytes_to_free == 6 * GIB
    # c was never used (last use 0): it goes first, then a (used before b).
    assert client.removed == [image_id("c"), image_id("a")]
    assert result.freed == 6 * GIB and recorder.events == []


def test_in_use_images_young_images_and_protected_ones_stay(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    client.add("p", 1 * GIB, tags=["steer.local/pause:3.9"])
    client.add("k", 1 * GIB, pinned=True)
    client.add("u", 1 * GIB, tags=["docker.io/library/busybox:1.35"])
    client.add("f", 1 * GIB, tags=["docker.io/library/extra:1"])
    client.add("o", 2 * GIB)
    gc.in_use = lambda: {"busybox:1.35"}            # the caller's view, a short name
    gc.maybe_collect()
    clock.advance(200)
    client.add("y", 5 * GIB)                        # first seen now: younger than min_age
    statvfs.available = 10 * GIB
    result = gc.maybe_collect()
    assert sorted(client.removed) == [image_id("f"), image_id("o")]
    assert result.freed == 3 * GIB
    assert recorder.events == [(
        "Warning", "FreeDiskSpaceFailed",
        f"Failed to garbage collect required amount of images. Attempted to free {10 * GIB} "
        f"bytes, but only found {3 * GIB} bytes eligible to free.")]


def test_a_failing_removal_does_not_stop_the_rest(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    client.add("a", 4 * GIB)
    client.add("b", 4 * GIB)
    client.failing.add(image_id("a"))
    gc.maybe_collect()
    clock.advance(500)
    statvfs.available = 15 * GIB                    # 85 %: free 5 GiB, only b can go
    result = gc.maybe_collect()
    assert client.removed == [image_id("b")] and result.freed == 4 * GIB
    assert recorder.reasons() == ["FreeDiskSpaceFailed"]


def test_forgets_images_removed_elsewhere(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    client.add("a", 1)
    gc.maybe_collect()
    del client.images[image_id("a")]
    gc.maybe_collect()
    assert gc.records == {}


def test_zero_capacity_is_reported(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    statvfs.capacity = statvfs.available = 0
    gc.maybe_collect()
    assert recorder.reasons() == ["InvalidDiskCapacity"]


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="thresholds"):
        ImageGC(FakeGcClient(), FakeClock(), high_threshold=70, low_threshold=80)


class ScriptedStop:
    """A stop Event whose wait() answers from a script (False: run a pass)."""

    def __init__(self, answers):
        self.answers, self.waits = list(answers), []

    def wait(self, timeout):
        self.waits.append(timeout)
        return self.answers.pop(0)


def test_run_keeps_going_after_a_failed_pass(gc_env):
    clock, client, recorder, statvfs, gc = gc_env
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("containerd is restarting")
        return frozenset()
    gc.in_use = flaky
    stop = ScriptedStop([False, False, True])
    gc.run(stop, interval=300.0)
    assert len(calls) == 2 and stop.waits == [300.0] * 3
    assert recorder.events == [("Warning", "ImageGCFailed",
                                "image garbage collection failed: containerd is restarting")]
