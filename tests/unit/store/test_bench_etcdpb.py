"""The store benchmark's etcd stubs are what rpc.proto generates, with etcd's wire numbers.

If the first test fails: run `make etcd-proto` and commit the regenerated files.
"""
import importlib.util
from pathlib import Path

import pytest

from bench.etcdpb import generate
from bench.etcdpb import rpc_pb2 as pb

ETCDPB_DIR = Path(generate.__file__).parent


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools is not installed (pip install -e '.[test]')")
def test_generated_modules_match_the_proto(tmp_path):
    for path in generate.generate(tmp_path):
        checked_in = ETCDPB_DIR / path.name
        assert path.read_bytes() == checked_in.read_bytes(), (
            f"{checked_in} is stale: run `make etcd-proto`")


def test_the_grpc_module_imports_the_messages_by_package_name():
    source = (ETCDPB_DIR / "rpc_pb2_grpc.py").read_text()
    assert "from bench.etcdpb import rpc_pb2" in source


# (message, field, number) as etcd's rpc.proto and kv.proto assign them; the ones out
# of declaration order, or after a gap, are the easy ones to get wrong.
ETCD_NUMBERS = [
    ("ResponseHeader", "raft_term", 4),
    ("KeyValue", "mod_revision", 3),
    ("KeyValue", "version", 4),
    ("KeyValue", "value", 5),
    ("KeyValue", "lease", 6),
    ("RangeRequest", "revision", 4),
    ("RangeRequest", "serializable", 7),
    ("RangeRequest", "count_only", 9),
    ("RangeResponse", "count", 4),
    ("PutRequest", "prev_kv", 4),
    ("StatusResponse", "leader", 4),
    ("StatusResponse", "raftTerm", 6),
    ("StatusResponse", "errors", 8),
    ("Member", "clientURLs", 4),
]


@pytest.mark.parametrize("message, field, number", ETCD_NUMBERS)
def test_field_numbers_are_etcds(message, field, number):
    assert pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


def test_services_have_etcds_grpc_names():
    assert pb.DESCRIPTOR.package == "etcdserverpb"
    services = pb.DESCRIPTOR.services_by_name
    assert set(services["KV"].methods_by_name) == {"Range", "Put"}
    assert set(services["Maintenance"].methods_by_name) == {"Status"}
    assert set(services["Cluster"].methods_by_name) == {"MemberList"}
