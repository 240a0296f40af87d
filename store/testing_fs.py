"""TEST ONLY: a file layer that loses unsynced writes when the process dies.

A SIGKILL leaves every byte a process wrote in the kernel's page cache, so it
cannot show what a power cut does to data that was written but not synced. Like
Jepsen's lazyfs (or etcd's failpoints), this layer keeps the bytes written to a
file it opened in the process's own memory and writes them to the real file only
at ``fsync``/``fdatasync`` (or ``close``, as the kernel's writeback might). SIGKILL
of a member running over it is then a power cut of that member: whatever it
wrote since its last sync is gone.

``store.journal`` routes its file operations through ``LazyOs`` only when
``STEER_STORE_TEST_LAZY_FS=1`` is in its environment (never by default; it
warns in the log when it does). With ``STEER_STORE_TEST_SKIP_SYNC=1`` as well,
``fdatasync`` does nothing at all: the durability tests run a cluster that way
to prove they catch a journal that forgets to sync. Neither variable has any
effect on its own outside this layer.
"""

import os

LAZY_FS_ENV = "STEER_STORE_TEST_LAZY_FS"
SKIP_SYNC_ENV = "STEER_STORE_TEST_SKIP_SYNC"


def lazy_fs_requested(environ=os.environ):
    """True when the test-only lazy file layer is switched on."""
    return environ.get(LAZY_FS_ENV) == "1"


class _Unsynced:
    """What a file opened through the layer holds beyond its real, durable content."""

    def __init__(self, size):
        self.position = 0
        self.size = size          # the size the process sees
        self.writes = []          # (offset, bytes), in order, not yet on the real file
        self.cut_to = None        # smallest size a pending truncate asked for


class LazyOs:
    """The ``os`` functions the journal uses, holding written bytes until a sync.

    Files opened with ``open`` here are tracked; any other descriptor (a
    directory, a file opened elsewhere) passes straight through to ``os``.
    """

    def __init__(self, skip_fdatasync=False):
        self.skip_fdatasync = skip_fdatasync
        self._files = {}

    def open(self, path, flags, mode=0o777):
        fd = os.open(path, flags, mode)
        if not os.path.isdir(path):
            self._files[fd] = _Unsynced(os.fstat(fd).st_size)
        return fd

    def write(self, fd, data):
        state = self._files.get(fd)
        if state is None:
            return os.write(fd, data)
        data = bytes(data)
        state.writes.append((state.position, data))
        state.position += len(data)
        state.size = max(state.size, state.position)
        return len(data)

    def lseek(self, fd, offset, whence):
        state = self._files.get(fd)
        if state is None:
            return os.lseek(fd, offset, whence)
        base = {os.SEEK_SET: 0, os.SEEK_CUR: state.position, os.SEEK_END: state.size}[whence]
        state.position = base + offset
        return state.position

    def ftruncate(self, fd, length):
        state = self._files.get(fd)
        if state is None:
            return os.ftruncate(fd, length)
        # Pending writes past the cut never reach the file; the cut itself waits too.
        state.writes = [(offset, data[:max(0, length - offset)])
                        for offset, data in state.writes if offset < length]
        state.cut_to = length if state.cut_to is None else min(state.cut_to, length)
        state.size = length
        return None

    def fsync(self, fd):
        self._flush(fd)
        os.fsync(fd)

    def fdatasync(self, fd):
        if self.skip_fdatasync:
            return
        self._flush(fd)
        os.fdatasync(fd)

    def close(self, fd):
        # The kernel may write a closed file back at any time: the model lets it.
        self._flush(fd)
        self._files.pop(fd, None)
        os.close(fd)

    def unsynced_bytes(self):
        """How many written bytes are held in memory, over every tracked file."""
        return sum(len(data) for state in self._files.values() for _, data in state.writes)

    def _flush(self, fd):
        state = self._files.get(fd)
        if state is None:
            return
        if state.cut_to is not None:
            os.ftruncate(fd, state.cut_to)
        for offset, data in state.writes:
            os.pwrite(fd, data, offset)
        if os.fstat(fd).st_size != state.size:
            os.ftruncate(fd, state.size)
        state.writes, state.cut_to = [], None


def make(environ=os.environ):
    """Return a ``LazyOs`` configured from ``environ`` (call only if requested)."""
    return LazyOs(skip_fdatasync=environ.get(SKIP_SYNC_ENV) == "1")
