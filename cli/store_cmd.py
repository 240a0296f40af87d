"""`steer store ...`: run a local store cluster and read, write and watch it.

Endpoints come from ``--endpoints``, else ``$STEER_STORE_ENDPOINTS``, else the
local cluster that `steer store up` recorded in ``--dir`` (~/.steer/store). The
client port speaks mutual TLS: the store CA and the admin's client certificate come
from ``--cacert``/``--cert``/``--key`` (etcdctl's names; or $STEER_STORE_CACERT,
$STEER_STORE_CERT, $STEER_STORE_KEY), else from the recorded local cluster.
"""

import json
import os
import subprocess
import sys

from cli.local_cluster import child_environment
from cli.local_store import STATE_FILE, LocalStoreCluster
from store.client import StoreClient, StoreError, prefix_end

DEFAULT_DIR = os.path.join(os.path.expanduser("~"), ".steer", "store")


class CommandError(Exception):
    """A failure to report as one line on stderr with a non-zero exit."""

    def __init__(self, message, exit_code=1):
        super().__init__(message)
        self.exit_code = exit_code


# -- wiring ---------------------------------------------------------------------------
def register(groups):
    store = groups.add_parser("store", help="the Raft store (etcd's place)")
    store.add_argument("--endpoints", default=os.environ.get("STEER_STORE_ENDPOINTS"),
                       help="comma-separated host:port client addresses")
    store.add_argument("--dir", default=os.environ.get("STEER_STORE_DIR", DEFAULT_DIR),
                       help="local cluster directory (default ~/.steer/store)")
    store.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    store.add_argument("--cacert", dest="ca_file", default=os.environ.get("STEER_STORE_CACERT"),
                       help="the store CA, to verify members (default: the local cluster's)")
    store.add_argument("--cert", dest="cert_file", default=os.environ.get("STEER_STORE_CERT"),
                       help="client certificate (default: the local cluster's admin cert)")
    store.add_argument("--key", dest="key_file", default=os.environ.get("STEER_STORE_KEY"),
                       help="key of --cert")
    verbs = store.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    up = verbs.add_parser("up", help="start a local cluster on this machine")
    up.add_argument("--nodes", type=int, choices=(1, 3, 5), default=3)
    up.set_defaults(func=cmd_up)
    verbs.add_parser("down", help="stop the local cluster").set_defaults(func=cmd_down)
    verbs.add_parser("status", help="every member's view").set_defaults(func=cmd_status)
    verbs.add_parser("members", help="list members").set_defaults(func=cmd_members)

    get = verbs.add_parser("get", help="read a key or a prefix")
    get.add_argument("key")
    get.add_argument("--prefix", action="store_true")
    get.add_argument("--rev", type=int, default=0, help="read at this revision")
    get.add_argument("--limit", type=int, default=0)
    get.add_argument("--keys-only", action="store_true")
    get.add_argument("--serializable", action="store_true", help="local read, may be stale")
    get.add_argument("-o", "--output", choices=("simple", "json"), default="simple")
    get.set_defaults(func=cmd_get)

    put = verbs.add_parser("put", help="write a key ('-' reads the value from stdin)")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--lease", type=int, default=0)
    put.set_defaults(func=cmd_put)

    delete = verbs.add_parser("del", help="delete a key or a prefix")
    delete.add_argument("key")
    delete.add_argument("--prefix", action="store_true")
    delete.set_defaults(func=cmd_del)

    watch = verbs.add_parser("watch", help="print changes as they commit")
    watch.add_argument("key")
    watch.add_argument("--prefix", action="store_true")
    watch.add_argument("--rev", type=int, default=0, help="replay history from this revision")
    watch.add_argument("--count", type=int, default=0, help="exit after this many events")
    watch.set_defaults(func=cmd_watch)

    compact = verbs.add_parser("compact", help="drop history older than a revision")
    compact.add_argument("revision", type=int)
    compact.set_defaults(func=cmd_compact)

    member = verbs.add_parser("member", help="add or remove a member").add_subparsers(
        dest="member_verb", metavar="add|remove")
    member.required = True
    add = member.add_parser("add", help="add a voting member, then start it")
    add.add_argument("name")
    add.add_argument("peer", help="its Raft address host:port")
    add.set_defaults(func=cmd_member_add)
    remove = member.add_parser("remove", help="remove a member by name or peer address")
    remove.add_argument("name")
    remove.set_defaults(func=cmd_member_remove)
    _register_member_replace(member)

    snapshot = verbs.add_parser("snapshot", help="save or restore a snapshot").add_subparsers(
        dest="snapshot_verb", metavar="save|restore")
    snapshot.required = True
    save = snapshot.add_parser("save", help="write a consistent snapshot to a file")
    save.add_argument("file")
    save.set_defaults(func=cmd_snapshot_save)
    restore = snapshot.add_parser(
        "restore", help="start a new local cluster in --dir from a snapshot file")
    restore.add_argument("file")
    restore.add_argument("--nodes", type=int, choices=(1, 3, 5), default=3)
    restore.set_defaults(func=cmd_snapshot_restore)


def _register_member_replace(member):
    """`steer store member replace`: a control host of a `steer cluster create` cluster."""
    from cli.baremetal.commands import add_ssh_flags  # cli.baremetal imports this module

    replace = member.add_parser(
        "replace", help="replace a control host (store member) of a cluster made by "
                        "`steer cluster create` with a new host")
    replace.add_argument("old", metavar="OLD", help="the member's host name")
    replace.add_argument("--with", dest="with_target", required=True, metavar="USER@HOST",
                         help="the new control host")
    replace.add_argument("--cluster", default="steersman", help="the cluster's name")
    replace.add_argument("--wheelhouse", metavar="DIR",
                         help="install this wheelhouse instead of building one")
    replace.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    add_ssh_flags(replace)
    replace.set_defaults(func=_member_replace)


def _member_replace(args):
    from cli.baremetal.members import cmd_replace
    return cmd_replace(args)


def _client(args, endpoints=None, timeout=None):
    """A client of ``endpoints`` (default: the command's), with the admin's credentials."""
    recorded = None
    if os.path.exists(os.path.join(args.dir, STATE_FILE)):
        recorded = LocalStoreCluster.load(args.dir)
    endpoints = endpoints or args.endpoints
    if not endpoints:
        if recorded is None:
            raise CommandError("no store endpoints: start one with `steer store up` or pass "
                               "--endpoints host:port,...")
        endpoints = ",".join(recorded.endpoints)
    try:
        return StoreClient(endpoints, timeout=timeout or args.timeout,
                           **_credentials(args, recorded))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot load the store credentials: {exc}") from None


def _credentials(args, recorded):
    """TLS files from the flags, else the recorded local cluster's admin certificate."""
    if args.ca_file or args.cert_file:
        if not args.ca_file or bool(args.cert_file) != bool(args.key_file):
            raise CommandError("--cacert is needed with --cert, and --cert and --key go "
                               "together")
        return {"ca_file": args.ca_file, "cert_file": args.cert_file,
                "key_file": args.key_file}
    if recorded is not None:
        files = recorded.client_tls["admin"]
        missing = [path for path in files.values() if not os.path.exists(path)]
        if missing:
            raise CommandError(f"the admin's store certificate is missing ({missing[0]}); "
                               "`steer store up` issues it again")
        return files
    return {}


def _run(call):
    try:
        return call()
    except StoreError as exc:
        raise CommandError(f"{exc.code}: {exc.message}") from None


def _text(data):
    return data.decode("utf-8", "backslashreplace")


def _range_end(args):
    return prefix_end(args.key.encode()) if args.prefix else None


def _table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


# -- local cluster -------------------------------------------------------------------
def cmd_up(args):
    if os.path.exists(os.path.join(args.dir, STATE_FILE)):
        # Restart the recorded cluster on its recorded addresses: its Raft
        # membership and data are bound to them.
        cluster = LocalStoreCluster.load(args.dir)
        stopped = [i for i in range(len(cluster.nodes)) if not cluster.is_running(i)]
        if not stopped:
            print(f"the local store in {args.dir} is already running; "
                  "`steer store down` stops it")
            return 0
        print(f"restarting {len(stopped)} store node(s) in {args.dir} ...", flush=True)
        for i in stopped:
            cluster.start(i)
        cluster.save()
    else:
        cluster = LocalStoreCluster(args.nodes, base_dir=args.dir, detach=True)
        print(f"starting {args.nodes} store nodes in {args.dir} ...", flush=True)
        cluster.start_all()
    try:
        leader = cluster.wait_ready(timeout=60)
    except Exception as exc:
        cluster.stop_all()
        raise CommandError(f"the store did not become ready: {exc}; logs are in {args.dir}") from None
    print(f"store ready: leader {cluster.nodes[leader].name}, endpoints "
          f"{','.join(cluster.endpoints)}")
    return 0


def cmd_down(args):
    if not os.path.exists(os.path.join(args.dir, STATE_FILE)):
        print(f"no local store recorded in {args.dir}")
        return 0
    cluster = LocalStoreCluster.load(args.dir)
    for i, node in enumerate(cluster.nodes):
        if cluster.is_running(i):
            pid = node.pid
            cluster.stop(i)
            print(f"stopped {node.name} (pid {pid})")
    cluster.save()
    print(f"data kept in {args.dir}; remove it to start from scratch")
    return 0


# -- reads and writes ----------------------------------------------------------------------
def cmd_status(args):
    endpoints = _client(args).endpoints
    rows = [("NAME", "ENDPOINT", "LEADER", "TERM", "REVISION", "RAFT-INDEX", "APPLIED")]
    down = 0
    for endpoint in endpoints:
        with _client(args, [endpoint], min(args.timeout, 2.0)) as client:
            try:
                s = client.status()
            except StoreError:
                rows.append(("?", endpoint, "unreachable", "", "", "", ""))
                down += 1
                continue
        rows.append((s["name"], endpoint, "yes" if s["is_leader"] else "",
                     s["raft_term"], s["revision"], s["raft_index"], s["raft_applied"]))
    _table(rows)
    return 1 if down == len(endpoints) else 0


def cmd_members(args):
    members = _run(_client(args).members)
    rows = [("ID", "NAME", "PEER", "CLIENT", "LEADER")]
    rows += [(f"{m['id']:x}", m["name"] or "(not started)", m["peer"], m["client"],
              "yes" if m["is_leader"] else "")
             for m in sorted(members, key=lambda m: (m["name"], m["peer"]))]
    _table(rows)


def cmd_get(args):
    result = _run(lambda: _client(args).get(
        args.key.encode(), range_end=_range_end(args), revision=args.rev, limit=args.limit,
        keys_only=args.keys_only, serializable=args.serializable))
    if args.output == "json":
        print(json.dumps({"revision": result["revision"], "count": result["count"], "kvs": [
            {**kv, "key": _text(kv["key"]), "value": _text(kv["value"])} for kv in result["kvs"]
        ]}, indent=2))
        return 0
    for kv in result["kvs"]:
        print(_text(kv["key"]))
        if not args.keys_only:
            print(_text(kv["value"]))
    if not result["kvs"] and not args.prefix:
        raise CommandError(f"key {args.key!r} not found", exit_code=1)
    return 0


def cmd_put(args):
    value = sys.stdin.buffer.read() if args.value == "-" else args.value.encode()
    result = _run(lambda: _client(args).put(args.key.encode(), value, lease=args.lease))
    print(f"OK (revision {result['revision']})")


def cmd_del(args):
    result = _run(lambda: _client(args).delete(args.key.encode(), range_end=_range_end(args)))
    print(result["deleted"])


def cmd_watch(args):
    client = _client(args)
    watch = _run(lambda: client.watch(args.key.encode(), range_end=_range_end(args),
                                      start_revision=args.rev))
    seen = 0
    try:
        while True:
            event = _run(watch.next_event)
            if event is None:
                return 0
            kv = event["kv"]
            print(f"{event['type'].upper()} rev={kv['mod_revision']} {_text(kv['key'])}"
                  + (f" {_text(kv['value'])}" if event["type"] == "put" else ""), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                return 0
    finally:
        watch.cancel()


def cmd_compact(args):
    result = _run(lambda: _client(args).compact(args.revision))
    print(f"compacted history before revision {result['compact_revision']}")


def cmd_member_add(args):
    _run(lambda: _client(args).member_add(args.name, args.peer))
    print(f"added {args.name} at {args.peer}; now start it with --initial-cluster listing "
          "every member, itself included")


def cmd_member_remove(args):
    _run(lambda: _client(args).member_remove(args.name))
    print(f"removed {args.name}")


def cmd_snapshot_save(args):
    revision = _run(lambda: _client(args).snapshot_save(args.file))
    print(f"saved snapshot at revision {revision} to {args.file}")


def cmd_snapshot_restore(args):
    if os.path.exists(os.path.join(args.dir, STATE_FILE)):
        raise CommandError(f"{args.dir} already holds a cluster: restore into a new --dir")
    if not os.path.exists(args.file):
        raise CommandError(f"no snapshot file {args.file}")
    cluster = LocalStoreCluster(args.nodes, base_dir=args.dir, detach=True)
    revision = restore_snapshot(args.file, cluster)
    cluster.start_all()
    cluster.wait_ready(timeout=60)
    print(f"restored revision {revision} into a new {args.nodes}-node cluster in {args.dir}")


def restore_snapshot(snapshot_file, cluster):
    """Seed the (not started) members' data dirs from a snapshot; return its revision.

    Writing Raft data dirs is the store's business, so the store's own command does
    it (`python -m store.restore`) and the CLI imports none of its internals.
    """
    argv = [sys.executable, "-m", "store.restore", snapshot_file]
    for node in cluster.nodes:
        argv += ["--member", node.name, node.peer_addr, node.client_addr, node.data_dir]
    done = subprocess.run(argv, capture_output=True, text=True, env=child_environment())
    if done.returncode != 0:
        raise CommandError(done.stderr.strip().splitlines()[-1] if done.stderr.strip()
                           else f"store.restore exited with {done.returncode}")
    return int(done.stdout.split()[-1])
