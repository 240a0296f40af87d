"""Remove unused images when the image filesystem fills up, as kubelet's image GC manager.

Each ``maybe_collect`` lists the runtime's images and notes when each was first
seen and last used (in use: named by a container, by ``in_use()``, or the sandbox
image). It then measures the filesystem that holds the images (the mountpoint
CRI's ImageFsInfo reports, through statvfs): when usage reaches
``high_threshold`` percent it removes unused images, least recently used first,
skipping pinned ones and any first seen less than ``min_age`` seconds ago (a pull
that a container is about to use), until the bytes freed bring usage down to
``low_threshold``. Not finding enough is a FreeDiskSpaceFailed warning on the
Node. Usage is computed as kubelet does, from the filesystem's free space, so
other files on the same disk count too.
"""

import dataclasses
import logging
import os
import re

from agent import imageref

log = logging.getLogger(__name__)


@dataclasses.dataclass
class ImageRecord:
    """What GC remembers of one image (by id)."""
    first_detected: float
    last_used: float = 0.0
    size: int = 0


@dataclasses.dataclass(frozen=True)
class Collection:
    """The outcome of one GC pass (for logs and tests)."""
    usage_percent: int
    capacity: int
    available: int
    bytes_to_free: int = 0
    freed: int = 0
    removed: tuple = ()


def node_reference(node_name):
    """The object Node events are recorded on (kubelet uses the node name as uid)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node_name, "uid": node_name}}


_IMAGE_ID = re.compile(r"(?:sha256:)?[0-9a-f]{64}")


def _normalized(name):
    """A tag or digest reference in containerd's spelling; image ids stay as they are."""
    if _IMAGE_ID.fullmatch(name):
        return name if name.startswith("sha256:") else "sha256:" + name
    try:
        return str(imageref.parse(name))
    except imageref.InvalidReference:
        return name


class ImageGC:
    """Free image space by removing the least recently used unused images."""

    def __init__(self, client, clock, high_threshold=85, low_threshold=80, min_age=120.0,
                 in_use=frozenset, recorder=None, node=None, sandbox_image=None,
                 statvfs=os.statvfs):
        if not 0 <= low_threshold <= high_threshold <= 100:
            raise ValueError(f"image GC thresholds must satisfy 0 <= low ({low_threshold}) "
                             f"<= high ({high_threshold}) <= 100")
        self.client, self.clock = client, clock
        self.high_threshold, self.low_threshold, self.min_age = (
            high_threshold, low_threshold, min_age)
        self.in_use, self.recorder, self.node = in_use, recorder, node
        self.sandbox_image = _normalized(sandbox_image) if sandbox_image else None
        self.statvfs = statvfs
        self.records = {}           # image id -> ImageRecord

    def detect(self, now):
        """Refresh the records from the runtime; return the ids of the images in use now."""
        used_names = set(self.in_use() or ())
        for container in self.client.list_containers():
            used_names.add(container.image_ref)
            used_names.add(container.image.image)
        used_names = {_normalized(name) for name in used_names if name}
        if self.sandbox_image:
            used_names.add(self.sandbox_image)
        in_use, seen = set(), set()
        for image in self.client.list_images():
            seen.add(image.id)
            record = self.records.setdefault(image.id, ImageRecord(first_detected=now))
            record.size = int(image.size)
            names = {image.id, *image.repo_digests, *(_normalized(t) for t in image.repo_tags)}
            if image.pinned or names & used_names:
                record.last_used = now
                in_use.add(image.id)
        for gone in set(self.records) - seen:
            del self.records[gone]
        return in_use

    def filesystem(self):
        """(mountpoint, capacity bytes, available bytes) of the image filesystem."""
        response = self.client.image_fs_info()
        filesystems = list(response.image_filesystems)
        if not filesystems or not filesystems[0].fs_id.mountpoint:
            raise RuntimeError("the runtime reported no image filesystem (ImageFsInfo is empty)")
        mountpoint = filesystems[0].fs_id.mountpoint
        stat = self.statvfs(mountpoint)
        capacity = stat.f_blocks * stat.f_frsize
        available = min(stat.f_bavail * stat.f_frsize, capacity)
        return mountpoint, capacity, available

    def maybe_collect(self):
        """One GC pass: remove images if usage is at or above the high threshold."""
        now = self.clock()
        in_use = self.detect(now)
        mountpoint, capacity, available = self.filesystem()
        if capacity == 0:
            self._warn("InvalidDiskCapacity", "invalid capacity 0 on image filesystem")
            return Collection(0, 0, available)
        usage = 100 - (available * 100) // capacity
        if usage < self.high_threshold:
            return Collection(usage, capacity, available)
        to_free = capacity * (100 - self.low_threshold) // 100 - available
        log.info("mountpoint=%s usage=%d%% high=%d%% msg=image GC freeing bytes=%d",
                 mountpoint, usage, self.high_threshold, to_free)
        freed, removed = self._free(to_free, now, in_use)
        if freed < to_free:
            self._warn("FreeDiskSpaceFailed",
                       f"Failed to garbage collect required amount of images. Attempted to "
                       f"free {to_free} bytes, but only found {freed} bytes eligible to free.")
        return Collection(usage, capacity, available, to_free, freed, tuple(removed))

    def run(self, stop, interval=300.0):
        """Collect every ``interval`` seconds (kubelet: 5 min) until ``stop`` (an Event) is set.

        A failed pass is a warning (ImageGCFailed on the Node), never the end of the loop.
        """
        while not stop.wait(interval):
            try:
                self.maybe_collect()
            except Exception as exc:  # noqa: BLE001 - the runtime may be restarting
                self._warn("ImageGCFailed", f"image garbage collection failed: {exc}")

    def _free(self, to_free, now, in_use):
        """Remove eligible images, least recently used (then oldest) first, until enough."""
        candidates = sorted(((image_id, record) for image_id, record in self.records.items()
                             if image_id not in in_use),
                            key=lambda item: (item[1].last_used, item[1].first_detected))
        freed, removed = 0, []
        for image_id, record in candidates:
            if freed >= to_free:
                break
            if now - record.first_detected < self.min_age:
                continue
            try:
                self.client.remove_image(image_id)
            except Exception as exc:  # noqa: BLE001 - one image failing must not stop the rest
                log.warning("image=%s msg=image GC could not remove error=%r", image_id, exc)
                continue
            del self.records[image_id]
            freed += record.size
            removed.append(image_id)
        return freed, removed

    def _warn(self, reason, message):
        log.warning("reason=%s msg=%s", reason, message)
        if self.recorder is not None and self.node is not None:
            self.recorder.event(self.node, "Warning", reason, message)
