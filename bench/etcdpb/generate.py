"""Regenerate rpc_pb2.py and rpc_pb2_grpc.py from rpc.proto (run: make etcd-proto).

The stubs serve the store benchmark only (bench/etcd_cluster.py talks to etcd through
them); nothing at runtime imports them. As with the CRI stubs (agent/runtime/cri/
generate.py) the repository root is the include path, so the gRPC module imports
``bench.etcdpb.rpc_pb2`` by package name, the output is checked in, and
tests/unit/store/test_bench_etcdpb.py fails when it is stale. grpcio-tools is pinned
in setup.cfg because its protoc decides the bytes.
"""
import sys
from pathlib import Path

from agent.runtime.cri.generate import compile_proto

PROTO = "bench/etcdpb/rpc.proto"
REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("rpc_pb2.py", "rpc_pb2_grpc.py")


def generate(out_root, repo_root=REPO_ROOT):
    """Compile the etcd proto into ``out_root``/bench/etcdpb/; return the written paths."""
    return compile_proto(PROTO, GENERATED, out_root, repo_root)


def main():
    for path in generate(REPO_ROOT):
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
