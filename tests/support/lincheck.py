"""Check recorded key-value histories for linearizability.

Concurrent test clients record what they asked the store and what it answered::

    h = History()
    op = h.invoke(client_id, "write", b"k", b"v")
    ...                                 # talk to the store
    h.ok(op)                            # or h.fail(op) / h.info(op)
    result = check(h)
    assert result.ok, result.explanation

The model is one register per key: a missing key reads as None, ``write`` sets a
value, ``delete`` sets None, ``cas`` takes ``value=(expected, new)`` and its output
is True or False. Keys are independent, so the history is split by key and each key
is checked on its own (P-compositionality), which keeps the search small.

Each key is checked with Wing & Gong's search as improved by Lowe (the "WGL"
algorithm of Knossos and Porcupine): call and return events in time order in a
doubly linked list, ops lifted out of the list as they are linearized, a stack for
backtracking and a cache of (linearized set, register value) to prune repeated work.

Completion statuses:

* ``ok``: the op took effect at some instant between its invoke and its completion.
* ``fail``: the op certainly did not take effect; it is dropped from the check.
* ``info`` (or never completed): ambiguous. Its completion is treated as +infinity,
  so it may take effect at any instant after its invoke, or never. Ambiguous reads
  tell us nothing and are dropped. An ambiguous cas has an unknown output, so the
  model lets it do whatever the register would have done. "Never" needs no special
  case: an op with an infinite return may always be linearized after every other op,
  where nobody can observe it, and writes, deletes and output-less cas are legal in
  any state. So the search succeeds as soon as every *ok* op is linearized.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Mapping

KINDS = frozenset({"read", "write", "delete", "cas"})
DEFAULT_MAX_STEPS = 1_000_000


@dataclass(eq=False)
class Op:
    """Hold one client operation on one key and how it ended."""

    id: int
    client: Hashable
    kind: str
    key: Hashable
    value: Any = None  # write: the new value; cas: (expected, new)
    call: float = 0
    ret: float | None = None  # clock reading at completion; None while pending
    output: Any = None  # read: the value seen; cas: True/False
    status: str = "pending"  # pending | ok | fail | info

    @property
    def ambiguous(self) -> bool:
        """Return True if we cannot tell whether the op took effect."""
        return self.status in ("info", "pending")

    def __str__(self) -> str:
        args = {"read": "", "write": f"({self.value!r})", "delete": ""}.get(self.kind)
        if args is None:
            args = f"({self.value[0]!r} -> {self.value[1]!r})"
        result = "?" if self.ambiguous else repr(self.output)
        shown = f" -> {result}" if self.kind in ("read", "cas") else ""
        end = "inf)" if self.ambiguous else f"{self.ret}]"
        return f"#{self.id} client {self.client}: {self.kind}{args}{shown} [{self.call}, {end}"


class History:
    """Record operations from many threads, stamping them with a monotonic clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic_ns) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: list[Op] = []

    def invoke(self, client: Hashable, kind: str, key: Hashable, value: Any = None) -> Op:
        """Record that a client is about to send a request; return its handle."""
        if kind not in KINDS:
            raise ValueError(f"unknown op kind {kind!r}; expected one of {sorted(KINDS)}")
        if kind == "cas" and not (isinstance(value, tuple) and len(value) == 2):
            raise ValueError("cas needs value=(expected, new)")
        # Read the clock under the lock so op ids follow invocation order.
        with self._lock:
            op = Op(len(self._ops), client, kind, key, value, call=self._clock())
            self._ops.append(op)
        return op

    def ok(self, op: Op, output: Any = None) -> None:
        """Record that op completed; output is the value read or the cas result."""
        if op.kind == "cas" and not isinstance(output, bool):
            raise ValueError("a completed cas needs output=True or output=False")
        self._complete(op, "ok", output)

    def fail(self, op: Op) -> None:
        """Record that op certainly did not take effect."""
        self._complete(op, "fail", None)

    def info(self, op: Op) -> None:
        """Record that op's outcome is unknown (timeout, lost connection)."""
        self._complete(op, "info", None)

    def _complete(self, op: Op, status: str, output: Any) -> None:
        with self._lock:
            if op.status != "pending":
                raise ValueError(f"op #{op.id} already completed as {op.status}")
            op.ret, op.status, op.output = self._clock(), status, output

    @property
    def ops(self) -> list[Op]:
        """Return a snapshot of the operations recorded so far."""
        with self._lock:
            return list(self._ops)


@dataclass
class CheckResult:
    """Hold a verdict: ok is True, False, or None when the search gave up."""

    ok: bool | None
    key: Hashable = None  # the first key that failed (or could not be decided)
    explanation: str = ""


def check(history: History, **kwargs: Any) -> CheckResult:
    """Check a recorded History; see check_history for the options."""
    return check_history(history.ops, **kwargs)


def check_history(
    ops: Iterable[Op],
    *,
    initial: Mapping[Hashable, Any] | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    timeout: float | None = None,
) -> CheckResult:
    """Check that ops are linearizable, key by key.

    initial maps keys to values they held before the history began (default: all
    absent). max_steps bounds the search per key and timeout (seconds) bounds the
    whole call; when either runs out the verdict is ok=None ("unknown"), never a hang.
    A definite failure on any key wins over "unknown" on another.
    """
    initial = initial or {}
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    by_key: dict[Hashable, list[Op]] = {}
    for op in ops:
        # Failed ops never happened and ambiguous reads observed nothing we know.
        if op.status == "fail" or (op.kind == "read" and op.ambiguous):
            continue
        by_key.setdefault(op.key, []).append(op)

    unknown: CheckResult | None = None
    for key, key_ops in by_key.items():
        verdict, why = _check_key(key_ops, initial.get(key), max_steps, deadline)
        if verdict is False:
            return CheckResult(False, key, f"key {key!r}: {why}")
        if verdict is None and unknown is None:
            unknown = CheckResult(None, key, f"key {key!r}: {why}")
    return unknown or CheckResult(True)


def _step(state: Any, op: Op) -> tuple[bool, Any]:
    """Apply op to a register holding state; return (legal, new state)."""
    if op.kind == "read":
        return op.output == state, state
    if op.kind == "write":
        return True, op.value
    if op.kind == "delete":
        return True, None
    expected, new = op.value
    if op.ambiguous:
        # Output unknown: the server did whatever the register says, always legal.
        return True, new if state == expected else state
    if op.output:
        return state == expected, new
    return state != expected, state


class _Entry:
    """A call or return event, linked into the list the search walks."""

    __slots__ = ("op", "index", "is_call", "time", "match", "prev", "next")

    def __init__(self, op: Op | None, index: int, is_call: bool, at: float) -> None:
        self.op, self.index, self.is_call, self.time = op, index, is_call, at
        self.match: _Entry | None = None  # a call's return; None if ambiguous
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _lift(call: _Entry) -> None:
    """Unlink a call and its return from the list (the op is now linearized)."""
    for entry in (call, call.match):
        if entry is not None:
            entry.prev.next = entry.next
            if entry.next is not None:
                entry.next.prev = entry.prev


def _unlift(call: _Entry) -> None:
    """Relink what _lift removed, in reverse order so the pointers stay valid."""
    for entry in (call.match, call):
        if entry is not None:
            entry.prev.next = entry
            if entry.next is not None:
                entry.next.prev = entry


def _check_key(ops: list[Op], state: Any, max_steps: int, deadline: float):
    """Search for a linearization of one key's ops; return (verdict, explanation)."""
    events = []
    for index, op in enumerate(ops):
        call = _Entry(op, index, True, op.call)
        events.append(call)
        if not op.ambiguous:  # ambiguous ops return at +infinity: no event needed
            call.match = _Entry(op, index, False, op.ret)
            events.append(call.match)
    # On equal timestamps put calls first: the two ops count as concurrent, so we
    # never claim an order the clock could not actually resolve.
    events.sort(key=lambda e: (e.time, not e.is_call))
    head = _Entry(None, -1, True, -math.inf)
    prev = head
    for entry in events:
        prev.next, entry.prev, prev = entry, prev, entry

    remaining = sum(1 for op in ops if not op.ambiguous)
    linearized = 0  # bitset of op indexes
    stack: list[tuple[_Entry, Any]] = []  # (linearized call, state before it)
    seen: set[tuple[int, Any]] = set()
    best: tuple[int, Op | None, list[Op], Any] = (-1, None, [], None)
    entry, steps = head.next, 0
    while remaining:
        steps += 1
        if steps > max_steps:
            return None, f"gave up after {max_steps} search steps (no verdict)"
        if steps % 1024 == 0 and time.monotonic() > deadline:
            return None, f"timed out after {steps} search steps (no verdict)"
        if entry is not None and entry.is_call:
            legal, new_state = _step(state, entry.op)
            bits = linearized | (1 << entry.index)
            if legal and (bits, new_state) not in seen:
                # Linearize this op now and restart from the earliest pending event.
                seen.add((bits, new_state))
                stack.append((entry, state))
                state, linearized = new_state, bits
                if entry.match is not None:
                    remaining -= 1
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
            continue
        # We hit the return of an op that is not linearized yet: dead end, backtrack.
        if len(stack) > best[0]:
            best = (len(stack), entry and entry.op, [e.op for e, _ in stack], state)
        if not stack:
            return False, _explain(*best)
        entry, state = stack.pop()
        linearized &= ~(1 << entry.index)
        if entry.match is not None:
            remaining += 1
        _unlift(entry)
        entry = entry.next
    return True, ""


def _explain(depth: int, stuck: Op | None, prefix: list[Op], state: Any) -> str:
    """Describe the longest consistent prefix and the op that could not follow it."""
    lines = [f"could not linearize {stuck}", f"longest linearizable prefix ({depth} ops):"]
    shown = prefix[-10:]  # the tail is what matters; the whole prefix can be huge
    if len(prefix) > len(shown):
        lines.append(f"  ... {len(prefix) - len(shown)} earlier ops")
    lines += [f"  {op}" for op in shown]
    lines.append(f"register value after that prefix: {state!r}")
    return "\n".join(lines)
