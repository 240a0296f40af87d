"""The command line of a store node (`steer-store`): flags, their checks, logging, start.

Kept apart from store/server.py so that the server reads as the node it runs and
this as the one place that turns argv into a configured node.
"""

import argparse
import asyncio
import logging
import os
import sys

from store import metrics, tls
from store.batching import MAX_BATCH_BYTES, MAX_BATCH_REQUESTS
from store.connection import Limits
from store.peer_frames import APPEND_BYTES
from store.server import StoreServer


def parse_initial_cluster(text):
    """Parse 'n1=host:port,n2=host:port' into {name: peer address}."""
    cluster = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, peer = item.partition("=")
        if not sep or not name or ":" not in peer:
            raise argparse.ArgumentTypeError(
                f"bad --initial-cluster entry {item!r}: expected name=host:port")
        cluster[name] = peer
    return cluster


def build_parser():
    p = argparse.ArgumentParser(prog="steer-store", description="Run one Steersman store node.")
    p.add_argument("--name", required=True, help="this member's name, e.g. s1")
    p.add_argument("--data-dir", required=True, help="where the journal and snapshots live")
    p.add_argument("--peer-addr", required=True, help="host:port for Raft traffic (bound exactly)")
    p.add_argument("--client-addr", required=True, help="host:port for clients")
    p.add_argument("--initial-cluster", required=True, type=parse_initial_cluster,
                   help="every member at bootstrap: s1=host:port,s2=host:port,...")
    p.add_argument("--secret-file",
                   help="ignored (accepted so that old scripts still start): the peer port "
                        "uses mutual TLS with --peer-cert-file, no shared secret")
    p.add_argument("--cluster-token", default="steersman", help="names this cluster (cluster id)")
    p.add_argument("--request-timeout", type=float, default=5.0,
                   help="seconds a request waits for a commit before 'unavailable'")
    p.add_argument("--auto-compaction-retention", type=int, default=10000,
                   help="revisions of history to keep (0 disables automatic compaction)")
    p.add_argument("--raft-log-compact-entries", type=int, default=5000,
                   help="Raft log entries before a snapshot replaces them")
    p.add_argument("--election-min", type=float, default=0.8, help="min election timeout, s")
    p.add_argument("--election-max", type=float, default=1.6, help="max election timeout, s")
    p.add_argument("--metrics-addr", default="",
                   help="host:port to serve Prometheus /metrics and /healthz (off if empty)")
    p.add_argument("--metrics-cert-file",
                   help="serve --metrics-addr over TLS with this certificate (the member's)")
    p.add_argument("--metrics-key-file", help="key of --metrics-cert-file")
    p.add_argument("--metrics-client-ca-file",
                   help="the CLUSTER CA: only its client certificates in group "
                        "system:monitoring may read /metrics (never the store CA)")
    p.add_argument("--heartbeat", type=float, default=0.1, help="leader heartbeat period, s")
    # The client port's limits (store/connection.py); defaults fit a small cluster.
    limits = Limits()
    p.add_argument("--max-connections", type=int, default=limits.max_connections,
                   help="client connections served at once; more are refused with "
                        "too_many_connections")
    p.add_argument("--max-inflight", type=int, default=limits.max_inflight,
                   help="requests in flight per connection; more are answered with "
                        "too_many_requests")
    p.add_argument("--max-queued-bytes", type=int, default=limits.max_queued_bytes,
                   help="output bytes queued for one client before it is dropped as not reading")
    p.add_argument("--idle-timeout", type=float, default=limits.idle_timeout,
                   help="seconds before a connection with nothing in flight and no watch is closed")
    p.add_argument("--frame-timeout", type=float, default=limits.frame_timeout,
                   help="seconds a request frame may take to arrive whole after its first byte")
    p.add_argument("--max-request-bytes", type=int, default=limits.max_request_bytes,
                   help="largest request frame accepted (as etcd's flag)")
    p.add_argument("--max-watches-per-connection", type=int,
                   default=limits.max_watches_per_connection, help="watches open per connection")
    p.add_argument("--max-watches", type=int, default=limits.max_watches,
                   help="watches open on this node in all")
    p.add_argument("--max-range-bytes", type=int, default=limits.max_range_bytes,
                   help="largest range answer (key + value bytes); larger ones must be paged")
    p.add_argument("--quota-backend-bytes", type=int, default=limits.quota_backend_bytes,
                   help="store size (every retained key version) past which writes fail with "
                        "no_space until compaction frees room (as etcd's flag)")
    # Proposal batching (store/batching.py): caps on one Raft entry.
    p.add_argument("--max-batch-requests", type=int, default=MAX_BATCH_REQUESTS,
                   help="most write requests gathered into one Raft entry")
    p.add_argument("--max-batch-bytes", type=int, default=MAX_BATCH_BYTES,
                   help="most command bytes gathered into one Raft entry (a larger "
                        "single request still goes alone)")
    # The client port's TLS, with etcd's flag names.
    p.add_argument("--cert-file", help="serving certificate of the client port (PEM)")
    p.add_argument("--key-file", help="key of --cert-file (PEM)")
    p.add_argument("--trusted-ca-file",
                   help="CA whose client certificates the client port accepts (the store CA)")
    p.add_argument("--client-cert-auth", action="store_true",
                   help="require a client certificate signed by --trusted-ca-file")
    # The peer port's mutual TLS, with etcd's flag names; by default the client
    # port's files (the member certificate then needs serverAuth and clientAuth).
    p.add_argument("--peer-cert-file",
                   help="this member's certificate on the peer port, for both serving and "
                        "dialing: serverAuth and clientAuth (default: --cert-file)")
    p.add_argument("--peer-key-file", help="key of --peer-cert-file (default: --key-file)")
    p.add_argument("--peer-trusted-ca-file",
                   help="the store CA: only members it signed may connect on the peer port "
                        "(default: --trusted-ca-file)")
    p.add_argument("--insecure-plain-client", action="store_true",
                   help="serve the client port as plain TCP: anyone who reaches it can read "
                        "and write everything (tests and benchmarks only)")
    return p


def client_tls(args):
    """Return the client port's SSL context from the flags, None for plain TCP, or exit."""
    if args.insecure_plain_client:
        if args.cert_file or args.key_file or args.client_cert_auth:
            sys.exit("steer-store: --insecure-plain-client cannot be combined with "
                     "--cert-file, --key-file or --client-cert-auth")
        return None
    if not args.cert_file or not args.key_file:
        sys.exit("steer-store: the client port needs TLS: pass --cert-file and --key-file "
                 "(with --trusted-ca-file and --client-cert-auth to require client "
                 "certificates), or --insecure-plain-client to serve it unencrypted")
    if args.client_cert_auth and not args.trusted_ca_file:
        sys.exit("steer-store: --client-cert-auth needs --trusted-ca-file (the store CA)")
    try:
        return tls.server_context(args.cert_file, args.key_file, args.trusted_ca_file,
                                  args.client_cert_auth)
    except (OSError, ValueError) as exc:
        sys.exit(f"steer-store: cannot load the client port's certificates: {exc}")


def metrics_tls(args):
    """Return the metrics port's SSL context (None: plain HTTP, no flags given), or exit."""
    files = (args.metrics_cert_file, args.metrics_key_file, args.metrics_client_ca_file)
    if not any(files):
        return None
    if not all(files):
        sys.exit("steer-store: the metrics port's TLS needs all of --metrics-cert-file, "
                 "--metrics-key-file and --metrics-client-ca-file (the cluster CA)")
    try:
        return metrics.server_context(*files)
    except (OSError, ValueError) as exc:
        sys.exit(f"steer-store: cannot load the metrics port's certificates: {exc}")


def peer_tls(args):
    """Return the peer port's (server, client) SSL contexts from the flags, or exit."""
    cert = args.peer_cert_file or args.cert_file
    key = args.peer_key_file or args.key_file
    ca = args.peer_trusted_ca_file or args.trusted_ca_file
    if not (cert and key and ca):
        sys.exit("steer-store: the peer port needs mutual TLS: pass --peer-cert-file, "
                 "--peer-key-file and --peer-trusted-ca-file (the store CA), or the client "
                 "port's --cert-file, --key-file and --trusted-ca-file, which it then uses too")
    try:
        return tls.peer_contexts(cert, key, ca)
    except (OSError, ValueError) as exc:
        sys.exit(f"steer-store: cannot load the peer port's certificates: {exc}")


def configure_logging():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)


#: The store's umask: the journal, dumps and snapshots are the member's alone (0600/0700).
PRIVATE_UMASK = 0o077


def private_data_dir(path):
    """Create the data dir 0700 and tighten what an older member left readable in it."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o700)
        for name in filenames:
            file = os.path.join(dirpath, name)
            if not os.path.islink(file):
                os.chmod(file, 0o600)


def main(argv=None):
    os.umask(PRIVATE_UMASK)
    args = build_parser().parse_args(argv)
    configure_logging()
    if args.name not in args.initial_cluster or args.initial_cluster[args.name] != args.peer_addr:
        sys.exit(f"steer-store: --initial-cluster must list this member as "
                 f"{args.name}={args.peer_addr}")
    bad_limits = [name for name in ("max_connections", "max_inflight", "max_queued_bytes",
                                    "idle_timeout", "frame_timeout", "max_request_bytes",
                                    "max_watches_per_connection", "max_watches",
                                    "max_range_bytes", "quota_backend_bytes",
                                    "max_batch_requests", "max_batch_bytes")
                  if getattr(args, name) <= 0]
    if bad_limits:
        sys.exit("steer-store: these limits must be positive: "
                 + ", ".join("--" + name.replace("_", "-") for name in bad_limits))
    # PySyncObj only asserts these (a bare AssertionError); say what is wrong instead.
    if not 0 < args.heartbeat * 3 < args.election_min < args.election_max:
        sys.exit(f"steer-store: need 0 < 3 * --heartbeat ({args.heartbeat:g}) < "
                 f"--election-min ({args.election_min:g}) < --election-max "
                 f"({args.election_max:g})")
    largest_entry = max(args.max_request_bytes, args.max_batch_bytes)
    if largest_entry > APPEND_BYTES // 2:
        sys.exit(f"steer-store: --max-request-bytes and --max-batch-bytes must stay at or "
                 f"below {APPEND_BYTES // 2} (a Raft entry must fit one peer frame)")
    context = client_tls(args)
    peer_contexts = peer_tls(args)
    args.metrics_tls = metrics_tls(args)
    if args.secret_file:
        logging.getLogger("steer.store").warning(
            "event=secret_file_ignored msg=--secret-file is ignored: the peer port uses "
            "mutual TLS with the member certificate; drop the flag")
    if context is None:
        logging.getLogger("steer.store").warning(
            "event=insecure_plain_client msg=the client port serves plain TCP without "
            "authentication")
    elif not args.client_cert_auth:
        logging.getLogger("steer.store").warning(
            "event=client_cert_auth_off msg=any client that trusts the member may connect")
    private_data_dir(args.data_dir)
    asyncio.run(StoreServer(args, peer_contexts, context).serve())

