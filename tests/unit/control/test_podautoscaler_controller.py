"""The HPA controller's reconcile with fake scale, fake metrics and fake clocks."""

import datetime

import pytest

from control.client import NotFound
from control.controllers.podautoscaler import HorizontalPodAutoscalerController
from control.controllers.podautoscaler.metrics import parse_window, samples_from
from control.controllers.podautoscaler.replicas import Sample
from control.controllers.podautoscaler.targets import TargetError, TargetResolver
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer
from tests.unit.control.test_podautoscaler_replicas import NOW, pod

WALL = datetime.datetime.fromtimestamp(NOW, datetime.timezone.utc)


class ScaleRest:
    """Answer get_scale / update_scale for one Deployment; record status writes."""

    def __init__(self, replicas, selector="app=web", missing=False):
        self.replicas, self.selector, self.missing = replicas, selector, missing
        self.statuses, self.scales = [], []

    def get_scale(self, resource, namespace, name):
        if self.missing:
            raise NotFound(404, "NotFound", f'deployments.apps "{name}" not found')
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7"},
                "spec": {"replicas": self.replicas},
                "status": {"replicas": self.replicas, "selector": self.selector}}

    def update_scale(self, resource, namespace, name, scale):
        assert resource.plural == "deployments"
        self.scales.append(scale["spec"]["replicas"])
        self.replicas = scale["spec"]["replicas"]
        return scale

    def update_status(self, resource, namespace, body):
        self.statuses.append(body["status"])
        return body


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((event_type, reason, message))


def hpa(metrics=None, behavior=None, low=1, high=10):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": low, "maxReplicas": high,
            "metrics": metrics or [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}
    if behavior:
        spec["behavior"] = behavior
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 1,
                         "resourceVersion": "3"}, "spec": spec}


def web_pods(count, **kwargs):
    pods = [pod(f"web-{i}", **kwargs) for i in range(count)]
    for p in pods:
        p["metadata"]["labels"] = {"app": "web"}
    return pods + [{**pod("other"), "metadata": {"name": "other", "namespace": "default",
                                                 "labels": {"app": "db"}}}]


def controller(rest, obj, pods, usage):
    """A controller whose metrics answer ``usage`` millicores for every web pod."""
    def fetch(_rest, namespace, selector, resource, container):
        assert (namespace, selector, resource) == ("default", "app=web", "cpu")
        return {p["metadata"]["name"]: Sample(usage, NOW - 5, 10.0) for p in pods
                if p["metadata"]["name"].startswith("web")}
    recorder = Recorder()
    ctl = HorizontalPodAutoscalerController(
        rest, FakeInformer([obj]), FakeInformer(pods), recorder, clock=FakeClock(0.0),
        wall_clock=lambda: WALL, fetch=fetch)
    return ctl, recorder


def conditions(status):
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_scales_up_with_kubernetes_event_and_conditions():
    rest = ScaleRest(2)
    ctl, recorder = controller(rest, hpa(), web_pods(2), usage=100)
    ctl.sync("default/web")
    assert rest.scales == [4]
    assert recorder.events == [("Normal", "SuccessfulRescale", "New size: 4; reason: cpu "
                                "resource utilization (percentage of request) above target")]
    status = rest.statuses[-1]
    assert (status["currentReplicas"], status["desiredReplicas"]) == (2, 4)
    assert status["lastScaleTime"] == "2027-01-15T08:00:00Z"
    assert status["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 100, "averageValue": "100m"}}}]
    found = conditions(status)
    assert found["AbleToScale"] == ("True", "SucceededRescale",
                                    "the HPA controller was able to update the target scale to 4")
    assert found["ScalingActive"] == ("True", "ValidMetricFound", "the HPA was able to "
                                      "successfully calculate a replica count from cpu "
                                      "resource utilization (percentage of request)")
    assert found["ScalingLimited"] == ("False", "DesiredWithinRange",
                                       "the desired count is within the acceptable range")


def test_scale_down_waits_for_the_default_window():
    rest = ScaleRest(4)
    ctl, recorder = controller(rest, hpa(), web_pods(4), usage=10)
    ctl.sync("default/web")
    assert rest.scales == [] and recorder.events == []
    status = rest.statuses[-1]
    assert conditions(status)["AbleToScale"] == (
        "True", "ScaleDownStabilized", "recent recommendations were higher than current one, "
        "applying the highest recent recommendation")
    assert status["desiredReplicas"] == 4


def test_a_short_scale_down_window_scales_down_after_it():
    rest = ScaleRest(4)
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 5, "selectPolicy": "Max",
                              "policies": [{"type": "Percent", "value": 100,
                                            "periodSeconds": 15}]}}
    ctl, recorder = controller(rest, hpa(behavior=behavior), web_pods(4), usage=10)
    ctl.sync("default/web")
    assert rest.scales == []
    ctl.behavior.clock.advance(6)
    ctl.sync("default/web")
    assert rest.scales == [1]
    assert recorder.events[-1] == ("Normal", "SuccessfulRescale",
                                   "New size: 1; reason: All metrics below target")


def test_pods_without_requests_stop_scaling_with_kubernetes_reason():
    rest = ScaleRest(2)
    ctl, recorder = controller(rest, hpa(), web_pods(2, cpu=None), usage=100)
    ctl.sync("default/web")
    assert rest.scales == []
    error = "failed to get cpu utilization: missing request for cpu in container c0 of Pod web-0"
    assert ("Warning", "FailedGetResourceMetric", error) in recorder.events
    assert ("Warning", "FailedComputeMetricsReplicas",
            f"invalid metrics (1 invalid out of 1), first error is: {error}") in recorder.events
    assert conditions(rest.statuses[-1])["ScalingActive"] == (
        "False", "FailedGetResourceMetric", f"the HPA was unable to compute the replica count: "
                                            f"{error}")


def test_scaling_disabled_at_zero_and_clamped_to_bounds():
    rest = ScaleRest(0)
    ctl, _ = controller(rest, hpa(), web_pods(0), usage=100)
    ctl.sync("default/web")
    assert rest.scales == []
    assert conditions(rest.statuses[-1])["ScalingActive"] == (
        "False", "ScalingDisabled", "scaling is disabled since the replica count of the target "
                                    "is zero")
    rest = ScaleRest(12)
    ctl, recorder = controller(rest, hpa(high=5), web_pods(12), usage=100)
    ctl.sync("default/web")
    assert rest.scales == [5]
    assert recorder.events == [("Normal", "SuccessfulRescale",
                                "New size: 5; reason: Current number of replicas above "
                                "Spec.MaxReplicas")]


def test_a_missing_target_is_reported():
    rest = ScaleRest(1, missing=True)
    ctl, recorder = controller(rest, hpa(), web_pods(1), usage=100)
    ctl.sync("default/web")
    status, message = conditions(rest.statuses[-1])["AbleToScale"][1:], recorder.events[0]
    assert status[0] == "FailedGetScale"
    assert status[1].startswith("the HPA controller was unable to get the target's current "
                                "scale: ") and "not found" in status[1]
    assert message[:2] == ("Warning", "FailedGetScale")


def test_a_deleted_hpa_is_forgotten_and_not_requeued():
    rest = ScaleRest(2)
    ctl, _ = controller(rest, hpa(), web_pods(2), usage=100)
    ctl.hpa_store._delete("default/web")
    ctl.sync("default/web")
    assert rest.statuses == [] and len(ctl.queue) == 0


@pytest.mark.parametrize("text,seconds", [("10s", 10.0), ("1m30s", 90.0), ("", 0.0),
                                          ("bogus", 0.0)])
def test_parse_window(text, seconds):
    assert parse_window(text) == seconds


def test_samples_from_pod_metrics():
    items = [{"metadata": {"name": "a"}, "timestamp": "2027-01-15T08:00:00Z", "window": "10s",
              "containers": [{"name": "x", "usage": {"cpu": "250m", "memory": "4Mi"}},
                             {"name": "y", "usage": {"cpu": "1", "memory": "1Ki"}}]},
             {"metadata": {"name": "b"}, "containers": [{"name": "x", "usage": {}}]}]
    found = samples_from(items, "cpu")
    assert list(found) == ["a"] and found["a"].value == 1250 and found["a"].window == 10.0
    assert samples_from(items, "memory", container="y")["a"].value == 1024 * 1000


class DiscoveryRest:
    def __init__(self):
        self.paths = []

    def request(self, method, path, query=None):
        self.paths.append(path)
        return {"resources": [
            {"name": "widgets", "kind": "Widget", "namespaced": True},
            {"name": "widgets/scale", "kind": "Scale", "namespaced": True},
            {"name": "gadgets", "kind": "Gadget", "namespaced": True}]}


def test_targets_builtin_custom_and_hostile():
    rest = DiscoveryRest()
    resolver = TargetResolver(rest, clock=FakeClock(0.0))
    assert resolver.resolve({"apiVersion": "apps/v1", "kind": "StatefulSet"}).plural == \
        "statefulsets"
    widget = resolver.resolve({"apiVersion": "example.com/v1", "kind": "Widget"})
    assert (widget.group, widget.version, widget.plural) == ("example.com", "v1", "widgets")
    with pytest.raises(TargetError, match='no matches for kind "Gadget"'):
        resolver.resolve({"apiVersion": "example.com/v1", "kind": "Gadget"})   # no scale
    assert rest.paths == ["/apis/example.com/v1"]                             # cached
    for hostile in ("../../api/v1/secrets", "example.com/v1?x=1", "a/b/c", ""):
        with pytest.raises(TargetError, match="invalid scaleTargetRef apiVersion"):
            resolver.resolve({"apiVersion": hostile, "kind": "Widget"})
    assert rest.paths == ["/apis/example.com/v1"]
