"""The store benchmark's etcd side: native gRPC over mutual TLS, Steersman's Raft timing.

Needs the `etcd` binary (Debian etcd-server); skipped with the reason where it is missing.
"""

import shutil

import grpc
import pytest

from bench.etcd_cluster import ELECTION_MS, HEARTBEAT_MS, EtcdClient, EtcdCluster, EtcdError
from bench.etcdpb import rpc_pb2 as pb
from bench.etcdpb import rpc_pb2_grpc as pb_grpc

pytestmark = pytest.mark.skipif(shutil.which("etcd") is None,
                                reason="etcd is not installed (apt-get install etcd-server)")


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    cluster = EtcdCluster(size=3, base_dir=tmp_path_factory.mktemp("etcd"))
    try:
        cluster.start_all()
        cluster.wait_ready(timeout=60)
        yield cluster
    finally:
        cluster.stop_all()


def test_put_and_linearizable_get_through_grpc(etcd):
    client = EtcdClient(etcd.endpoints, timeout=10, tls=etcd.client_tls)
    try:
        revision = client.put(b"bench/k", b"v")["header"]["revision"]
        got = client.get(b"bench/k")
        assert got["kvs"][0]["value"] == b"v" and got["kvs"][0]["mod_revision"] == revision
        assert client.status()["leader"] != 0
    finally:
        client.close()


def test_a_client_without_a_certificate_is_refused(etcd):
    ca = open(etcd.client_tls["ca_file"], "rb").read()
    channel = grpc.secure_channel(etcd.endpoints[0], grpc.ssl_channel_credentials(ca))
    try:
        with pytest.raises(grpc.RpcError):
            pb_grpc.KVStub(channel).Range(pb.RangeRequest(key=b"bench/k"), timeout=5)
    finally:
        channel.close()
    with pytest.raises(ValueError):
        EtcdClient(etcd.endpoints, tls=None)


def test_members_run_steersmans_raft_timing_and_tls_on_both_ports(etcd):
    command = etcd._command(0)
    assert command[command.index("--heartbeat-interval") + 1] == str(HEARTBEAT_MS) == "100"
    assert command[command.index("--election-timeout") + 1] == str(ELECTION_MS) == "800"
    assert "--client-cert-auth" in command and "--peer-client-cert-auth" in command
    assert "--unsafe-no-fsync" not in command
    assert all(url.startswith("https://") for flag in ("--listen-client-urls",
               "--listen-peer-urls") for url in [command[command.index(flag) + 1]])


def test_a_dead_endpoint_is_an_etcd_error_and_the_client_moves_on(etcd):
    client = EtcdClient(["127.0.0.1:1", *etcd.endpoints], timeout=2, tls=etcd.client_tls)
    try:
        with pytest.raises(EtcdError):
            client.put(b"bench/k2", b"v")
        assert client.put(b"bench/k2", b"v")["header"]["revision"] > 0
    finally:
        client.close()
