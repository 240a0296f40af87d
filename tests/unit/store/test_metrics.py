"""The store's Prometheus text output."""

from store.metrics import StoreMetrics


def test_render_counts_latency_buckets_and_gauges():
    metrics = StoreMetrics(lambda: {"steer_store_revision": ("Current store revision.", 42)})
    metrics.observe("put", "ok", 0.003)
    metrics.observe("put", "ok", 0.2)
    metrics.observe("range", "unavailable", 6.0)
    text = metrics.render()
    assert 'steer_store_requests_total{op="put",code="ok"} 2' in text
    assert 'steer_store_requests_total{op="range",code="unavailable"} 1' in text
    # Buckets are cumulative: 0.003 s falls in le=0.005 and above, 0.2 s in le=0.25.
    assert 'steer_store_request_seconds_bucket{op="put",le="0.0025"} 0' in text
    assert 'steer_store_request_seconds_bucket{op="put",le="0.005"} 1' in text
    assert 'steer_store_request_seconds_bucket{op="put",le="0.25"} 2' in text
    assert 'steer_store_request_seconds_bucket{op="range",le="5"} 0' in text
    assert 'steer_store_request_seconds_bucket{op="range",le="+Inf"} 1' in text
    assert 'steer_store_request_seconds_count{op="put"} 2' in text
    assert "# TYPE steer_store_revision gauge\nsteer_store_revision 42" in text
