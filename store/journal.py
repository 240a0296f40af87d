"""Durable Raft journal: log entries, term and vote on disk before anyone relies on them.

PySyncObj's own file journal writes through mmap and never syncs, so an
acknowledged write can vanish in a power cut. This journal appends records to a
plain file and makes them durable with one ``fdatasync`` for every batch of entries
appended since the last sync (``sync()`` is called before any Raft message leaves
the node and at the end of every tick), so concurrent writes share one disk flush.

Record layout: ``length:u32 crc32:u32 index:u64 term:u64 command`` (big-endian),
after an 8-byte magic. A torn record at the end (a crash mid-write) fails its CRC
and is cut off on load; it was never acknowledged, because it was never synced.

The Raft library reaches it through ``store.pysyncobj_compat``, which maps its
journal interface onto these methods.

Every file operation that makes something durable goes through ``_fs``: the
``os`` module, or, only when a test sets ``STEER_STORE_TEST_LAZY_FS=1``, the
test-only ``store.testing_fs.LazyOs``, which drops unsynced writes when the
process is killed (a simulated power cut).
"""

import json
import logging
import os
import struct
import time
import zlib

from store.metrics import JOURNAL_FSYNC

log = logging.getLogger("steer.store.journal")

MAGIC = b"STEERJ1\n"
RECORD = struct.Struct(">IIQQ")


def _file_layer():
    """Return ``os``, or the test-only lazy layer when the environment asks for it."""
    from store import testing_fs
    return testing_fs.make() if testing_fs.lazy_fs_requested() else os


_fs = _file_layer()


def fsync_dir(path):
    """Make a rename or create inside ``path`` durable."""
    fd = _fs.open(path, os.O_RDONLY)
    try:
        _fs.fsync(fd)
    finally:
        _fs.close(fd)


def write_atomically(path, data):
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file."""
    tmp = path + ".tmp"
    fd = _fs.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[_fs.write(fd, view):]
        _fs.fsync(fd)
    finally:
        _fs.close(fd)
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


class DurableJournal:
    """Keep the Raft log in memory and append it to a synced file."""

    def __init__(self, path, dump_path=None):
        self.path = path
        self._dump_path = dump_path
        self._meta_path = path + ".meta"
        self._entries = []      # (command, index, term)
        self._ends = []         # file offset just past each entry's record
        self._pending = bytearray()
        self._meta = self._load_meta()
        self._meta_dirty = False
        if _fs is not os:
            log.warning("event=test_lazy_fs_active skip_fdatasync=%s detail=\"TEST ONLY: "
                        "unsynced journal writes are held in memory and lost if the process "
                        "dies\"", _fs.skip_fdatasync)
        self._load()

    # -- loading -------------------------------------------------------------
    def _load_meta(self):
        try:
            with open(self._meta_path, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise RuntimeError(f"journal meta file {self._meta_path} is corrupt: {exc}") from None

    def _load(self):
        if not os.path.exists(self.path):
            write_atomically(self.path, MAGIC)
        with open(self.path, "rb") as f:
            data = f.read()
        if not data.startswith(MAGIC):
            raise RuntimeError(f"{self.path} is not a Steersman journal (bad magic)")
        offset = len(MAGIC)
        while offset + RECORD.size <= len(data):
            length, crc, index, term = RECORD.unpack_from(data, offset)
            start = offset + RECORD.size
            command = data[start:start + length]
            if len(command) < length or zlib.crc32(command) != crc:
                break
            offset = start + length
            self._entries.append((command, index, term))
            self._ends.append(offset)
        self._fd = _fs.open(self.path, os.O_RDWR)
        # Cut a torn tail so the next append starts on a record boundary.
        if offset < len(data):
            log.warning("event=journal_torn_tail_cut path=%s offset=%d bytes_cut=%d "
                        "records_kept=%d", self.path, offset, len(data) - offset,
                        len(self._entries))
            _fs.ftruncate(self._fd, offset)
            _fs.fsync(self._fd)
        self._size = offset
        _fs.lseek(self._fd, offset, os.SEEK_SET)

    # -- the Raft log ---------------------------------------------------------
    def add(self, command, idx, term):
        command = bytes(command)
        record = RECORD.pack(len(command), zlib.crc32(command), idx, term) + command
        self._pending += record
        self._entries.append((command, idx, term))
        self._ends.append(self._size + len(self._pending))

    def clear(self):
        # A cleared journal is followed by a freshly installed dump: make the dump
        # durable before the entries it replaces disappear.
        # PySyncObj renames a received dump into place without syncing the
        # directory: sync it too, or a power cut could bring back the old dump
        # next to an empty journal.
        if self._dump_path and os.path.exists(self._dump_path):
            with open(self._dump_path, "rb") as f:
                os.fsync(f.fileno())
            fsync_dir(os.path.dirname(os.path.abspath(self._dump_path)))
        self._pending.clear()
        self._entries = []
        self._ends = []
        _fs.ftruncate(self._fd, len(MAGIC))
        _fs.lseek(self._fd, len(MAGIC), os.SEEK_SET)
        _fs.fsync(self._fd)
        self._size = len(MAGIC)

    def delete_from(self, position):
        """Drop the entries from ``position`` (a list position, not a log index) on."""
        self.sync()
        if position >= len(self._entries):
            return
        cut = self._ends[position - 1] if position > 0 else len(MAGIC)
        del self._entries[position:]
        del self._ends[position:]
        _fs.ftruncate(self._fd, cut)
        _fs.lseek(self._fd, cut, os.SEEK_SET)
        _fs.fsync(self._fd)
        self._size = cut

    def delete_to(self, position):
        """Drop the entries before ``position`` after a dump: rewrite the file atomically."""
        self.sync()
        kept = self._entries[position:]
        if self._dump_path and os.path.exists(self._dump_path):
            with open(self._dump_path, "rb") as f:
                os.fsync(f.fileno())
        body = bytearray(MAGIC)
        ends = []
        for command, index, term in kept:
            body += RECORD.pack(len(command), zlib.crc32(command), index, term) + command
            ends.append(len(body))
        _fs.close(self._fd)
        write_atomically(self.path, bytes(body))
        self._fd = _fs.open(self.path, os.O_RDWR)
        _fs.lseek(self._fd, len(body), os.SEEK_SET)
        self._entries = kept
        self._ends = ends
        self._size = len(body)

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self):
        return len(self._entries)

    def close(self):
        """Sync everything and close the file."""
        self.sync()
        self._store_meta()
        _fs.close(self._fd)

    # -- term, vote and commit index -----------------------------------------
    def set_commit_index(self, index):
        # Losing the newest commit index is harmless (the leader repeats it), so it
        # is written lazily, once a second.
        self._meta["commit"] = index
        self._meta_dirty = True

    def commit_index(self):
        return self._meta.get("commit", 1)

    def set_term(self, term, voted_for):
        # Raft requires term and vote on disk before a vote is sent or granted.
        self._meta["term"] = term
        self._meta["vote"] = voted_for
        self._store_meta()

    def term(self):
        return self._meta.get("term", 0)

    def voted_for(self):
        return self._meta.get("vote")

    def every_second(self):
        """Write a commit index set since the last call."""
        if self._meta_dirty:
            self._store_meta()

    # -- durability ----------------------------------------------------------
    def sync(self):
        """Write and fdatasync every entry appended since the last call."""
        if not self._pending:
            return
        data = bytes(self._pending)
        self._pending.clear()
        view = memoryview(data)
        while view:
            written = _fs.write(self._fd, view)
            view = view[written:]
        started = time.perf_counter()
        _fs.fdatasync(self._fd)
        JOURNAL_FSYNC.observe(time.perf_counter() - started)
        self._size += len(data)

    def _store_meta(self):
        write_atomically(self._meta_path, json.dumps(self._meta).encode())
        self._meta_dirty = False
