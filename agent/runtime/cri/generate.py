"""Regenerate api_pb2.py and api_pb2_grpc.py from api.proto (run: make cri-proto).

The proto is compiled with the repository root as the include path, so the generated
gRPC module imports ``agent.runtime.cri.api_pb2`` by its package name (protoc would
otherwise write a top-level ``import api_pb2`` that only works from this directory).
The output is checked in; tests/unit/agent/test_cri_proto_current.py fails when it is
stale. grpcio-tools is pinned in setup.cfg because its protoc decides the bytes.
"""
import sys
from pathlib import Path

PROTO = "agent/runtime/cri/api.proto"
REPO_ROOT = Path(__file__).resolve().parents[3]
GENERATED = ("api_pb2.py", "api_pb2_grpc.py")


def generate(out_root, repo_root=REPO_ROOT):
    """Compile the CRI proto into ``out_root``/agent/runtime/cri/; return the written paths."""
    return compile_proto(PROTO, GENERATED, out_root, repo_root)


def compile_proto(proto, generated, out_root, repo_root=REPO_ROOT):
    """Compile ``proto`` (a path from the repository root) with message and gRPC modules.

    The repository root is the include path, so the gRPC module imports its message
    module by package name. Also used for the store benchmark's etcd stubs.
    """
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(
            "grpc_tools is missing: install the test extra (pip install -e '.[test]')"
        ) from exc
    out_root = Path(out_root)
    out_root.joinpath(proto).parent.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{repo_root}",
        f"--python_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(Path(repo_root) / proto),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {proto}; its message is above")
    return [out_root.joinpath(proto).parent / name for name in generated]


def main():
    for path in generate(REPO_ROOT):
        print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
