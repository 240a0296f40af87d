"""CRI-format log files: writing, rotation, tail, since, timestamps, limits, follow."""

import threading
import time

from agent import logs


def _writer(tmp_path, **kw):
    ticks = iter(range(1, 10_000))
    return logs.LogWriter(str(tmp_path / "c" / "0.log"),
                          clock_ns=lambda: 1_700_000_000_000_000_000 + next(ticks) * 10**9, **kw)


def test_lines_carry_rfc3339nano_times(tmp_path):
    writer = _writer(tmp_path)
    writer.write("stdout", b"hello")
    with open(writer.path, "rb") as f:
        assert f.read() == b"2023-11-14T22:13:21.000000000Z stdout F hello\n"
    assert logs.parse_timestamp("2023-11-14T22:13:21.5Z") == 1_700_000_001.5


def test_read_options(tmp_path):
    writer = _writer(tmp_path)
    for n in range(5):
        writer.write("stdout", f"line{n}".encode())
    path = writer.path
    assert b"".join(logs.read(path)) == b"line0\nline1\nline2\nline3\nline4\n"
    assert b"".join(logs.read(path, tail_lines=2)) == b"line3\nline4\n"
    assert b"".join(logs.read(path, tail_lines=0)) == b""
    assert b"".join(logs.read(path, since=1_700_000_004)) == b"line3\nline4\n"
    assert b"".join(logs.read(path, limit_bytes=8)) == b"line0\nli"
    assert b"".join(logs.read(path, tail_lines=1, timestamps=True)) == \
        b"2023-11-14T22:13:25.000000000Z line4\n"


def test_rotation_keeps_max_files_and_reads_across_them(tmp_path):
    writer = _writer(tmp_path, max_bytes=100, max_files=3)
    for n in range(20):
        writer.write("stdout", f"line{n:02d}".encode())
    assert len(logs.files(writer.path)) == 3
    text = b"".join(logs.read(writer.path)).decode().split()
    assert text == sorted(text) and text[-1] == "line19" and len(text) < 20


def test_follow_yields_new_lines_until_the_container_exits(tmp_path):
    writer = _writer(tmp_path, max_bytes=100, max_files=3)
    writer.write("stdout", b"first")
    running = threading.Event()
    running.set()
    got = []

    def follow():
        for chunk in logs.read(writer.path, follow=True, is_running=running.is_set, poll=0.01):
            got.append(chunk)
    reader = threading.Thread(target=follow)
    reader.start()
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:      # the reader is following
        time.sleep(0.01)
    for n in range(4):                  # enough to rotate while following
        writer.write("stdout", f"more{n}".encode())
    running.clear()
    reader.join(10)
    assert not reader.is_alive()
    assert b"".join(got).split() == [b"first", b"more0", b"more1", b"more2", b"more3"]
