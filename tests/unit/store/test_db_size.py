"""The store's size for its quota counts every retained version and shrinks on compaction."""

from store.machine import Machine
from store.mvcc import VERSION_OVERHEAD


def put(key, value):
    return {"op": "txn", "compare": [], "failure": [],
            "success": [{"op": "put", "key": key, "value": value}]}


def delete(key):
    return {"op": "txn", "compare": [], "failure": [],
            "success": [{"op": "delete", "key": key}]}


def test_size_counts_versions_and_tombstones_and_compaction_frees_them():
    m = Machine()
    assert m.db_size == 0
    m.apply(put(b"a", b"x" * 100))
    m.apply(put(b"a", b"y" * 50))
    assert m.db_size == (1 + 100 + VERSION_OVERHEAD) + (1 + 50 + VERSION_OVERHEAD)
    m.apply(delete(b"a"))
    m.apply(put(b"b", b"z"))
    full = m.db_size
    assert full == (1 + 100 + 1 + 50 + 1 + 0 + 1 + 1) + 4 * VERSION_OVERHEAD
    m.apply({"op": "compact", "revision": m.revision})
    assert m.db_size == 1 + 1 + VERSION_OVERHEAD, "only b's one version is left"


def test_size_is_rebuilt_from_a_snapshot():
    m = Machine()
    for n in range(20):
        m.apply(put(b"k%d" % (n % 5), b"v" * n))
    m.apply({"op": "compact", "revision": m.revision - 7})
    assert Machine.from_snapshot(m.to_snapshot()).db_size == m.db_size
