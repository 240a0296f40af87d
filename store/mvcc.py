"""Keep every version of every key, ordered by key, so reads work at any revision.

A version is a tuple ``(mod_revision, create_revision, version, value, lease)``.
A deletion is stored as a tombstone version whose value is ``None``, so a read at
an older revision still finds what the key held then.

Two sorted maps are kept side by side:

* ``_versions``: key -> list of versions, oldest first, tombstones included. It
  answers reads at past revisions and is what compaction trims.
* ``_live``: key -> newest version, for the keys that exist now. It answers reads
  at the current revision without looking at history or deleted keys.

``size`` is the store's size for its quota (etcd's --quota-backend-bytes): the key
and value bytes of every retained version plus ``VERSION_OVERHEAD`` each, kept up
to date on every write and compaction (derived from the state, so equal on every
replica).
"""

from bisect import bisect_right
from itertools import islice

from sortedcontainers import SortedDict

# Positions inside a version tuple.
MOD, CREATE, VERSION, VALUE, LEASE = range(5)
#: Bytes counted per stored version beside its key and value (revisions, lease, index).
VERSION_OVERHEAD = 64


def version_size(key: bytes, version: tuple) -> int:
    """Return what one stored version counts toward the store's size."""
    return len(key) + len(version[VALUE] or b"") + VERSION_OVERHEAD


def prefix_end(prefix: bytes) -> bytes:
    """Return the range_end that selects every key starting with ``prefix``.

    The last byte below 0xff is incremented and everything after it dropped, as
    etcd's clientv3.GetPrefixRangeEnd does; ``b"\\0"`` (every key >= prefix) when
    there is no such byte.
    """
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def key_bounds(key: bytes, range_end: bytes | None) -> tuple[bytes, bytes | None]:
    """Translate etcd's ``(key, range_end)`` into a half-open ``[low, high)``.

    ``high is None`` means unbounded. A single key becomes ``[key, key + b"\\0")``
    because ``key + b"\\0"`` is the smallest key greater than ``key``.
    """
    if not range_end:  # None or b"": the single key, as etcd treats an empty range_end
        return key, key + b"\0"
    if range_end == b"\0":
        return (b"" if key == b"\0" else key), None
    return key, max(key, range_end)  # range_end <= key is an empty range


def in_bounds(key: bytes, low: bytes, high: bytes | None) -> bool:
    """Tell whether ``key`` lies in ``[low, high)``."""
    return low <= key and (high is None or key < high)


def kv_dict(key: bytes, version: tuple, keys_only: bool = False) -> dict:
    """Build the KeyValue record of the spec from a stored version."""
    return {
        "key": key,
        "value": b"" if keys_only else version[VALUE],
        "create_revision": version[CREATE],
        "mod_revision": version[MOD],
        "version": version[VERSION],
        "lease": version[LEASE],
    }


def _mod_revision(version: tuple) -> int:
    return version[MOD]


class KeyIndex:
    """Store the versions of all keys and answer ranges at any retained revision."""

    def __init__(self) -> None:
        self._versions: SortedDict = SortedDict()
        self._live: SortedDict = SortedDict()
        self.size = 0

    def get(self, key: bytes) -> tuple | None:
        """Return the current version of ``key``, or None if it does not exist."""
        return self._live.get(key)

    def put(self, key: bytes, revision: int, value: bytes, lease: int) -> tuple | None:
        """Write a new version of ``key`` at ``revision``; return the previous one."""
        prev = self._live.get(key)
        if prev is None:  # first put after creation or deletion starts a new life
            create, version = revision, 1
        else:
            create, version = prev[CREATE], prev[VERSION] + 1
        new = (revision, create, version, value, lease)
        self._versions.setdefault(key, []).append(new)
        self.size += len(key) + len(value) + VERSION_OVERHEAD
        self._live[key] = new
        return prev

    def delete(self, key: bytes, revision: int) -> tuple | None:
        """Delete ``key`` at ``revision``; return the deleted version or None."""
        prev = self._live.pop(key, None)
        if prev is not None:
            self._versions[key].append((revision, 0, 0, None, 0))
            self.size += len(key) + VERSION_OVERHEAD
        return prev

    def live_keys(self, low: bytes, high: bytes | None) -> list[bytes]:
        """List the existing keys in ``[low, high)``, ascending."""
        return list(self._live.irange(low, high, inclusive=(True, False)))

    def range_now(self, low: bytes, high: bytes | None, limit: int | None) -> tuple[list, int]:
        """Return ``([(key, version)...], count)`` for the current revision.

        ``limit`` caps how many versions are returned (None: all, 0: none, for
        count-only reads). Counting is two bisections and only the returned keys
        are visited, so a limited or count-only range costs O(log n + limit).
        """
        first = self._live.bisect_left(low)
        last = len(self._live) if high is None else self._live.bisect_left(high)
        keys = islice(self._live.irange(low, high, inclusive=(True, False)), limit)
        return [(key, self._live[key]) for key in keys], max(0, last - first)

    def range_at(
        self, revision: int, low: bytes, high: bytes | None, limit: int | None
    ) -> tuple[list, int]:
        """Return ``([(key, version)...], count)`` as the store was at ``revision``.

        Past reads must visit every key in the range (deleted ones included) to
        count them; ``limit`` is as for ``range_now``.
        """
        found, count = [], 0
        for key in self._versions.irange(low, high, inclusive=(True, False)):
            version = self.version_at(key, revision)
            if version is None:
                continue
            count += 1
            if limit is None or len(found) < limit:
                found.append((key, version))
        return found, count

    def version_at(self, key: bytes, revision: int) -> tuple | None:
        """Return the version ``key`` had at ``revision``, None if it did not exist."""
        versions = self._versions.get(key, ())
        index = bisect_right(versions, revision, key=_mod_revision) - 1
        if index < 0 or versions[index][VALUE] is None:
            return None
        return versions[index]

    def compact(self, revision: int) -> None:
        """Forget versions that no read at ``revision`` or later can see.

        A key keeps its versions newer than ``revision`` plus the newest one at or
        below it (that one answers reads at exactly ``revision``), unless that one
        is a tombstone, which no read needs any more.
        """
        for key in list(self._versions):
            versions = self._versions[key]
            newest_old = bisect_right(versions, revision, key=_mod_revision) - 1
            if newest_old < 0:
                continue  # every version is newer than the compaction point
            kept = versions[newest_old:]
            if kept[0][VALUE] is None:
                kept = kept[1:]
            if len(kept) < len(versions):
                self.size -= sum(version_size(key, v) for v in versions[:len(versions) - len(kept)])
            if kept:
                self._versions[key] = kept
            else:
                del self._versions[key]

    def dump(self) -> list:
        """Return ``[[key, [[mod, create, version, value, lease]...]]...]`` by key."""
        return [[key, [list(v) for v in versions]] for key, versions in self._versions.items()]

    @classmethod
    def load(cls, dumped: list) -> "KeyIndex":
        """Rebuild an index from the output of ``dump``."""
        index = cls()
        for key, versions in dumped:
            stored = [tuple(v) for v in versions]
            index._versions[key] = stored
            index.size += sum(version_size(key, v) for v in stored)
            if stored[-1][VALUE] is not None:
                index._live[key] = stored[-1]
        return index
