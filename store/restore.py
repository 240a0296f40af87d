"""Restore a snapshot file (``StoreClient.snapshot_save``) into a fresh cluster.

As ``etcdutl snapshot restore``: the snapshot becomes every new member's starting
state, and the new cluster's own members replace the member table of the cluster
the snapshot was taken from. Run it before the new members ever start.

It is also a command, so that `steer store snapshot restore` can seed data dirs
without importing store internals::

    python -m store.restore SNAPSHOT --member NAME PEER_ADDR CLIENT_ADDR DATA_DIR ...
"""

import argparse
import os
import sys
from types import SimpleNamespace

import msgpack

from store.machine import Machine
from store.raft import DUMP_FILE, JOURNAL_FILE, write_restored_dump


def read_snapshot(snapshot_path):
    """Read and check a snapshot file; return the machine snapshot dict."""
    with open(snapshot_path, "rb") as f:
        data = msgpack.unpackb(f.read(), raw=False, strict_map_key=False)
    Machine.from_snapshot(data)     # raises ValueError on a file that is not a snapshot
    return data


def restore_snapshot(snapshot_path, cluster):
    """Seed every node of ``cluster`` (a LocalStoreCluster, not started) from a snapshot.

    Returns the restored revision. Refuses data dirs that already hold Raft state.
    """
    machine_snapshot = read_snapshot(snapshot_path)
    machine_snapshot["members"] = [[n.peer_addr, n.name, n.client_addr]
                                   for n in sorted(cluster.nodes, key=lambda n: n.peer_addr)]
    peers = [n.peer_addr for n in cluster.nodes]
    for node in cluster.nodes:
        for name in (JOURNAL_FILE, DUMP_FILE):
            if os.path.exists(os.path.join(node.data_dir, name)):
                raise FileExistsError(f"{node.data_dir} already holds store data; "
                                      "restore only into empty data dirs")
    for node in cluster.nodes:
        write_restored_dump(node.data_dir, machine_snapshot, peers)
    return machine_snapshot["revision"]


def build_parser():
    """Describe the command line of `python -m store.restore`."""
    parser = argparse.ArgumentParser(
        prog="python -m store.restore",
        description="Seed the data dirs of a new store cluster from a snapshot file.")
    parser.add_argument("snapshot", help="a file written by `steer store snapshot save`")
    parser.add_argument("--member", action="append", nargs=4, required=True,
                        metavar=("NAME", "PEER_ADDR", "CLIENT_ADDR", "DATA_DIR"),
                        help="one member of the new cluster (repeat for each)")
    return parser


def main(argv=None):
    """Restore, print the restored revision on stdout; exit 1 with one line on stderr."""
    args = build_parser().parse_args(argv)
    nodes = [SimpleNamespace(name=name, peer_addr=peer, client_addr=client, data_dir=data_dir)
             for name, peer, client, data_dir in args.member]
    try:
        revision = restore_snapshot(args.snapshot, SimpleNamespace(nodes=nodes))
    except (OSError, ValueError) as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print(revision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
