"""Gather concurrent write requests into one Raft entry (proposal batching).

Every Raft entry costs the same fixed work whatever it holds: a journal record,
a slot in each append-entries message, a commit check, an apply callback. Requests
that arrive while an entry is in flight (or in the same loop turn) therefore wait
in a ``Batcher`` and go out together as ONE entry: a msgpack array of the packed
commands. The machine applies them in order, each at its own revision, and each
request's callback gets its own result (``settle_batch``).

An entry written before batching existed is a single msgpack map; ``unpack_entry``
still reads it as a batch of one, so an old journal replays unchanged.
"""

import logging

import msgpack

log = logging.getLogger("steer.store.batching")

#: Defaults of --max-batch-requests and --max-batch-bytes.
MAX_BATCH_REQUESTS = 256
MAX_BATCH_BYTES = 1 << 20


def pack_batch(packed_commands):
    """Return one entry holding ``packed_commands`` (each already msgpack) as an array."""
    header = msgpack.Packer().pack_array_header(len(packed_commands))
    return header + b"".join(packed_commands)


def unpack_entry(packed):
    """Return ``(commands, is_batch)`` of an entry: a batch's list, or a legacy single command."""
    decoded = msgpack.unpackb(packed, raw=False)
    if isinstance(decoded, list):
        return decoded, True
    return [decoded], False


class Batcher:
    """Hold proposals until the owner flushes them, as batches within both caps.

    A single command larger than ``max_bytes`` still goes out, alone: the client
    port's own request limit bounds it.
    """

    def __init__(self, max_requests=MAX_BATCH_REQUESTS, max_bytes=MAX_BATCH_BYTES):
        if max_requests < 1 or max_bytes < 1:
            raise ValueError(f"batch caps must be at least 1, got max_requests={max_requests}, "
                             f"max_bytes={max_bytes}; check --max-batch-requests/--max-batch-bytes")
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self._pending = []          # [(packed command, callback)], in arrival order
        self._bytes = 0

    def __len__(self):
        return len(self._pending)

    def add(self, packed, callback):
        """Queue one packed command and its ``callback(result, failure_text)``."""
        self._pending.append((packed, callback))
        self._bytes += len(packed)

    def full(self):
        """True when the queue already fills a batch: flush without waiting."""
        return len(self._pending) >= self.max_requests or self._bytes >= self.max_bytes

    def take(self):
        """Remove every queued command; return ``[(entry bytes, [callbacks])]`` within the caps."""
        batches, packed, callbacks, size = [], [], [], 0
        for command, callback in self._pending:
            if packed and (len(packed) >= self.max_requests
                           or size + len(command) > self.max_bytes):
                batches.append((pack_batch(packed), callbacks))
                packed, callbacks, size = [], [], 0
            packed.append(command)
            callbacks.append(callback)
            size += len(command)
        if packed:
            batches.append((pack_batch(packed), callbacks))
        self._pending, self._bytes = [], 0
        return batches


def settle_batch(callbacks, results, failure):
    """Answer each request of a batch exactly once: its own result, or the batch's failure.

    An entry that could not be applied at all gives one error result: every
    request of the batch gets it.
    """
    if failure is None and isinstance(results, dict) and "error" in results:
        results = [results] * len(callbacks)
    if failure is None and (not isinstance(results, list) or len(results) != len(callbacks)):
        failure = (f"the batch applied but its results do not match its {len(callbacks)} "
                   f"requests (got {type(results).__name__}); the outcome is unknown")
    for index, callback in enumerate(callbacks):
        try:
            callback(results[index] if failure is None else None, failure)
        except Exception:
            log.exception("event=proposal_callback_failed")
