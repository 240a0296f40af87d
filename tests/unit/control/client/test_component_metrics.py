"""The control plane's Prometheus families: text format, workqueue and node-condition metrics."""

from control.client import metrics
from control.client.workqueue import RateLimitingQueue
from control.controllers.nodemetrics import node_condition_samples, register_node_conditions
from control.scheduler.metrics import register_pending_pods


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_counter_gauge_histogram_render_in_text_format():
    registry = metrics.Registry()
    count = metrics.counter("things_total", "Things.", ("kind",), registry=registry)
    level = metrics.gauge("level", "Level.", registry=registry)
    seconds = metrics.histogram("took_seconds", "Took.", ("op",), buckets=(0.1, 1.0),
                                registry=registry)
    count.inc('a"b\\c\n')
    count.inc('a"b\\c\n', amount=2)
    level.set(value=2.5)
    seconds.observe("get", value=0.05)
    seconds.observe("get", value=0.5)
    seconds.observe("get", value=7)
    text = registry.render()
    assert "# TYPE things_total counter" in text
    assert 'things_total{kind="a\\"b\\\\c\\n"} 3' in text
    assert "# TYPE level gauge\nlevel 2.5" in text
    assert 'took_seconds_bucket{op="get",le="0.1"} 1' in text
    assert 'took_seconds_bucket{op="get",le="1.0"} 2' in text
    assert 'took_seconds_bucket{op="get",le="+Inf"} 3' in text
    assert 'took_seconds_count{op="get"} 3' in text
    assert 'took_seconds_sum{op="get"} 7.55' in text
    # Registering a name again returns the first family, so modules can share one.
    assert metrics.counter("things_total", "Again.", ("kind",), registry=registry) is count


def test_process_metrics_are_read_from_proc():
    registry = metrics.Registry()
    metrics.register_process_metrics(registry)
    lines = {line.split()[0]: float(line.split()[1])
             for line in registry.render().splitlines() if not line.startswith("#")}
    assert lines["process_cpu_seconds_total"] > 0
    assert lines["process_resident_memory_bytes"] > 1_000_000
    assert 1.6e9 < lines["process_start_time_seconds"] < 4e9


def test_a_named_workqueue_counts_adds_depth_retries_and_durations(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(metrics, "now", clock)
    name = "test-queue-metrics"
    queue = RateLimitingQueue(name=name, clock=clock)
    from control.client import workqueue as wq
    adds_before = wq.ADDS.value(name)
    queue.add("a")
    queue.add("a")          # already queued: not an add (client-go counts after dedup)
    queue.add("b")
    assert wq.DEPTH.value(name) == 2
    assert wq.ADDS.value(name) - adds_before == 2
    waited_before = wq.QUEUE_DURATION.count(name)
    clock.now += 2
    key = queue.get(timeout=1)
    assert wq.DEPTH.value(name) == 1
    assert wq.QUEUE_DURATION.count(name) == waited_before + 1
    worked_before = wq.WORK_DURATION.count(name)
    clock.now += 3
    queue.done(key)
    assert wq.WORK_DURATION.count(name) == worked_before + 1
    retries_before = wq.RETRIES.value(name)
    queue.add_rate_limited(key)
    assert wq.RETRIES.value(name) == retries_before + 1
    assert queue.waiting() == 1
    text = metrics.REGISTRY.render()
    assert f'workqueue_depth{{name="{name}"}} 1' in text
    assert f'workqueue_queue_duration_seconds_bucket{{name="{name}",le="10.0"}}' in text


def test_node_conditions_as_kube_state_metrics_serves_them():
    nodes = [{"metadata": {"name": "n2"}, "status": {"conditions": [
                 {"type": "Ready", "status": "Unknown"}]}},
             {"metadata": {"name": "n1"}, "status": {"conditions": [
                 {"type": "Ready", "status": "True"},
                 {"type": "MemoryPressure", "status": "False"}]}},
             {"metadata": {"name": "bare"}}]
    samples = dict(node_condition_samples(nodes))
    assert samples[("n1", "Ready", "true")] == 1
    assert samples[("n1", "Ready", "false")] == 0
    assert samples[("n1", "MemoryPressure", "false")] == 1
    assert samples[("n2", "Ready", "unknown")] == 1
    assert not any(key[0] == "bare" for key in samples)

    class Informer:
        class store:
            list = staticmethod(lambda: nodes)
    registry = metrics.Registry()
    register_node_conditions(Informer, registry)
    assert ('kube_node_status_condition{node="n2",condition="Ready",status="unknown"} 1'
            in registry.render())


def test_pending_pods_by_queue():
    class Scheduler:
        def pending_counts(self):
            return {"active": 2, "backoff": 1, "unschedulable": 4}
    registry = metrics.Registry()
    register_pending_pods(Scheduler(), registry)
    text = registry.render()
    assert 'scheduler_pending_pods{queue="active"} 2' in text
    assert 'scheduler_pending_pods{queue="unschedulable"} 4' in text
