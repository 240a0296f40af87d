"""A store node process (`steer-store`): Raft plus the client port.

The client port speaks length-prefixed msgpack frames (store/protocol.py). Each
request runs as its own task, so one slow request never holds up the others on the
connection. Writes go through Raft; linearizable reads wait for a read index the
leader confirmed (Raft's ReadIndex, store/readindex.py: no log entry per read;
every read that arrives while a confirmation is in flight joins the next one);
serializable reads answer from local state at once. Watches replay history from
their start revision and then follow the commits this node applies.

The client port speaks mutual TLS when the node has a serving certificate
(store/tls.py): with client certificate authentication on, only clients holding a
certificate from the store's own CA (API servers and admins) get past the
handshake; which identity connected is logged. A renewed certificate file is
loaded for new connections when it changes or on SIGHUP. Plain TCP is only an explicit
choice (--insecure-plain-client). The metrics endpoint speaks TLS with
--metrics-cert-file and admits only cluster-CA clients in group system:monitoring
(store/metrics.py); plain HTTP without those flags (tests). The Raft peer port speaks mutual
TLS too (store/peer_transport.py): only members holding a certificate from the
store CA get past its handshake.

Every connection runs inside the client port's limits (store/connection.py:
connections, requests in flight, queued output, idle and frame-read timeouts);
this module adds the caps on watches and range sizes and the size quota
(--quota-backend-bytes: writes fail with ``no_space`` until compaction frees room).

Raft, the client port and the metrics endpoint share the asyncio loop's one thread,
so requests read the state machine without a lock.
"""

import asyncio
import hashlib
import logging
import os
import signal
import ssl
import time

import msgpack

from store import protocol, tls
from store.batching import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS
from store.connection import ClientConnection, Limits
from store.leases import LeaseClock
from store.metrics import StoreMetrics
from store.peer_transport import set_nodelay
from store.protocol import error
from store.raft import RaftNode
from store.watch import Watcher, WatchHub

log = logging.getLogger("steer.store.server")

VERSION = "0.1.0"


def stable_id(text):
    """Derive a positive 63-bit id from a name (member ids, cluster ids)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


class RequestError(Exception):
    """A request that must be answered with an error response."""

    def __init__(self, code, message, **extra):
        super().__init__(message)
        self.body = error(code, message, **extra)


def _machine_error(result):
    body = result["error"]
    return RequestError(body["code"], body["message"],
                        **{k: v for k, v in body.items() if k not in ("code", "message")})


class StoreServer:
    """Serve one store node's client port on top of its Raft node."""

    MAINTENANCE_PERIOD = 0.25
    COMPACTION_PERIOD = 5.0
    CERT_CHECK_PERIOD = 2.0

    def __init__(self, args, peer_tls, ssl_context=None):
        self.args = args
        self.peer_tls = peer_tls          # (server, client) contexts of the peer port
        self.ssl_context = ssl_context
        self.member_id = stable_id(args.peer_addr)
        self.cluster_id = stable_id(args.cluster_token)
        self.hub = WatchHub()
        self.leases = LeaseClock(time.monotonic)
        self.raft = None
        self.loop = None
        self._last_registration = 0.0
        self._last_compaction_check = 0.0
        self._last_cert_check, self._cert_stamp = 0.0, None
        self._next_conn_id = 0
        self.limits = Limits.from_args(args)
        self._connections = 0
        self.metrics = StoreMetrics(self._gauges)

    # -- lifecycle -------------------------------------------------------------
    async def serve(self):
        self.loop = asyncio.get_running_loop()
        peers = [p for p in self.args.initial_cluster.values() if p != self.args.peer_addr]
        self.raft = RaftNode(
            self.loop, self.args.peer_addr, peers, self.args.data_dir, self.peer_tls,
            cluster=self.args.cluster_token,
            on_applied=self._on_applied,
            on_restored=self._on_restored,
            timeouts=(self.args.election_min, self.args.election_max),
            heartbeat=self.args.heartbeat,
            log_compact_entries=self.args.raft_log_compact_entries,
            read_timeout=self.args.request_timeout,
            max_batch_requests=getattr(self.args, "max_batch_requests", MAX_BATCH_REQUESTS),
            max_batch_bytes=getattr(self.args, "max_batch_bytes", MAX_BATCH_BYTES))
        host, port = self.args.client_addr.rsplit(":", 1)
        tls_args = {"ssl": self.ssl_context, "ssl_handshake_timeout": 10.0} \
            if self.ssl_context is not None else {}
        server = await asyncio.start_server(self._serve_connection, host, int(port),
                                            limit=protocol.MAX_REQUEST_BYTES, **tls_args)
        log.info("event=serving name=%s client=%s peer=%s client_tls=%s client_cert_auth=%s",
                 self.args.name, self.args.client_addr, self.args.peer_addr,
                 self.ssl_context is not None,
                 getattr(self.ssl_context, "verify_mode", None) == ssl.CERT_REQUIRED)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, stop.set)
        if self.ssl_context is not None:
            self.loop.add_signal_handler(signal.SIGHUP, self._reload_certificate, True)
        maintenance = asyncio.create_task(self._maintenance())
        if self.args.metrics_addr:
            metrics_host, metrics_port = self.args.metrics_addr.rsplit(":", 1)
            await self.metrics.serve(metrics_host, int(metrics_port),
                                     getattr(self.args, "metrics_tls", None))
        await stop.wait()
        maintenance.cancel()
        server.close()
        self.raft.stop()
        log.info("event=stopped name=%s", self.args.name)

    # -- hooks from Raft (same thread: Raft runs on this loop) ----------------------
    def _on_applied(self, command, result, events):
        self.leases.applied(command, result)
        if events:
            self.hub.publish(events[0]["kv"]["mod_revision"], events)

    def _on_restored(self, machine):
        leases, compact_revision = machine.lease_ids(), machine.compact_revision
        self.leases.restored(leases)
        if len(self.hub):
            log.info("event=snapshot_installed watches_ended=%d", len(self.hub))
        self.hub.cancel_all(error(
            "compacted", "this node installed a snapshot; list again and watch from "
            "the revision the list returns", compact_revision=compact_revision))

    # -- connections -------------------------------------------------------------
    async def _serve_connection(self, reader, writer):
        self._next_conn_id += 1
        set_nodelay(writer.transport)   # answers are small frames: never wait on Nagle
        conn = ClientConnection(self._next_conn_id, reader, writer, self.limits, self._header,
                                self._answer, lambda: self.hub.count(conn.conn_id))
        if self.ssl_context is not None:
            log.debug("event=client_connected conn=%d peer=%s identity=%s", conn.conn_id,
                      writer.get_extra_info("peername"),
                      tls.peer_name(writer.get_extra_info("peercert")) or "-")
        if self._connections >= self.limits.max_connections:
            log.warning("event=connection_refused reason=too_many_connections limit=%d",
                        self.limits.max_connections)
            conn.refuse(protocol.TOO_MANY_CONNECTIONS, (
                f"this node already serves {self._connections} client connections, the limit "
                f"is {self.limits.max_connections} (--max-connections); retry later or use "
                "another member"))
            conn.close()
            return
        self._connections += 1
        try:
            await conn.serve()
        finally:
            self._connections -= 1
            self.hub.drop_connection(conn.conn_id)
            conn.close()

    async def _answer(self, conn, message):
        conn_id, send = conn.conn_id, conn.send
        started, code = time.monotonic(), "ok"
        request_id = message.get("id")
        try:
            if not isinstance(request_id, int) or isinstance(request_id, bool):
                raise RequestError(protocol.BAD_REQUEST, "every request needs an integer 'id'")
            op = message.get("op")
            if op == "watch":
                return self._watch(conn_id, message, send)
            if op == "watch_cancel":
                return self._watch_cancel(conn_id, message, send)
            handler = getattr(self, f"_op_{op}", None) if op in protocol.ALL_OPS else None
            if handler is None:
                raise RequestError("unknown_op", f"unknown op {op!r}; valid ops are "
                                   f"{', '.join(sorted(protocol.ALL_OPS))}")
            result = await handler(message)
            send({"id": request_id, "header": self._header(), "result": result})
        except RequestError as exc:
            code = exc.body["code"]
            send({"id": request_id or 0, "header": self._header(), "error": exc.body})
        except Exception as exc:
            code = "internal"
            log.exception("event=request_failed op=%s", message.get("op"))
            send({"id": request_id or 0, "header": self._header(),
                  "error": error("internal", f"internal error: {exc}")})
        finally:
            op = message.get("op")
            self.metrics.observe(op if op in protocol.ALL_OPS else "unknown", code,
                                 time.monotonic() - started)

    def _gauges(self):
        raft = self.raft
        return {
            "steer_store_is_leader": ("1 if this node leads the cluster.", int(raft.is_leader())),
            "steer_store_raft_term": ("Current Raft term.", raft.term()),
            "steer_store_raft_applied_index": ("Last applied Raft log index.", raft.last_applied()),
            "steer_store_raft_commit_index": ("Raft commit index.", raft.commit_index()),
            "steer_store_revision": ("Current store revision.", raft.machine.revision),
            "steer_store_compact_revision": ("Revision compacted up to.", raft.machine.compact_revision),
            "steer_store_watchers": ("Watches open on this node.", len(self.hub)),
            "steer_store_client_connections": ("Client connections open.", self._connections),
            "steer_store_db_size_bytes": ("Bytes of every retained key version.",
                                          raft.machine.db_size),
            "steer_store_quota_bytes": ("--quota-backend-bytes.", self.limits.quota_backend_bytes),
            "steer_store_alarm_nospace": ("1 while over the quota.", int(bool(self._alarms()))),
            "steer_store_raft_entries_proposed": ("Raft entries this node proposed (batches).",
                                                  raft.entries_proposed),
            "steer_store_raft_requests_proposed": ("Write requests this node proposed.",
                                                   raft.requests_proposed),
            "steer_store_members": ("Voting members in the Raft configuration.", len(raft.peer_addrs())),
            "steer_store_peer_frames_sent": ("Raft messages this node sent to peers.",
                                             raft.peer_counters()[0]),
            "steer_store_peer_writes_sent": ("Socket writes that carried them (coalesced).",
                                             raft.peer_counters()[1]),
        }

    def _header(self):
        machine = self.raft.machine if self.raft else None
        return {"cluster_id": self.cluster_id, "member_id": self.member_id,
                "revision": machine.revision if machine else 0,
                "raft_term": self.raft.term() if self.raft else 0}

    # -- replication helpers -------------------------------------------------------
    async def _replicate(self, command):
        future = self.loop.create_future()
        self.raft.propose(command, lambda result, failure: _settle(future, result, failure))
        result = await self._outcome(future, (
            f"no commit within {self.args.request_timeout:g}s: the cluster may have no "
            "quorum; a write may or may not have applied (retry with the same request id)"))
        if "error" in result:
            raise _machine_error(result)
        return result

    async def _read_barrier(self):
        """Wait until this node has applied everything committed before the call."""
        future = self.loop.create_future()
        self.raft.read_barrier(lambda failure: _settle(future, None, failure))
        await self._outcome(future, (
            f"no confirmed read index within {self.args.request_timeout:g}s: the "
            "cluster may have no quorum; retry, or read with serializable=True for "
            "local data"))

    async def _outcome(self, future, too_late):
        """Return the result Raft settles ``future`` with, or raise ``unavailable``."""
        try:
            result, failure = await asyncio.wait_for(asyncio.shield(future),
                                                     self.args.request_timeout)
        except asyncio.TimeoutError:
            raise RequestError(protocol.UNAVAILABLE, too_late) from None
        if failure is not None:
            raise RequestError(protocol.UNAVAILABLE, failure + "; retry shortly")
        return result

    # -- operations -----------------------------------------------------------------
    async def _op_range(self, msg):
        key = _require_bytes(msg, "key")
        if not msg.get("serializable"):
            await self._read_barrier()
        result = self.raft.machine.range(
            key, msg.get("range_end"), revision=msg.get("revision", 0) or 0,
            limit=msg.get("limit", 0) or 0, keys_only=bool(msg.get("keys_only")),
            count_only=bool(msg.get("count_only")))
        if "error" in result:
            raise _machine_error(result)
        # One key always comes back (a value may be up to 1 MiB); the cap is on many.
        size = sum(len(kv["key"]) + len(kv["value"]) for kv in result["kvs"])
        if size > self.limits.max_range_bytes and len(result["kvs"]) > 1:
            raise RequestError(protocol.TOO_LARGE, (
                f"the range holds {len(result['kvs'])} keys and {size} bytes, over the "
                f"{self.limits.max_range_bytes}-byte limit (--max-range-bytes); read it in "
                "pages (limit, then continue after the last key) or with keys_only"),
                count=result["count"])
        return result

    async def _op_put(self, msg):
        put = {"op": "put", "key": _require_bytes(msg, "key"),
               "value": _require_bytes(msg, "value"), "lease": msg.get("lease", 0) or 0,
               "prev_kv": bool(msg.get("prev_kv"))}
        result = await self._op_txn({**msg, "compare": [], "success": [put], "failure": []})
        return {"revision": result["revision"], "prev_kv": result["responses"][0].get("prev_kv")}

    async def _op_delete(self, msg):
        delete = {"op": "delete", "key": _require_bytes(msg, "key"),
                  "range_end": msg.get("range_end"), "prev_kv": bool(msg.get("prev_kv"))}
        result = await self._op_txn({**msg, "compare": [], "success": [delete], "failure": []})
        response = result["responses"][0]
        return {"revision": result["revision"], "deleted": response["deleted"],
                "prev_kvs": response.get("prev_kvs", [])}

    async def _op_txn(self, msg):
        command = {"op": "txn", "compare": msg.get("compare") or [],
                   "success": msg.get("success") or [], "failure": msg.get("failure") or []}
        _check_value_sizes(command)
        if any(isinstance(op, dict) and op.get("op") == "put"
               for op in command["success"] + command["failure"]):
            self._check_quota("a write")
        return await self._replicate(_with_request_id(command, msg))

    def _check_quota(self, what):
        """Refuse ``what`` while the store is over --quota-backend-bytes (etcd's NOSPACE)."""
        size, quota = self.raft.machine.db_size, self.limits.quota_backend_bytes
        if size > quota:
            raise RequestError(protocol.NO_SPACE, (
                f"{what} was refused: the store holds {size} bytes, over its quota of {quota} "
                "(--quota-backend-bytes; alarm NOSPACE). Reads, deletes and lease revokes "
                "still work: delete keys and compact (steer store compact) to free room"),
                db_size=size, quota=quota)

    def _alarms(self):
        return ["NOSPACE"] if self.raft.machine.db_size > self.limits.quota_backend_bytes else []

    async def _op_lease_grant(self, msg):
        self._check_quota("a lease grant")
        return await self._replicate(_with_request_id({"op": "lease_grant", "ttl": msg.get("ttl")}, msg))

    async def _op_lease_revoke(self, msg):
        return await self._replicate(_with_request_id({"op": "lease_revoke", "id": msg.get("lease_id")}, msg))

    async def _op_lease_keepalive(self, msg):
        return await self._replicate(_with_request_id({"op": "lease_keepalive", "id": msg.get("lease_id")}, msg))

    async def _op_compact(self, msg):
        return await self._replicate(_with_request_id({"op": "compact", "revision": msg.get("revision")}, msg))

    async def _op_status(self, msg):
        leader = self.raft.leader_addr()
        machine = self.raft.machine
        revision, compact_revision = machine.revision, machine.compact_revision
        return {"name": self.args.name, "version": VERSION, "member_id": self.member_id,
                "peer": self.args.peer_addr, "client": self.args.client_addr,
                "leader": stable_id(leader) if leader else 0, "leader_peer": leader,
                "is_leader": self.raft.is_leader(), "raft_term": self.raft.term(),
                "raft_index": self.raft.last_log_index(),
                "raft_applied": self.raft.last_applied(),
                "raft_commit": self.raft.commit_index(),
                "revision": revision, "compact_revision": compact_revision,
                "watchers": len(self.hub), "connections": self._connections,
                "db_size": machine.db_size, "quota": self.limits.quota_backend_bytes,
                "alarms": self._alarms()}

    async def _op_members(self, msg):
        registered = self.raft.machine.members()
        leader = self.raft.leader_addr()
        members = []
        for peer in self.raft.peer_addrs():
            meta = registered.get(peer, {})
            members.append({"id": stable_id(peer), "name": meta.get("name", ""),
                            "peer": peer, "client": meta.get("client", ""),
                            "is_leader": peer == leader})
        return {"members": members}

    async def _op_member_add(self, msg):
        name, peer = msg.get("name"), msg.get("peer")
        if not isinstance(name, str) or not isinstance(peer, str) or ":" not in peer:
            raise RequestError("invalid", "member add needs a 'name' and a 'peer' as host:port")
        await self._membership(self.raft.add_member, peer)
        await self._replicate({"op": "member_set", "peer": peer, "name": name,
                               "client": msg.get("client") or ""})
        return await self._op_members(msg)

    async def _op_member_remove(self, msg):
        target = msg.get("name") or msg.get("peer")
        registered = self.raft.machine.members()
        peers = [p for p, m in registered.items() if m.get("name") == target]
        peer = peers[0] if peers else target
        if peer not in self.raft.peer_addrs():
            raise RequestError(protocol.NOT_FOUND, f"no member named or at {target!r}; "
                               "see `steer store members`")
        await self._membership(self.raft.remove_member, peer)
        await self._replicate({"op": "member_del", "peer": peer})
        return await self._op_members(msg)

    async def _membership(self, change, peer):
        future = self.loop.create_future()
        change(peer, lambda failure: _settle(future, None, failure))
        try:
            _, failure = await asyncio.wait_for(future, self.args.request_timeout)
        except asyncio.TimeoutError:
            raise RequestError(protocol.UNAVAILABLE, "membership change did not commit in time") from None
        if failure is not None:
            raise RequestError(protocol.DENIED, f"membership change refused: {failure}")

    async def _op_snapshot(self, msg):
        await self._read_barrier()
        snapshot = self.raft.machine.to_snapshot()
        revision = self.raft.machine.revision
        return {"revision": revision, "snapshot": msgpack.packb(snapshot, use_bin_type=True)}

    # -- watches ---------------------------------------------------------------------
    def _watch(self, conn_id, msg, send):
        key = _require_bytes(msg, "key")
        self._check_watch_limits(conn_id)
        start = msg.get("start_revision", 0) or 0
        machine = self.raft.machine
        current = machine.revision
        history = {"events": []}
        if start > 0:
            history = machine.events_since(start, key, msg.get("range_end"))
        if "error" in history:
            send({"id": msg["id"], "watch": "canceled", "header": self._header(),
                  "error": history["error"]})
            return
        send({"id": msg["id"], "watch": "created", "header": {**self._header(), "revision": current}})
        watcher = Watcher(msg["id"], key, msg.get("range_end"), bool(msg.get("prev_kv")), send,
                          last_revision=start - 1 if start > 0 else current)
        self.hub.add(conn_id, watcher, history["events"], current)

    def _check_watch_limits(self, conn_id):
        limits = self.limits
        if self.hub.count(conn_id) >= limits.max_watches_per_connection:
            raise RequestError(protocol.TOO_MANY_WATCHES, (
                f"this connection already holds {self.hub.count(conn_id)} watches, the limit "
                f"is {limits.max_watches_per_connection} (--max-watches-per-connection); cancel "
                "watches you no longer need or watch a wider range"))
        if len(self.hub) >= limits.max_watches:
            raise RequestError(protocol.TOO_MANY_WATCHES, (
                f"this node already serves {len(self.hub)} watches, the limit is "
                f"{limits.max_watches} (--max-watches); watch through another member or "
                "cancel watches"))

    def _watch_cancel(self, conn_id, msg, send):
        watcher = self.hub.remove(conn_id, msg.get("watch_id"))
        if watcher is None:
            raise RequestError(protocol.NOT_FOUND, f"no watch {msg.get('watch_id')!r} on this connection")
        send({"id": watcher.watch_id, "watch": "canceled", "header": self._header()})
        send({"id": msg["id"], "header": self._header(), "result": {}})

    # -- background duties -----------------------------------------------------------
    async def _maintenance(self):
        while True:
            await asyncio.sleep(self.MAINTENANCE_PERIOD)
            try:
                self._expire_leases()
                self._register_self()
                self._auto_compact()
                self._reload_certificate()
            except Exception:
                log.exception("event=maintenance_failed")

    def _certificate_stamp(self):
        files = (self.args.cert_file, self.args.key_file)
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, files))

    def _reload_certificate(self, forced=False):
        """Load a renewed serving certificate for new connections (on SIGHUP or a file change).

        Checked at most every CERT_CHECK_PERIOD; a pair caught mid-write (key and
        certificate not matching) is skipped and read again next time.
        """
        if self.ssl_context is None or not getattr(self.args, "cert_file", None):
            return
        now = time.monotonic()
        if not forced and now - self._last_cert_check < self.CERT_CHECK_PERIOD:
            return
        self._last_cert_check = now
        try:
            stamp = self._certificate_stamp()
            if stamp == self._cert_stamp and not forced:
                return
            self.ssl_context.load_cert_chain(self.args.cert_file, self.args.key_file)
            peer_cert = getattr(self.args, "peer_cert_file", None) or self.args.cert_file
            peer_key = getattr(self.args, "peer_key_file", None) or self.args.key_file
            for context in self.peer_tls or ():    # new peer connections use it too
                context.load_cert_chain(peer_cert, peer_key)
        except (OSError, ssl.SSLError) as exc:
            log.warning("event=certificate_reload_failed error=%s", exc)
            return
        if self._cert_stamp is not None or forced:
            log.info("event=certificate_reloaded cert=%s", self.args.cert_file)
        self._cert_stamp = stamp

    def _expire_leases(self):
        for lease_id in self.leases.expired(self.raft.is_leader()):
            log.info("event=lease_expired id=%d", lease_id)
            self.raft.propose({"op": "lease_revoke", "id": lease_id}, lambda r, f: None)

    def _register_self(self):
        """Record this node's name and client address in the replicated member table."""
        now = time.monotonic()
        if now - self._last_registration < 2.0 or self.raft.leader_addr() is None:
            return
        mine = self.raft.machine.members().get(self.args.peer_addr)
        wanted = {"name": self.args.name, "client": self.args.client_addr}
        if mine != wanted:
            self._last_registration = now
            self.raft.propose({"op": "member_set", "peer": self.args.peer_addr, **wanted},
                             lambda r, f: None)

    def _auto_compact(self):
        """On the leader, compact history older than the retention window."""
        now = time.monotonic()
        retention = self.args.auto_compaction_retention
        if retention <= 0 or now - self._last_compaction_check < self.COMPACTION_PERIOD:
            return
        self._last_compaction_check = now
        if not self.raft.is_leader():
            return
        revision, compacted = self.raft.machine.revision, self.raft.machine.compact_revision
        target = revision - retention
        # Compact in steps of at least a tenth of the window, not on every write.
        if target > compacted + max(1, retention // 10):
            log.info("event=auto_compact revision=%d", target)
            self.raft.propose({"op": "compact", "revision": target}, lambda r, f: None)


def _settle(future, result, failure):
    if not future.done():
        future.set_result((result, failure))


def _require_bytes(msg, name):
    value = msg.get(name)
    if not isinstance(value, bytes):
        raise RequestError(protocol.BAD_REQUEST, f"'{name}' must be bytes")
    return value


def _with_request_id(command, msg):
    """Carry the client's (client, req) ids so a retried write applies once."""
    if isinstance(msg.get("client"), int) and isinstance(msg.get("req"), int):
        command["client"], command["req"] = msg["client"], msg["req"]
    return command


def _check_value_sizes(command):
    for branch in ("success", "failure"):
        for op in command[branch]:
            value = op.get("value") if isinstance(op, dict) else None
            if isinstance(value, bytes) and len(value) > (1 << 20):
                raise RequestError("value_too_large", (
                    f"value for key {op.get('key')!r} is {len(value)} bytes; the limit is "
                    "1 MiB (1048576 bytes): store large data elsewhere and keep a reference"))


if __name__ == "__main__":
    from store.node_main import main

    main()
