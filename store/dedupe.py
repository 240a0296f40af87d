"""Remember recent request results per client so a retried write applies only once.

A client that loses a reply retries with the same ``(client, req)``; the machine
then answers with the remembered result instead of applying the command again.
Memory is bounded deterministically (every replica must forget the same entries):
the newest ``max_requests`` results per client, at most ``max_clients`` clients,
and at most ``max_bytes`` of results in all (measured as their msgpack size, so
large results such as a txn's ranges or prev_kv cannot grow it without bound),
dropping the least recently active client's oldest results first. The bounds are
constants, not flags: members with different bounds would answer a retried write
differently and their states would drift apart.
"""

from collections import OrderedDict

import msgpack

from store.txn import invalid, is_int


def result_size(result: dict) -> int:
    """Return the bytes a remembered result counts (its msgpack encoding)."""
    return len(msgpack.packb(result, use_bin_type=True))


class RequestCache:
    """Map (client, req) to the result of the first successful apply."""

    def __init__(self, max_clients: int = 10_000, max_requests: int = 1024,
                 max_bytes: int = 64 << 20) -> None:
        self.max_clients = max_clients
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        # client -> (req -> result), both ordered oldest activity first.
        self._clients: OrderedDict[int, OrderedDict[int, dict]] = OrderedDict()
        self._sizes: dict[tuple[int, int], int] = {}
        self.bytes = 0

    def lookup(self, client: int, req: int) -> dict | None:
        """Return the remembered result, marking the client active; None if unknown."""
        requests = self._clients.get(client)
        if requests is None or req not in requests:
            return None
        self._clients.move_to_end(client)
        return requests[req]

    def remember(self, client: int, req: int, result: dict) -> None:
        """Store ``result`` for (client, req) and evict the oldest entries over the bounds."""
        requests = self._clients.get(client)
        if requests is None:
            requests = self._clients[client] = OrderedDict()
        self._clients.move_to_end(client)
        if req in requests:
            self._forget(client, req)
        requests[req] = result
        size = result_size(result)
        self._sizes[(client, req)] = size
        self.bytes += size
        while len(requests) > self.max_requests:
            self._forget(client, requests.popitem(last=False)[0])
        while len(self._clients) > self.max_clients:
            self._drop_client(*self._clients.popitem(last=False))
        while self.bytes > self.max_bytes and self._clients:
            oldest, its_requests = next(iter(self._clients.items()))
            self._forget(oldest, its_requests.popitem(last=False)[0])
            if not its_requests:
                del self._clients[oldest]

    def _forget(self, client: int, req: int) -> None:
        self.bytes -= self._sizes.pop((client, req), 0)

    def _drop_client(self, client: int, requests: OrderedDict) -> None:
        for req in requests:
            self._forget(client, req)

    def dump(self) -> list:
        """Return ``[[client, [[req, result]...]]...]`` in activity order."""
        return [[client, [[req, result] for req, result in requests.items()]]
                for client, requests in self._clients.items()]

    def load(self, dumped: list) -> None:
        """Replace the contents with the output of ``dump``."""
        self._clients = OrderedDict(
            (client, OrderedDict((req, result) for req, result in requests))
            for client, requests in dumped
        )
        self._sizes = {(client, req): result_size(result)
                       for client, requests in self._clients.items()
                       for req, result in requests.items()}
        self.bytes = sum(self._sizes.values())


def request_id(command: dict, name: str) -> tuple[int, int] | None:
    """Return the (client, req) of a command for exactly-once, or None if it has none.

    member_set is left out: its ``client`` field is the member's client address,
    and setting a member twice is harmless anyway.
    """
    if name == "member_set":
        return None
    client, req = command.get("client"), command.get("req")
    if client is None and req is None:
        return None
    if not (is_int(client) and is_int(req)):
        raise invalid(f"{name}: 'client' and 'req' must both be ints (or both absent) for "
                      f"exactly-once; got client={client!r}, req={req!r}")
    return client, req
