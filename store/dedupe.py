"""Remember recent request results per client so a retried write applies only once.

A client that loses a reply retries with the same ``(client, req)``; the machine
then answers with the remembered result instead of applying the command again.
Memory is bounded deterministically (every replica must forget the same entries):
the newest ``max_requests`` results per client, and at most ``max_clients``
clients, dropping the least recently active client first.
"""

from collections import OrderedDict

from store.txn import invalid, is_int


class RequestCache:
    """Map (client, req) to the result of the first successful apply."""

    def __init__(self, max_clients: int = 10_000, max_requests: int = 1024) -> None:
        self.max_clients = max_clients
        self.max_requests = max_requests
        # client -> (req -> result), both ordered oldest activity first.
        self._clients: OrderedDict[int, OrderedDict[int, dict]] = OrderedDict()

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
        requests[req] = result
        while len(requests) > self.max_requests:
            requests.popitem(last=False)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)

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
