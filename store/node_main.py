"""The command line of a store node (`steer-store`): flags, their checks, logging, start.

Kept apart from store/server.py so that the server reads as the node it runs and
this as the one place that turns argv into a configured node.
"""

import argparse
import asyncio
import logging
import os
import sys

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
    p.add_argument("--secret-file", required=True,
                   help="file holding the cluster secret that encrypts Raft traffic")
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
    p.add_argument("--heartbeat", type=float, default=0.1, help="leader heartbeat period, s")
    return p


def configure_logging():
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    logging.getLogger("pysyncobj").setLevel(logging.WARNING)


def main(argv=None):
    args = build_parser().parse_args(argv)
    configure_logging()
    if args.name not in args.initial_cluster or args.initial_cluster[args.name] != args.peer_addr:
        sys.exit(f"steer-store: --initial-cluster must list this member as "
                 f"{args.name}={args.peer_addr}")
    # PySyncObj only asserts these (a bare AssertionError); say what is wrong instead.
    if not 0 < args.heartbeat * 3 < args.election_min < args.election_max:
        sys.exit(f"steer-store: need 0 < 3 * --heartbeat ({args.heartbeat:g}) < "
                 f"--election-min ({args.election_min:g}) < --election-max "
                 f"({args.election_max:g})")
    try:
        with open(args.secret_file, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        sys.exit(f"steer-store: cannot read --secret-file: {exc}")
    if len(secret) < 16:
        sys.exit("steer-store: the cluster secret must be at least 16 bytes")
    os.makedirs(args.data_dir, exist_ok=True)
    asyncio.run(StoreServer(args, secret).serve())

