"""Append audit events to a file, one JSON object a line, rotating it by size.

What kube-apiserver's --audit-log-path, --audit-log-maxsize and
--audit-log-maxbackup do: when the file would grow past ``max_size_mb`` it is
renamed to ``<name>-<UTC time><ext>`` beside it and a new one is started; only the
newest ``max_backups`` renamed files are kept (0: all). Files are 0600 in a
directory made 0700.

Every gunicorn worker appends to the same file (O_APPEND: a line is one write),
so rotation happens under an flock on ``<path>.lock``, and a writer that finds the
path now names another file (a sibling rotated it) reopens it before writing.
"""

import fcntl
import logging
import os
import sys
import threading
import time

log = logging.getLogger("steer.audit")

MEBIBYTE = 1024 * 1024


class AuditLog:
    """A size-rotated append-only file of lines; ``write(line)`` never raises."""

    def __init__(self, path, max_size_mb=100, max_backups=0, clock=time.time):
        self.path = path
        self.max_bytes = int(max_size_mb * MEBIBYTE) if max_size_mb else 0
        self.max_backups = max_backups
        self.clock = clock
        self._lock = threading.Lock()
        self._fd = None
        self._inode = None
        if path != "-":
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, mode=0o700, exist_ok=True)
            self._open()

    def write(self, line):
        """Append one line (bytes, no newline); a failure is logged, never raised."""
        data = line + b"\n"
        if self.path == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return
        try:
            with self._lock:
                self._follow()
                if self.max_bytes and os.fstat(self._fd).st_size + len(data) > self.max_bytes:
                    self._rotate(len(data))
                os.write(self._fd, data)
        except OSError as exc:
            log.error("event=audit_write_failed path=%s error=%r", self.path, str(exc))

    def close(self):
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    # -- files ------------------------------------------------------------------------
    def _open(self):
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._inode = os.fstat(self._fd).st_ino

    def _follow(self):
        """Reopen the path if another process rotated it away from our descriptor."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = None
        if inode != self._inode:
            self._open()

    def _rotate(self, incoming):
        lock = os.open(self.path + ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # Another worker may have rotated while we waited for the lock.
            self._follow()
            if os.fstat(self._fd).st_size + incoming <= self.max_bytes:
                return
            if os.fstat(self._fd).st_size:
                os.rename(self.path, self._backup_name())
            self._open()
            self._prune()
        finally:
            os.close(lock)

    def _backup_name(self):
        base, ext = os.path.splitext(self.path)
        now = self.clock()
        stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime(now))
        name = f"{base}-{stamp}.{int(now * 1000) % 1000:03d}{ext}"
        n = 1
        while os.path.exists(name):     # two rotations in one millisecond
            name = f"{base}-{stamp}.{int(now * 1000) % 1000:03d}-{n}{ext}"
            n += 1
        return name

    def backups(self):
        """The rotated files, oldest first."""
        directory = os.path.dirname(os.path.abspath(self.path))
        base, ext = os.path.splitext(os.path.basename(self.path))
        found = [f for f in os.listdir(directory)
                 if f.startswith(base + "-") and f.endswith(ext) and f != os.path.basename(self.path)
                 and not f.endswith(".lock")]
        return [os.path.join(directory, f) for f in sorted(found)]

    def _prune(self):
        if not self.max_backups:
            return
        for old in self.backups()[:-self.max_backups]:
            try:
                os.remove(old)
            except FileNotFoundError:
                pass
