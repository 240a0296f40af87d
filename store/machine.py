"""Apply store commands: the pure, deterministic MVCC state machine of Steersman.

This is the only place that decides what a command does; the contract is
store/MACHINE_SPEC.md. Every replica applies the same commands in the same order
and must end in the same state, so there is no I/O, clock, thread or randomness
here, and ``apply`` never raises (an exception inside a replicated PySyncObj
method would freeze the node): every failure is an error result.

Results, events and snapshots share structure with the machine's own state, so
treat them as read-only (event dicts are copied at the top level, so stripping
``prev_kv`` from one is safe).
"""

from bisect import bisect_left, bisect_right

from store.dedupe import RequestCache, request_id
from store.mvcc import LEASE, KeyIndex, in_bounds, key_bounds, kv_dict, prefix_end
from store.txn import (
    MAX_VALUE_BYTES,
    CommandError,
    check_range_args,
    check_txn,
    compare_holds,
    invalid,
    require_bytes,
    require_int,
    require_str,
)

__all__ = ["Machine", "prefix_end"]

SNAPSHOT_FORMAT = 1


def _history_revision(entry: tuple) -> int:
    return entry[0]


def _lease_not_found(lease_id: int, where: str) -> CommandError:
    return CommandError("lease_not_found", f"{where}: lease {lease_id} does not exist "
                        f"(never granted, revoked or expired); grant a new lease")


class Machine:
    """Hold the key-value store, leases and members, and apply commands to them."""

    MAX_VALUE_BYTES = MAX_VALUE_BYTES

    def __init__(self) -> None:
        self.revision = 1
        self.compact_revision = 0
        self._index = KeyIndex()
        self._history: list[tuple[int, list[dict]]] = []  # (revision, events), ascending
        self._lease_ttl: dict[int, int] = {}
        self._lease_keys: dict[int, set[bytes]] = {}
        self._next_lease_id = 1
        self._members: dict[str, dict] = {}
        self._requests = RequestCache()

    # ----------------------------------------------------------------- apply

    def apply(self, command: dict) -> tuple[dict, list[dict]]:
        """Apply one command; return ``(result, events)``. Never raises."""
        try:
            result, events = self._dispatch(command)
        except CommandError as exc:
            return exc.result(), []
        except Exception as exc:  # a bug must not freeze the Raft node; report it instead
            message = (f"command could not be applied ({type(exc).__name__}: {exc}); "
                       f"check its shape against store/MACHINE_SPEC.md")
            return invalid(message).result(), []
        return result, [dict(event) for event in events]

    def apply_batch(self, commands: list) -> list[tuple[dict, list[dict]]]:
        """Apply a batch's commands in order, each as ``apply`` would; never raises.

        Each command takes its own revision(s) and gets its own result; one that
        fails changes nothing and does not affect the others.
        """
        if not isinstance(commands, list):
            return [self.apply(commands)]
        return [self.apply(command) for command in commands]

    def _dispatch(self, command) -> tuple[dict, list[dict]]:
        if not isinstance(command, dict):
            raise invalid(f"a command must be a dict like {{'op': 'txn', ...}}, got {command!r}")
        name = command.get("op")
        if not isinstance(name, str):
            raise invalid(f"command 'op' must be a str naming the command, got {name!r}")
        handler = self._HANDLERS.get(name)
        if handler is None:
            raise CommandError("unknown_op", f"unknown command op {name!r}; "
                               f"use one of {sorted(self._HANDLERS)}")
        request = request_id(command, name)
        if request is not None:
            remembered = self._requests.lookup(*request)
            if remembered is not None:  # a retry: answer as the first time, change nothing
                return remembered, []
        result, events = handler(self, command)
        if request is not None:  # only successes get here; a failed retry is re-evaluated
            self._requests.remember(*request, result)
        return result, events

    def _commit(self, revision: int, events: list[dict]) -> None:
        """Make ``revision`` current if anything was written under it."""
        if events:
            self.revision = revision
            self._history.append((revision, events))

    # ------------------------------------------------------------------ txn

    def _txn(self, command: dict) -> tuple[dict, list[dict]]:
        compares, success, failure = check_txn(command)
        succeeded = all(compare_holds(c, self._index.get(c["key"])) for c in compares)
        ops = success if succeeded else failure
        for op in ops:
            if op["op"] == "put" and op["lease"] and op["lease"] not in self._lease_ttl:
                raise _lease_not_found(op["lease"], "txn put")
        # Validation is over: from here on nothing may fail.
        revision, events = self.revision + 1, []
        responses = [self._OPS[op["op"]](self, op, revision, events) for op in ops]
        self._commit(revision, events)
        return {"revision": self.revision, "succeeded": succeeded, "responses": responses}, events

    def _op_put(self, op: dict, revision: int, events: list) -> dict:
        key = op["key"]
        prev = self._index.put(key, revision, op["value"], op["lease"])
        self._move_lease(key, prev[LEASE] if prev else 0, op["lease"])
        prev_kv = kv_dict(key, prev) if prev else None
        events.append({"type": "put", "kv": kv_dict(key, self._index.get(key)),
                       "prev_kv": prev_kv})
        return {"op": "put", "prev_kv": prev_kv if op["prev_kv"] else None}

    def _op_delete(self, op: dict, revision: int, events: list) -> dict:
        keys = self._index.live_keys(*key_bounds(op["key"], op["range_end"]))
        prev_kvs = [self._remove(key, revision, events) for key in keys]
        return {"op": "delete", "deleted": len(keys),
                "prev_kvs": prev_kvs if op["prev_kv"] else []}

    def _op_range(self, op: dict, revision: int, events: list) -> dict:
        # As in etcd, a range after a write in the same txn sees that write.
        return self._read(op, revision if events else self.revision)

    def _remove(self, key: bytes, revision: int, events: list) -> dict:
        """Delete an existing key, record its event and return its previous kv."""
        prev = self._index.delete(key, revision)
        self._move_lease(key, prev[LEASE], 0)
        prev_kv = kv_dict(key, prev)
        tombstone = {"key": key, "value": b"", "create_revision": 0,
                     "mod_revision": revision, "version": 0, "lease": 0}
        events.append({"type": "delete", "kv": tombstone, "prev_kv": prev_kv})
        return prev_kv

    def _move_lease(self, key: bytes, old: int, new: int) -> None:
        """Keep each lease's key set in step with the lease recorded on the key."""
        if old == new:
            return
        if old:
            self._lease_keys[old].discard(key)
        if new:
            self._lease_keys[new].add(key)

    # ---------------------------------------------------------------- leases

    def _lease_grant(self, command: dict) -> tuple[dict, list]:
        ttl = require_int(command, "ttl", "lease_grant", minimum=1)
        lease_id = self._next_lease_id
        self._next_lease_id += 1
        self._lease_ttl[lease_id] = ttl
        self._lease_keys[lease_id] = set()
        return {"revision": self.revision, "id": lease_id, "ttl": ttl}, []

    def _lease_revoke(self, command: dict) -> tuple[dict, list]:
        lease_id = self._existing_lease(command, "lease_revoke")
        revision, events = self.revision + 1, []
        for key in sorted(self._lease_keys[lease_id]):  # sorted: same event order everywhere
            self._remove(key, revision, events)
        del self._lease_ttl[lease_id], self._lease_keys[lease_id]
        self._commit(revision, events)
        return {"revision": self.revision}, events

    def _lease_keepalive(self, command: dict) -> tuple[dict, list]:
        lease_id = self._existing_lease(command, "lease_keepalive")
        return {"revision": self.revision, "id": lease_id, "ttl": self._lease_ttl[lease_id]}, []

    def _existing_lease(self, command: dict, where: str) -> int:
        lease_id = require_int(command, "id", where, minimum=-(1 << 63))
        if lease_id not in self._lease_ttl:
            raise _lease_not_found(lease_id, where)
        return lease_id

    # ------------------------------------------------------- compact and misc

    def _compact(self, command: dict) -> tuple[dict, list]:
        target = require_int(command, "revision", "compact", minimum=-(1 << 63))
        if target <= self.compact_revision:
            raise self._compacted(f"compact: revision {target} is already compacted; "
                                  f"compact to a revision above {self.compact_revision}")
        if target > self.revision:
            raise CommandError("future_revision", f"compact: revision {target} is newer than "
                               f"the current revision {self.revision}; compact an older one")
        self._index.compact(target)
        del self._history[:bisect_right(self._history, target, key=_history_revision)]
        self.compact_revision = target
        return {"revision": self.revision, "compact_revision": target}, []

    def _compacted(self, message: str) -> CommandError:
        return CommandError("compacted", message, compact_revision=self.compact_revision)

    def _barrier(self, command: dict) -> tuple[dict, list]:
        return {"revision": self.revision}, []

    def _member_set(self, command: dict) -> tuple[dict, list]:
        peer = require_str(command, "peer", "member_set")
        info = {"name": require_str(command, "name", "member_set"),
                "client": require_str(command, "client", "member_set")}
        self._members[peer] = info
        return {"revision": self.revision}, []

    def _member_del(self, command: dict) -> tuple[dict, list]:
        self._members.pop(require_str(command, "peer", "member_del"), None)
        return {"revision": self.revision}, []

    _HANDLERS = {
        "txn": _txn, "lease_grant": _lease_grant, "lease_revoke": _lease_revoke,
        "lease_keepalive": _lease_keepalive, "compact": _compact, "barrier": _barrier,
        "member_set": _member_set, "member_del": _member_del,
    }
    _OPS = {"put": _op_put, "delete": _op_delete, "range": _op_range}

    @property
    def db_size(self) -> int:
        """Bytes of every retained key version, for the quota (store/mvcc.py ``size``)."""
        return self._index.size

    # ----------------------------------------------------------------- reads

    def range(self, key, range_end=None, revision=0, limit=0,
              keys_only=False, count_only=False) -> dict:
        """Read keys at ``revision`` (0: the current one); return a result dict."""
        try:
            args = check_range_args(key, range_end, limit, keys_only, count_only, "range")
            revision = require_int({"revision": revision}, "revision", "range")
            self._check_readable(revision, "range")
            return self._read(args, revision or self.revision)
        except CommandError as exc:
            return exc.result()
        except Exception as exc:  # a read must not crash the server either
            return invalid(f"range failed ({type(exc).__name__}: {exc})").result()

    def _check_readable(self, revision: int, where: str) -> None:
        if revision > self.revision:
            raise CommandError("future_revision", f"{where}: revision {revision} is newer "
                               f"than the current revision {self.revision}; wait or read at 0")
        if 0 < revision < self.compact_revision:
            raise self._compacted(f"{where}: revision {revision} was compacted away; read at "
                                  f"{self.compact_revision} or later")

    def _read(self, args: dict, revision: int) -> dict:
        """Run a validated range at a readable ``revision``."""
        low, high = key_bounds(args["key"], args["range_end"])
        limit = 0 if args["count_only"] else (args["limit"] or None)
        if revision >= self.revision:  # now, or inside a txn that has already written
            found, count = self._index.range_now(low, high, limit)
        else:
            found, count = self._index.range_at(revision, low, high, limit)
        kvs = [kv_dict(key, version, args["keys_only"]) for key, version in found]
        more = bool(args["limit"]) and not args["count_only"] and count > args["limit"]
        return {"revision": revision, "kvs": kvs, "count": count, "more": more}

    def events_since(self, start_revision, key, range_end=None) -> dict:
        """Return the history events of revisions >= ``start_revision`` in the range."""
        try:
            start = require_int({"start_revision": start_revision}, "start_revision",
                                "events_since")
            args = {"key": key, "range_end": range_end}
            low, high = key_bounds(require_bytes(args, "key", "events_since"),
                                   require_bytes(args, "range_end", "events_since", True))
        except CommandError as exc:
            return exc.result()
        if start == 0:  # as etcd's watch: 0 means "from now on", so no history
            return {"events": [], "revision": self.revision}
        if start <= self.compact_revision:
            return self._compacted(f"events_since: revision {start} was compacted away; "
                                   f"re-read the range and watch from its revision + 1").result()
        first = bisect_left(self._history, start, key=_history_revision)
        events = [dict(event) for _, batch in self._history[first:] for event in batch
                  if in_bounds(event["kv"]["key"], low, high)]
        return {"events": events, "revision": self.revision}

    def lease_ids(self) -> list[tuple[int, int]]:
        """Return ``[(id, ttl)]`` of the live leases, by id."""
        return sorted(self._lease_ttl.items())

    def members(self) -> dict:
        """Return ``{peer: {"name", "client"}}`` for the known members, by peer."""
        return {peer: dict(info) for peer, info in sorted(self._members.items())}

    # ------------------------------------------------------------- snapshots

    def to_snapshot(self) -> dict:
        """Return the whole state as a plain msgpack-able dict (str keys only)."""
        return {
            "format": SNAPSHOT_FORMAT,
            "revision": self.revision,
            "compact_revision": self.compact_revision,
            "next_lease_id": self._next_lease_id,
            "keys": self._index.dump(),
            "leases": [[lease_id, ttl] for lease_id, ttl in self.lease_ids()],
            "history": [[revision, events] for revision, events in self._history],
            "members": [[peer, info["name"], info["client"]]
                        for peer, info in sorted(self._members.items())],
            "requests": self._requests.dump(),
        }

    @classmethod
    def from_snapshot(cls, data: dict) -> "Machine":
        """Rebuild a machine from ``to_snapshot`` output (also after a msgpack trip)."""
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported machine snapshot format {data.get('format')!r}")
        machine = cls()
        machine.revision = data["revision"]
        machine.compact_revision = data["compact_revision"]
        machine._next_lease_id = data["next_lease_id"]
        machine._index = KeyIndex.load(data["keys"])
        machine._history = [(revision, events) for revision, events in data["history"]]
        machine._members = {peer: {"name": name, "client": client}
                            for peer, name, client in data["members"]}
        machine._requests.load(data["requests"])
        for lease_id, ttl in data["leases"]:
            machine._lease_ttl[lease_id] = ttl
            machine._lease_keys[lease_id] = set()
        # Lease key sets are not stored: they follow from the leases on live keys.
        for key, version in machine._index.range_now(b"", None, None)[0]:
            machine._move_lease(key, 0, version[LEASE])
        return machine

    def __eq__(self, other: object) -> bool:
        """Compare machines by their whole observable state."""
        if not isinstance(other, Machine):
            return NotImplemented
        return self.to_snapshot() == other.to_snapshot()

    __hash__ = None  # mutable and compared by value

