"""The journal's fsync latency histogram (the monitoring addon's StoreFsyncSlow alert)."""

from store.journal import DurableJournal
from store.metrics import JOURNAL_FSYNC, StoreMetrics


def _count(text):
    line = next(line for line in text.splitlines()
                if line.startswith("steer_store_journal_fsync_seconds_count "))
    return int(line.split()[1])


def test_every_sync_of_appended_entries_is_observed(tmp_path):
    metrics = StoreMetrics(dict)
    before = _count(metrics.render())
    journal = DurableJournal(str(tmp_path / "journal"))
    journal.add(b"one", 1, 1)
    journal.sync()
    journal.sync()                  # nothing pending: no fsync, nothing observed
    journal.add(b"two", 2, 1)
    journal.sync()
    text = metrics.render()
    assert _count(text) == before + 2
    assert "# TYPE steer_store_journal_fsync_seconds histogram" in text
    assert 'steer_store_journal_fsync_seconds_bucket{le="+Inf"}' in text


def test_buckets_are_cumulative():
    from store.metrics import LatencyHistogram
    histogram = LatencyHistogram("x_seconds", "test")
    for seconds in (0.0004, 0.003, 0.7, 9.0):
        histogram.observe(seconds)
    lines = dict(line.rsplit(" ", 1) for line in histogram.render()[2:])
    assert lines['x_seconds_bucket{le="0.0005"}'] == "1"
    assert lines['x_seconds_bucket{le="0.005"}'] == "2"
    assert lines['x_seconds_bucket{le="1"}'] == "3"
    assert lines['x_seconds_bucket{le="+Inf"}'] == "4" == lines["x_seconds_count"]
    assert JOURNAL_FSYNC.name == "steer_store_journal_fsync_seconds"
