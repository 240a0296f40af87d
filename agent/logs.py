"""Container logs on disk in the CRI format, with size rotation, and reading them back.

Each line a container writes is stored as ``<RFC3339Nano time> <stream> F <line>``,
as CRI runtimes write /var/log/pods. A file that grows beyond ``max_bytes`` is
rotated (``0.log`` -> ``0.log.1`` -> ``0.log.2`` ...; ``max_files`` in all). The
reader answers what kubelet's /containerLogs does: tailLines, sinceSeconds /
sinceTime, timestamps, limitBytes, and follow (new lines as they come, across
rotations, until the container exits).
"""

import datetime
import os
import threading
import time

DEFAULT_MAX_BYTES = 10 * 1024 * 1024      # kubelet's containerLogMaxSize
DEFAULT_MAX_FILES = 5                      # kubelet's containerLogMaxFiles


def timestamp(ns=None):
    """RFC 3339 with nanoseconds, UTC (fixed width, as CRI-O writes it)."""
    ns = time.time_ns() if ns is None else ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return base.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def parse_timestamp(text):
    """Seconds since the epoch of an RFC 3339 time (fractions of any length)."""
    text = text.rstrip("Z")
    main, _, fraction = text.partition(".")
    base = datetime.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    return base.timestamp() + (float("0." + fraction) if fraction else 0.0)


def _open_private(path):
    """Open ``path`` to append, created 0600: what a container prints may be a secret."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


class LogWriter:
    """Append CRI-format lines to ``path``, rotating by size; safe across threads."""

    def __init__(self, path, max_bytes=DEFAULT_MAX_BYTES, max_files=DEFAULT_MAX_FILES,
                 clock_ns=time.time_ns):
        self.path, self.max_bytes, self.max_files = path, max_bytes, max(1, max_files)
        self.clock_ns = clock_ns
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._file = _open_private(path)
        self._lock = threading.Lock()

    def write(self, stream, line):
        """Write one line (bytes, without its newline) from ``stream`` (stdout|stderr)."""
        record = f"{timestamp(self.clock_ns())} {stream} F ".encode() + line + b"\n"
        with self._lock:
            self._file.write(record)
            self._file.flush()
            if self._file.tell() >= self.max_bytes:
                self._rotate()

    def _rotate(self):
        """Shift 0.log -> 0.log.1 -> 0.log.2 ..., dropping the oldest beyond max_files."""
        self._file.close()
        if self.max_files == 1:
            os.remove(self.path)
        else:
            oldest = f"{self.path}.{self.max_files - 1}"
            if os.path.exists(oldest):
                os.remove(oldest)
            for index in range(self.max_files - 2, 0, -1):
                if os.path.exists(f"{self.path}.{index}"):
                    os.replace(f"{self.path}.{index}", f"{self.path}.{index + 1}")
            os.replace(self.path, f"{self.path}.1")
        self._file = _open_private(self.path)

    def close(self):
        with self._lock:
            self._file.close()


def files(path, max_files=DEFAULT_MAX_FILES * 4):
    """The existing files of a log, oldest first."""
    rotated = [f"{path}.{i}" for i in range(max_files, 0, -1) if os.path.exists(f"{path}.{i}")]
    return rotated + ([path] if os.path.exists(path) else [])


def parse_line(raw):
    """Split a CRI log line into (time text, stream, message bytes incl. newline)."""
    parts = raw.split(b" ", 3)
    if len(parts) < 4:
        return None, b"stdout", raw
    return parts[0].decode(), parts[1], parts[3]


def _render(raw, timestamps, since):
    stamp, _, message = parse_line(raw)
    if since is not None and stamp is not None and parse_timestamp(stamp) < since:
        return None
    if not message.endswith(b"\n"):
        message += b"\n"
    return (stamp.encode() + b" " + message) if timestamps and stamp else message


class _Limit:
    def __init__(self, limit):
        self.left = limit

    def cut(self, data):
        """Return what may still be sent of ``data`` (None when the limit is reached)."""
        if self.left is None:
            return data
        if self.left <= 0:
            return None
        data, self.left = data[:self.left], self.left - len(data)
        return data


def read(path, tail_lines=None, since=None, timestamps=False, limit_bytes=None, follow=False,
         is_running=lambda: False, poll=0.2, stopped=lambda: False):
    """Return an iterator of the log's rendered bytes; with ``follow`` it goes on until
    the container exits. The files are opened now, so nothing written after this
    call is missed by a follower.
    """
    # Hold the current file open first, so following resumes exactly where reading ended.
    handle = open(path, "rb") if os.path.exists(path) else None
    lines = []
    for name in files(path)[:-1] if handle else files(path):
        with open(name, "rb") as f:
            lines.extend(f.readlines())
    if handle:
        data = handle.read()
        lines.extend(data.splitlines(keepends=True))
        if lines and not lines[-1].endswith(b"\n"):
            handle.seek(-len(lines.pop()), os.SEEK_CUR)     # half-written: follow reads it
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines > 0 else []
    return _emit(path, handle, lines, _Limit(limit_bytes), timestamps, since, follow,
                 is_running, poll, stopped)


def _emit(path, handle, lines, limit, timestamps, since, follow, is_running, poll, stopped):
    try:
        for raw in lines:
            out = _render(raw, timestamps, since)
            if out is not None:
                out = limit.cut(out)
                if out is None:
                    return
                yield out
        if follow:
            yield from _follow(path, handle, timestamps, since, limit, is_running, poll, stopped)
    finally:
        if handle:
            handle.close()


def _follow(path, handle, timestamps, since, limit, is_running, poll, stopped):
    pending = b""
    while not stopped():
        running = is_running()
        chunk = handle.read() if handle else b""
        if chunk:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                out = _render(raw + b"\n", timestamps, since)
                if out is not None:
                    out = limit.cut(out)
                    if out is None:
                        return
                    yield out
            continue
        # Rotated: the name now points at a new file; finish the old one, then switch.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (handle is None or
                                    os.fstat(handle.fileno()).st_ino != current.st_ino):
            if handle:
                handle.close()
            handle, pending = open(path, "rb"), b""
            continue
        if not running:
            return
        time.sleep(poll)
