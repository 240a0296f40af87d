"""Client for the store: endpoint failover, exactly-once retries, resumable watches.

One ``StoreClient`` is safe to share between threads: it keeps one connection to
one endpoint at a time, with many requests in flight on it, and a reader thread
that routes each response to its waiter by request id. When the endpoint dies or
answers ``unavailable`` the request is retried on the next endpoint until the
client's deadline; a write is retried with the same (client id, request id), so
the state machine applies it once however often it is sent.

With ``ca_file`` (or an ``ssl_context``) every connection is TLS: the member's
certificate must be signed by the store CA and name the address dialled (members'
serving certificates carry their client address as an IP SAN); ``cert_file`` and
``key_file`` are the client certificate members require (store/tls.py).

A ``Watch`` survives node failures: it reconnects elsewhere and resumes from the
revision after the last one it delivered, so its caller sees every revision once,
in order. A ``Compacted`` error means the resume point is gone: list again.
"""

import itertools
import queue
import random
import socket
import threading
import time

from store import protocol, tls
from store.mvcc import prefix_end  # noqa: F401  (re-exported: clients build prefix ranges)

DEFAULT_TIMEOUT = 10.0


# -- typed errors ----------------------------------------------------------------------
class StoreError(Exception):
    """The store refused a request; ``code`` says why, ``message`` what to do."""

    code = "error"

    def __init__(self, message, code=None, **details):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.details = details


class Unavailable(StoreError):
    """No endpoint answered in time: a write may or may not have applied."""
    code = protocol.UNAVAILABLE


class Compacted(StoreError):
    """The requested revision was compacted away; list again."""
    code = "compacted"

    @property
    def compact_revision(self):
        return self.details.get("compact_revision", 0)


class InvalidRequest(StoreError):
    code = "invalid"


class ValueTooLarge(StoreError):
    code = "value_too_large"


class LeaseNotFound(StoreError):
    code = "lease_not_found"


class NotFound(StoreError):
    code = protocol.NOT_FOUND


_ERRORS = {cls.code: cls for cls in (Unavailable, Compacted, InvalidRequest,
                                     ValueTooLarge, LeaseNotFound, NotFound)}


def error_from(body):
    """Turn an error map from the wire into the matching exception."""
    code = body.get("code", "error")
    details = {k: v for k, v in body.items() if k not in ("code", "message")}
    return _ERRORS.get(code, StoreError)(body.get("message", code), code=code, **details)


class _Disconnected(Exception):
    """The connection died with requests in flight."""


# -- one connection ------------------------------------------------------------------
class _Connection:
    """A socket to one endpoint with a reader thread routing frames by id."""

    def __init__(self, endpoint, connect_timeout, ssl_context=None):
        host, port = endpoint.rsplit(":", 1)
        self.endpoint = endpoint
        sock = socket.create_connection((host, int(port)), timeout=connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            try:
                sock = tls.TlsSocket(sock, ssl_context, server_hostname=host.strip("[]"))
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)
        self.sock = sock
        self.alive = True
        self.failure = ""           # why the connection died, for the caller's error
        self._send_lock = threading.Lock()
        self._waiters = {}          # request id -> queue.Queue
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"store-client-{endpoint}")
        self._reader.start()

    def open_stream(self):
        """Reserve a request id whose responses arrive on the returned queue."""
        request_id = next(self._ids)
        inbox = queue.Queue()
        with self._lock:
            if not self.alive:
                raise _Disconnected(f"{self.endpoint} closed the connection"
                                    + (f": {self.failure}" if self.failure else ""))
            self._waiters[request_id] = inbox
        return request_id, inbox

    def close_stream(self, request_id):
        with self._lock:
            self._waiters.pop(request_id, None)

    def send(self, message):
        frame = protocol.pack(message)
        try:
            with self._send_lock:
                self.sock.sendall(frame)
        except OSError as exc:
            self._fail()
            raise _Disconnected(f"{self.endpoint}: {self.failure or exc}") from None

    def _read_loop(self):
        try:
            while True:
                header = self._recv_exactly(4)
                length = protocol.read_length(header, protocol.MAX_RESPONSE_BYTES)
                message = protocol.unpack_body(self._recv_exactly(length))
                if message.get("id") == 0 and isinstance(message.get("error"), dict):
                    # About the connection itself (a limit hit): the reason it may close.
                    self.failure = str(message["error"].get("message", ""))
                with self._lock:
                    inbox = self._waiters.get(message.get("id"))
                if inbox is not None:
                    inbox.put(message)
        except (OSError, EOFError, protocol.ProtocolError) as exc:
            # A refused client certificate shows up here, as a TLS alert on the first read.
            self.failure = self.failure or str(exc)
        finally:
            self._fail()

    def _recv_exactly(self, n):
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise EOFError("connection closed")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _fail(self):
        with self._lock:
            if not self.alive:
                return
            self.alive = False
            waiters, self._waiters = self._waiters, {}
        for inbox in waiters.values():
            inbox.put(None)     # None means: the connection is gone
        try:
            self.sock.close()
        except OSError:
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._fail()


# -- the client -------------------------------------------------------------------------
class StoreClient:
    """Talk to a store cluster through any of its endpoints."""

    def __init__(self, endpoints, timeout=DEFAULT_TIMEOUT, connect_timeout=1.0,
                 client_id=None, ca_file=None, cert_file=None, key_file=None,
                 ssl_context=None):
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise ValueError("a store client needs at least one endpoint (host:port)")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.client_id = client_id if client_id is not None else random.getrandbits(62)
        if ssl_context is None and (ca_file or cert_file):
            ssl_context = tls.client_context(ca_file, cert_file, key_file)
        self.ssl_context = ssl_context
        self._request_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._conn = None
        self._next_endpoint = random.randrange(len(self.endpoints))

    # -- plumbing ----------------------------------------------------------------
    def _connection(self, deadline):
        """Return a live connection, trying endpoints in turn until the deadline."""
        with self._lock:
            if self._conn is not None and self._conn.alive:
                return self._conn
            last_error = None
            for _ in range(len(self.endpoints)):
                endpoint = self.endpoints[self._next_endpoint]
                self._next_endpoint = (self._next_endpoint + 1) % len(self.endpoints)
                try:
                    self._conn = _Connection(endpoint, min(self.connect_timeout,
                                                           max(0.05, deadline - time.monotonic())),
                                             self.ssl_context)
                    return self._conn
                except OSError as exc:
                    last_error = f"{endpoint}: {exc}"
            raise _Disconnected(last_error or "no endpoint reachable")

    def _drop(self, conn):
        """Forget a failed connection so the next attempt uses another endpoint."""
        with self._lock:
            if self._conn is conn:
                self._conn = None
        conn.close()

    def call(self, op, timeout=None, write=False, **args):
        """Send one request and return its result, retrying elsewhere when unavailable."""
        deadline = time.monotonic() + (timeout or self.timeout)
        message = {"op": op, **args}
        if write:
            message["client"], message["req"] = self.client_id, next(self._request_ids)
        backoff, last = 0.02, "no attempt made"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                hint = "" if self.ssl_context is not None else (
                    "; if the store's client port speaks TLS, give the client the store CA "
                    "and a client certificate")
                raise Unavailable(f"store unavailable after {timeout or self.timeout:g}s "
                                  f"(last error: {last}); check `steer store status`{hint}")
            conn = None
            try:
                conn = self._connection(deadline)
                request_id, inbox = conn.open_stream()
                try:
                    conn.send({**message, "id": request_id})
                    response = inbox.get(timeout=remaining)
                finally:
                    conn.close_stream(request_id)
                if response is None:
                    reason = f": {conn.failure}" if conn.failure else ""
                    raise _Disconnected(f"{conn.endpoint} closed the connection{reason}")
                if "error" not in response:
                    return {**response["result"], "header": response.get("header", {})}
                err = error_from(response["error"])
                if err.code not in protocol.RETRYABLE:
                    raise err
                last = f"{conn.endpoint}: {err.message}"
                self._drop(conn)
            except queue.Empty:
                last = f"{conn.endpoint}: no answer"
                self._drop(conn)
            except _Disconnected as exc:
                last = str(exc)
                if conn is not None:
                    self._drop(conn)
            time.sleep(min(backoff, max(0.0, deadline - time.monotonic())))
            backoff = min(backoff * 2, 0.5)

    # -- key-value -------------------------------------------------------------------
    def get(self, key, range_end=None, revision=0, limit=0, serializable=False,
            keys_only=False, count_only=False, timeout=None):
        """Read a key or range; linearizable unless ``serializable``."""
        return self.call("range", timeout, key=key, range_end=range_end, revision=revision,
                         limit=limit, serializable=serializable, keys_only=keys_only,
                         count_only=count_only)

    def get_prefix(self, prefix, **kwargs):
        return self.get(prefix, range_end=prefix_end(prefix), **kwargs)

    def put(self, key, value, lease=0, prev_kv=False, timeout=None):
        return self.call("put", timeout, write=True, key=key, value=value, lease=lease,
                         prev_kv=prev_kv)

    def delete(self, key, range_end=None, prev_kv=False, timeout=None):
        return self.call("delete", timeout, write=True, key=key, range_end=range_end,
                         prev_kv=prev_kv)

    def txn(self, compare=(), success=(), failure=(), timeout=None):
        return self.call("txn", timeout, write=True, compare=list(compare),
                         success=list(success), failure=list(failure))

    def compact(self, revision, timeout=None):
        return self.call("compact", timeout, write=True, revision=revision)

    # -- leases ------------------------------------------------------------------------
    def lease_grant(self, ttl, timeout=None):
        return self.call("lease_grant", timeout, write=True, ttl=ttl)

    def lease_revoke(self, lease_id, timeout=None):
        return self.call("lease_revoke", timeout, write=True, lease_id=lease_id)

    def lease_keepalive(self, lease_id, timeout=None):
        return self.call("lease_keepalive", timeout, write=True, lease_id=lease_id)

    # -- cluster -------------------------------------------------------------------------
    def status(self, timeout=None):
        return self.call("status", timeout)

    def members(self, timeout=None):
        return self.call("members", timeout)["members"]

    def member_add(self, name, peer, client="", timeout=None):
        return self.call("member_add", timeout, name=name, peer=peer, client=client)["members"]

    def member_remove(self, name_or_peer, timeout=None):
        return self.call("member_remove", timeout, name=name_or_peer)["members"]

    def snapshot_save(self, path, timeout=None):
        """Write a consistent snapshot of the whole store to ``path``; return its revision."""
        result = self.call("snapshot", timeout or max(self.timeout, 60.0))
        with open(path, "wb") as f:
            f.write(result["snapshot"])
        return result["revision"]

    def watch(self, key, range_end=None, start_revision=0, prev_kv=False,
              resume_timeout=None):
        """Start a watch; iterate it for events (see ``Watch``)."""
        return Watch(self, key, range_end, start_revision, prev_kv,
                     resume_timeout or max(self.timeout, 30.0))

    def close(self):
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Watch:
    """A stream of events that resumes on another endpoint after a failure.

    ``next_event(timeout)`` returns the next event or None on timeout; iterating
    yields events forever. ``revision`` is the newest revision delivered or
    caught up to. Raises ``Compacted`` when the resume point is gone.
    """

    def __init__(self, client, key, range_end, start_revision, prev_kv, resume_timeout):
        self._client = client
        self._args = {"key": key, "range_end": range_end, "prev_kv": prev_kv}
        self._resume_timeout = resume_timeout
        self.revision = start_revision - 1 if start_revision > 0 else 0
        # Whether ``revision`` marks a resume point. start_revision=1 (all history)
        # leaves revision at 0, which must not be mistaken for "start from now".
        self._positioned = start_revision > 0
        self._buffer = []
        self._conn = self._inbox = self._watch_id = None
        self._closed = False
        self._subscribe(time.monotonic() + resume_timeout)

    def _subscribe(self, deadline):
        backoff = 0.02
        while True:
            try:
                self._try_subscribe(deadline)
                return
            except (_Disconnected, queue.Empty) as exc:
                if self._conn is not None:
                    self._client._drop(self._conn)
                    self._conn = None
                if time.monotonic() >= deadline:
                    raise Unavailable(f"watch could not reconnect: {exc}") from None
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    def _try_subscribe(self, deadline):
        conn = self._client._connection(deadline)
        self._conn = conn
        self._watch_id, self._inbox = conn.open_stream()
        start = self.revision + 1 if self._positioned else 0
        conn.send({"id": self._watch_id, "op": "watch", "start_revision": start, **self._args})
        reply = self._inbox.get(timeout=max(0.05, deadline - time.monotonic()))
        if reply is None:
            raise _Disconnected("connection closed while starting the watch")
        if reply.get("watch") == "created":
            if not self._positioned:
                self.revision = reply["header"]["revision"]
                self._positioned = True
            return
        err = error_from(reply.get("error", {"code": "error", "message": "watch refused"}))
        if err.code in protocol.RETRYABLE:
            raise _Disconnected(err.message)
        raise err

    def next_event(self, timeout=None):
        """Return the next event, or None if none arrived within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._buffer:
            if self._closed:
                return None
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                message = self._inbox.get(timeout=remaining)
            except queue.Empty:
                return None
            self._absorb(message)
        return self._buffer.pop(0)

    def _absorb(self, message):
        if message is None:           # the node went away: resume elsewhere
            self._client._drop(self._conn)
            self._subscribe(time.monotonic() + self._resume_timeout)
            return
        kind = message.get("watch")
        if kind == "events":
            # Each message holds whole revisions; anything at or below the last
            # delivered revision is a replay after a resume and is skipped.
            fresh = [e for e in message["events"] if e["kv"]["mod_revision"] > self.revision]
            self._buffer.extend(fresh)
            if fresh:
                self.revision = fresh[-1]["kv"]["mod_revision"]
        elif kind == "canceled":
            self._conn.close_stream(self._watch_id)
            if "error" in message:
                self._closed = True
                raise error_from(message["error"])
            self._closed = True

    def __iter__(self):
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def cancel(self):
        """Stop the watch."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send({"id": 0, "op": "watch_cancel", "watch_id": self._watch_id})
        except _Disconnected:
            pass
        self._conn.close_stream(self._watch_id)
