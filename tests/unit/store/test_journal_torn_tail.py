"""The durable journal cuts a torn tail on load, and the test-only lazy layer loses unsynced bytes.

A crash mid-append leaves part of the last record (or garbage) at the end of the
file. Reopening keeps every whole record, cuts the rest, and appends go on from
the record boundary. ``store.testing_fs.LazyOs`` is checked here too: what was
written but not synced is not in the file a "rebooted" reader sees.
"""

import os

import pytest

from store import journal as journal_module
from store import testing_fs
from store.journal import MAGIC, RECORD, DurableJournal


def fill(path, count, size=40):
    journal = DurableJournal(path)
    for index in range(1, count + 1):
        journal.add(bytes([index % 256]) * size, index, 1)
    journal.sync()
    journal.close()


def entries(path):
    journal = DurableJournal(path)
    try:
        return [(bytes(command), index, term) for command, index, term in journal]
    finally:
        journal.close()


def record_end(count, size=40):
    return len(MAGIC) + count * (RECORD.size + size)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "raft.journal")


@pytest.mark.parametrize("cut", [1, RECORD.size - 1, RECORD.size, RECORD.size + 39])
def test_a_half_written_last_record_is_cut(path, cut, caplog):
    fill(path, 5)
    with open(path, "r+b") as f:
        f.truncate(record_end(4) + cut)      # the 5th record, torn mid-header or mid-body

    assert [index for _, index, _ in entries(path)] == [1, 2, 3, 4]
    assert os.path.getsize(path) == record_end(4)
    assert "event=journal_torn_tail_cut" in caplog.text


def test_garbage_after_the_last_record_is_cut(path):
    fill(path, 3)
    with open(path, "ab") as f:
        # A header promising more bytes than follow, as a crash mid-write leaves it.
        f.write(RECORD.pack(1000, 0, 4, 1) + b"half a command")

    assert [index for _, index, _ in entries(path)] == [1, 2, 3]
    assert os.path.getsize(path) == record_end(3)


def test_a_last_record_with_a_bad_checksum_is_cut(path):
    fill(path, 3)
    with open(path, "r+b") as f:
        f.seek(record_end(3) - 1)
        f.write(b"\xff")                     # the last byte of the 3rd command flips

    assert [index for _, index, _ in entries(path)] == [1, 2]


def test_appends_after_a_cut_start_on_the_record_boundary(path):
    fill(path, 4)
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x01")
    journal = DurableJournal(path)
    journal.add(b"after-the-cut", 5, 2)
    journal.sync()
    journal.close()

    found = entries(path)
    assert [index for _, index, _ in found] == [1, 2, 3, 4, 5]
    assert found[-1] == (b"after-the-cut", 5, 2)


def test_a_file_that_is_not_a_journal_is_refused(path):
    with open(path, "wb") as f:
        f.write(b"not a journal at all")
    with pytest.raises(RuntimeError, match="not a Steersman journal"):
        DurableJournal(path)


# -- the test-only lazy file layer ------------------------------------------------------
@pytest.fixture
def lazy(monkeypatch):
    """Route the journal through a LazyOs; return it."""
    layer = testing_fs.LazyOs()
    monkeypatch.setattr(journal_module, "_fs", layer)
    return layer


def test_lazy_layer_keeps_appends_in_memory_until_the_sync(path, lazy):
    journal = DurableJournal(path)
    journal.add(b"synced", 1, 1)
    journal.sync()
    journal.add(b"written only", 2, 1)
    # What sync() does, minus its fdatasync: the bytes were written, not synced.
    data = RECORD.pack(12, 0, 2, 1) + b"written only"
    lazy.write(journal._fd, data)
    assert lazy.unsynced_bytes() == len(data)

    # A "power cut": the process's memory is gone, the file has what was synced.
    assert [index for _, index, _ in _reopen_without_layer(path)] == [1]


def test_lazy_layer_with_skip_sync_loses_everything_after_the_cut(path, monkeypatch):
    layer = testing_fs.LazyOs(skip_fdatasync=True)
    monkeypatch.setattr(journal_module, "_fs", layer)
    journal = DurableJournal(path)
    for index in range(1, 4):
        journal.add(b"x" * 10, index, 1)
        journal.sync()
    assert layer.unsynced_bytes() == 3 * (RECORD.size + 10)
    assert _reopen_without_layer(path) == []


def test_lazy_layer_applies_truncates_and_writes_in_order_at_the_sync(path, lazy):
    journal = DurableJournal(path)
    for index in range(1, 6):
        journal.add(bytes([index]) * 8, index, 1)
    journal.sync()
    journal.delete_from(2)                 # keeps entries 1 and 2
    journal.add(b"new third", 3, 2)
    journal.sync()
    journal.close()
    assert [(c, i) for c, i, _ in _reopen_without_layer(path)] == [
        (bytes([1]) * 8, 1), (bytes([2]) * 8, 2), (b"new third", 3)]


def test_lazy_layer_is_off_unless_asked():
    assert not testing_fs.lazy_fs_requested({})
    assert not testing_fs.lazy_fs_requested({testing_fs.SKIP_SYNC_ENV: "1"})
    assert testing_fs.lazy_fs_requested({testing_fs.LAZY_FS_ENV: "1"})
    assert journal_module._fs is os or testing_fs.lazy_fs_requested()


def _reopen_without_layer(path):
    """The entries a freshly started process finds in the file."""
    original = journal_module._fs
    journal_module._fs = os
    try:
        return entries(path)
    finally:
        journal_module._fs = original
