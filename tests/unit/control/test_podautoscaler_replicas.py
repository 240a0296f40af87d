"""The HPA replica calculator: tolerance, missing and not-ready pods, cpu readiness rules."""

import datetime

import pytest

from control.controllers.podautoscaler import replicas as calc
from control.controllers.podautoscaler.replicas import MetricsError, Sample

NOW = 1_800_000_000.0


def _stamp(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def pod(name, cpu="100m", memory="100Mi", phase="Running", ready="True", started=600,
        ready_since=590, deleted=False, containers=1):
    """A pod started ``started`` s before NOW, Ready=``ready`` since ``ready_since`` s before."""
    status = {"phase": phase}
    if started is not None:
        status["startTime"] = _stamp(NOW - started)
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready,
                                 "lastTransitionTime": _stamp(NOW - ready_since)}]
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    metadata = {"name": name, "namespace": "default"}
    if deleted:
        metadata["deletionTimestamp"] = _stamp(NOW)
    return {"metadata": metadata, "status": status, "spec": {"containers": [
        {"name": f"c{i}", "resources": {"requests": requests}} for i in range(containers)]}}


def samples(**values):
    """Samples taken 5 s ago over a 10 s window, in millicores."""
    return {name: Sample(value, NOW - 5, 10.0) for name, value in values.items()}


# (case, current, target %, pods, samples, expected replicas, expected utilization %)
UTILIZATION_CASES = [
    ("on target", 3, 50, [pod("a"), pod("b"), pod("c")], samples(a=50, b=50, c=50), 3, 50),
    ("within tolerance up", 3, 50, [pod("a"), pod("b"), pod("c")],
     samples(a=54, b=54, c=54), 3, 54),
    ("within tolerance down", 3, 50, [pod("a"), pod("b"), pod("c")],
     samples(a=46, b=46, c=46), 3, 46),
    ("double", 3, 50, [pod("a"), pod("b"), pod("c")], samples(a=100, b=100, c=100), 6, 100),
    ("down rounds up", 3, 50, [pod("a"), pod("b"), pod("c")], samples(a=20, b=20, c=20), 2, 20),
    # Missing pods count as 100% of their request on a scale-down: 10+10+100 of 300 = 40%.
    ("missing on scale-down", 3, 50, [pod("a"), pod("b"), pod("c")], samples(a=10, b=10),
     3, 10),
    # Missing pods count as 0 on a scale-up: 200 of 400 is 50% -> the direction flips: stay.
    ("missing on scale-up", 4, 100, [pod("a"), pod("b"), pod("c"), pod("d")],
     samples(a=200), 4, 200),
    # A Pending pod counts as 0 on a scale-up: 100 of 300 = 33% -> flips: stay.
    ("pending on scale-up", 3, 50, [pod("a"), pod("b", phase="Pending"),
                                    pod("c", phase="Pending")],
     samples(a=100, b=100, c=100), 3, 100),
    # ... and is ignored on a scale-down.
    ("pending on scale-down", 3, 50, [pod("a"), pod("b"), pod("c", phase="Pending")],
     samples(a=10, b=10), 1, 10),
    ("deleted and failed ignored", 3, 50,
     [pod("a"), pod("b", deleted=True), pod("c", phase="Failed")],
     samples(a=100, b=900, c=900), 2, 100),
    # Started 60 s ago, Ready 50 s ago, sample 5 s ago: counts (usage 100% -> 2 pods' worth).
    ("young ready pod counts", 1, 50, [pod("a", started=60, ready_since=50)],
     samples(a=100), 2, 100),
    # Young and not Ready: its cpu does not count, and on a scale-up it is a zero.
    ("young unready pod", 2, 50, [pod("a"), pod("b", started=60, ready="False", ready_since=60)],
     samples(a=100, b=100), 2, 100),
    # Old pod that turned unready long after starting: its sample still counts.
    ("old pod unready later counts", 1, 50,
     [pod("a", started=900, ready="False", ready_since=300)], samples(a=100), 2, 100),
    # Old pod whose first readiness change came within 30 s of start, still False: skipped.
    ("old pod never ready", 2, 50,
     [pod("a"), pod("b", started=900, ready="False", ready_since=890)],
     samples(a=100, b=100), 2, 100),
]


@pytest.mark.parametrize("case,current,target,pods,found,expected,utilization",
                         UTILIZATION_CASES, ids=[c[0] for c in UTILIZATION_CASES])
def test_utilization_replicas(case, current, target, pods, found, expected, utilization):
    replicas, percent, _ = calc.utilization_replicas(current, target, pods, found, "cpu", NOW)
    assert (replicas, percent) == (expected, utilization)


def test_a_young_pod_whose_sample_predates_readiness_does_not_count():
    pods = [pod("a"), pod("b", started=60, ready_since=3)]      # Ready 3 s ago
    found = {"a": Sample(100, NOW - 5, 10.0), "b": Sample(900, NOW - 5, 10.0)}
    replicas, percent, _ = calc.utilization_replicas(2, 50, pods, found, "cpu", NOW)
    assert percent == 100            # only a's sample
    assert replicas == 2             # b is a zero on the scale-up: 100 of 200 = 50% -> stay


def test_memory_ignores_cpu_readiness_rules():
    pods = [pod("a", started=10, ready="False", ready_since=10)]
    found = samples(a=200 * 1024 * 1024 * 1000)                 # 200Mi in milli-bytes
    replicas, percent, raw = calc.utilization_replicas(1, 100, pods, found, "memory", NOW)
    assert (replicas, percent, raw) == (2, 200, 200 * 1024 * 1024 * 1000)


def test_tolerance_is_configurable():
    pods = [pod("a"), pod("b")]
    assert calc.utilization_replicas(2, 50, pods, samples(a=70, b=70), "cpu", NOW)[0] == 3
    assert calc.utilization_replicas(2, 50, pods, samples(a=70, b=70), "cpu", NOW,
                                     tolerance=0.5)[0] == 2


def test_container_resource_uses_one_container():
    pods = [pod("a", containers=2)]
    replicas, percent, _ = calc.utilization_replicas(1, 50, pods, samples(a=100), "cpu", NOW,
                                                     container="c1")
    assert (replicas, percent) == (2, 100)


def test_a_pod_without_requests_is_an_error_naming_it():
    with pytest.raises(MetricsError) as err:
        calc.utilization_replicas(1, 50, [pod("a", cpu=None)], samples(a=10), "cpu", NOW)
    assert str(err.value) == "missing request for cpu in container c0 of Pod a"


def test_no_pods_and_no_metrics_are_errors():
    with pytest.raises(MetricsError, match="no pods returned by selector"):
        calc.utilization_replicas(1, 50, [], {}, "cpu", NOW)
    with pytest.raises(MetricsError, match="did not receive metrics for targeted pods"):
        calc.utilization_replicas(1, 50, [pod("a", phase="Pending")], samples(a=10), "cpu",
                                  NOW)


AVERAGE_CASES = [
    ("double", 3, 100, samples(a=200, b=200, c=200), 6),
    ("tolerance", 3, 100, samples(a=105, b=105, c=105), 3),
    ("half", 4, 100, samples(a=50, b=50, c=50, d=50), 2),
    # one missing on a scale-down counts as the target: (50*3+100)/4 = 62 -> ceil(2.5) = 3.
    ("missing down", 4, 100, samples(a=50, b=50, c=50), 3),
]


@pytest.mark.parametrize("case,current,target,found,expected", AVERAGE_CASES,
                         ids=[c[0] for c in AVERAGE_CASES])
def test_average_value_replicas(case, current, target, found, expected):
    pods = [pod(n) for n in "abcd"[:current]]
    assert calc.average_value_replicas(current, target, pods, found, "cpu", NOW)[0] == expected
