"""One client connection of a store node, kept inside the node's limits.

The client port must survive clients that misbehave, on purpose or not, so every
resource a connection can hold is capped (store/node_main.py has the flags):

* connections: past ``max_connections`` a new one gets a ``too_many_connections``
  error frame and is closed (the server counts them, see StoreServer);
* requests in flight on one connection: past ``max_inflight`` a request is
  answered at once with ``too_many_requests`` and not run;
* output queued for a client that does not read: once more than
  ``max_queued_bytes`` wait in the send buffer the connection is aborted (not
  flushed: the client is not reading), so a stalled reader cannot pin memory;
* an idle connection (nothing received for ``idle_timeout``, no request in
  flight, no watch open) gets an ``idle_timeout`` error frame and is closed;
* a frame must arrive whole within ``frame_timeout`` of its first byte: a
  trickled frame gets ``frame_timeout`` and the connection is closed;
* frames over ``max_request_bytes`` get ``too_large`` (as etcd's
  --max-request-bytes), watches and range sizes are checked by the server.

Error frames about the connection itself carry request id 0.
"""

import asyncio
import logging
from dataclasses import dataclass, fields

from store import protocol
from store.protocol import error

log = logging.getLogger("steer.store.connection")


@dataclass(frozen=True)
class Limits:
    """The client port's caps; the defaults fit a small cluster (a few API servers)."""

    max_connections: int = 1000
    max_inflight: int = 1000
    max_queued_bytes: int = 64 << 20
    idle_timeout: float = 300.0
    frame_timeout: float = 10.0
    max_request_bytes: int = protocol.MAX_REQUEST_BYTES
    max_watches_per_connection: int = 1000
    max_watches: int = 10000
    max_range_bytes: int = 128 << 20
    quota_backend_bytes: int = 2 << 30

    @classmethod
    def from_args(cls, args):
        """Take each limit from the flag of the same name; a missing flag keeps its default."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)
                      if getattr(args, f.name, None) is not None})


class ClientConnection:
    """Read a connection's frames within the limits and hand requests to ``dispatch``.

    ``dispatch(conn, message)`` is a coroutine answering one request through
    ``conn.send``; ``header()`` gives the response header; ``watches()`` counts
    the watches this connection holds open.
    """

    def __init__(self, conn_id, reader, writer, limits, header, dispatch, watches):
        self.conn_id = conn_id
        self.reader, self.writer = reader, writer
        self.limits = limits
        self._header, self._dispatch, self._watches = header, dispatch, watches
        self.inflight = 0

    def send(self, message):
        """Queue one message, or abort the connection if its reader stopped reading."""
        if self.writer.is_closing():
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > self.limits.max_queued_bytes:
            log.warning("event=slow_client_dropped conn=%d queued_bytes=%d limit=%d",
                        self.conn_id, transport.get_write_buffer_size(),
                        self.limits.max_queued_bytes)
            transport.abort()
            return
        self.writer.write(protocol.pack(message))

    def refuse(self, code, message):
        """Tell the client why the connection ends (request id 0)."""
        self.send({"id": 0, "header": self._header(), "error": error(code, message)})

    async def serve(self):
        """Read and dispatch frames until the client leaves or breaks a limit."""
        try:
            while True:
                first = await self._first_byte()
                if first is None:
                    return
                try:
                    async with asyncio.timeout(self.limits.frame_timeout):
                        header = first + await self.reader.readexactly(3)
                        length = protocol.read_length(header, self.limits.max_request_bytes)
                        body = await self.reader.readexactly(length)
                except TimeoutError:
                    log.warning("event=frame_timeout conn=%d", self.conn_id)
                    self.refuse("frame_timeout", (
                        f"a frame did not arrive whole within {self.limits.frame_timeout:g}s of "
                        "its first byte; send each frame at once (--frame-timeout)"))
                    return
                except protocol.ProtocolError as exc:
                    # The rest of the stream cannot be framed any more: say why and hang up.
                    self.refuse(exc.code, exc.message + f" (--max-request-bytes "
                                f"{self.limits.max_request_bytes})")
                    return
                self._accept(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def _first_byte(self):
        """Wait for the next frame; None once the connection has idled past its limit."""
        while True:
            try:
                async with asyncio.timeout(self.limits.idle_timeout):
                    return await self.reader.readexactly(1)
            except TimeoutError:
                if self.inflight or self._watches():
                    continue        # waiting on our answers or on events is not idling
                log.info("event=idle_connection_closed conn=%d", self.conn_id)
                self.refuse("idle_timeout", (
                    f"nothing received for {self.limits.idle_timeout:g}s with no request in "
                    "flight and no watch open; reconnect when needed (--idle-timeout)"))
                return None

    def _accept(self, body):
        try:
            message = protocol.unpack_body(body)
        except protocol.ProtocolError as exc:
            self.send({"id": 0, "header": self._header(), "error": error(exc.code, exc.message)})
            return
        if self.inflight >= self.limits.max_inflight:
            request_id = message.get("id")
            self.send({"id": request_id if isinstance(request_id, int) else 0,
                       "header": self._header(), "error": error(
                           protocol.TOO_MANY_REQUESTS,
                           f"{self.inflight} requests are already in flight on this connection, "
                           f"the limit is {self.limits.max_inflight} (--max-inflight); wait for "
                           "answers or open another connection")})
            return
        self.inflight += 1
        asyncio.create_task(self._run(message))

    async def _run(self, message):
        try:
            await self._dispatch(self, message)
        finally:
            self.inflight -= 1

    def close(self):
        self.writer.close()
