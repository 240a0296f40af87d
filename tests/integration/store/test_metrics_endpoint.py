"""A running store node serves Prometheus metrics and a health check."""

import urllib.request

from cli.local_store import LocalStoreCluster


def test_store_node_serves_metrics(tmp_path):
    cluster = LocalStoreCluster(1, base_dir=tmp_path)
    try:
        cluster.start_all()
        cluster.wait_ready(timeout=30)
        with cluster.client() as client:
            client.put(b"k", b"v")
            client.get(b"k")
        url = f"http://{cluster.nodes[0].metrics_addr}"
        text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
        assert 'steer_store_requests_total{op="put",code="ok"} 1' in text
        assert "steer_store_is_leader 1" in text
        assert "steer_store_revision 2" in text
        assert urllib.request.urlopen(url + "/healthz", timeout=5).read() == b"ok\n"
    finally:
        cluster.stop_all()
