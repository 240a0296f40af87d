"""HPA behavior: stabilization windows, scaling policies, selectPolicy, min/max bounds."""

import pytest

from control.controllers.podautoscaler.behavior import Behavior, scale_down_limit, scale_up_limit
from control.objects.autoscaling import effective_behavior
from tests.unit.control.controllers.fakes import FakeClock

UP, DOWN = effective_behavior({})          # Kubernetes' defaults, down window 300 s


def rules(select="Max", window=0, policies=(("Pods", 4, 15), ("Percent", 100, 15))):
    return {"selectPolicy": select, "stabilizationWindowSeconds": window,
            "policies": [{"type": t, "value": v, "periodSeconds": p} for t, v, p in policies]}


def test_defaults_are_kubernetes_defaults():
    assert UP == {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    assert DOWN == {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]}
    # A window the HPA sets wins over the controller's flag.
    _, down = effective_behavior({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
                                 downscale_window=120)
    assert down["stabilizationWindowSeconds"] == 5


# (case, current, select policy, expected scale-up limit)
@pytest.mark.parametrize("current,select,expected", [
    (1, "Max", 5), (1, "Min", 2), (10, "Max", 20), (10, "Min", 14), (3, "Disabled", 3)])
def test_scale_up_limit(current, select, expected):
    assert scale_up_limit(current, [], [], rules(select), now=100.0) == expected


@pytest.mark.parametrize("current,select,expected", [
    (10, "Max", 5), (10, "Min", 8), (3, "Max", 1), (3, "Disabled", 3)])
def test_scale_down_limit(current, select, expected):
    policies = (("Pods", 2, 60), ("Percent", 50, 60))
    assert scale_down_limit(current, [], [], rules(select, policies=policies), now=100.0) == \
        expected


def test_changes_within_a_period_count_against_it():
    events = [(95.0, 4)]        # 4 added 5 s ago: the period started at 1 replica
    assert scale_up_limit(5, events, [], rules(), now=100.0) == 5
    assert scale_up_limit(5, events, [], rules(), now=111.0) == 10     # period over


def test_scale_up_is_rate_limited_and_reports_it():
    behavior = Behavior(FakeClock(0.0))
    decision = behavior.decide("ns/h", 1, 10, 1, 20, UP, DOWN)
    assert (decision.replicas, decision.limited, decision.limited_reason) == \
        (5, True, "ScaleUpLimit")
    assert decision.limited_message == \
        "the desired replica count is increasing faster than the maximum scale rate"
    assert (decision.able_reason, decision.able_message) == \
        ("ReadyForNewScale", "recommended size matches current size")


def test_max_replicas_bounds_the_scale_up():
    decision = Behavior(FakeClock(0.0)).decide("ns/h", 3, 10, 1, 4, UP, DOWN)
    assert (decision.replicas, decision.limited_reason, decision.limited_message) == \
        (4, "TooManyReplicas", "the desired replica count is more than the maximum replica count")


def test_within_range_is_not_limited():
    decision = Behavior(FakeClock(0.0)).decide("ns/h", 3, 4, 1, 10, UP, DOWN)
    assert (decision.replicas, decision.limited, decision.limited_reason) == \
        (4, False, "DesiredWithinRange")


def test_scale_down_waits_for_the_window_and_picks_the_highest_recommendation():
    clock = FakeClock(0.0)
    behavior = Behavior(clock)
    down = {**DOWN, "stabilizationWindowSeconds": 60}
    assert behavior.decide("ns/h", 5, 5, 1, 10, UP, down).replicas == 5
    clock.advance(10)
    assert behavior.decide("ns/h", 5, 4, 1, 10, UP, down).replicas == 5
    clock.advance(10)
    decision = behavior.decide("ns/h", 5, 2, 1, 10, UP, down)
    assert (decision.replicas, decision.able_reason) == (5, "ScaleDownStabilized")
    assert decision.able_message == ("recent recommendations were higher than current one, "
                                     "applying the highest recent recommendation")
    clock.advance(45)       # the 5s are older than 60 s; 4 (t=10) is the highest left
    assert behavior.decide("ns/h", 5, 2, 1, 10, UP, down).replicas == 4
    clock.advance(20)       # now only the 2s are in the window
    assert behavior.decide("ns/h", 5, 2, 1, 10, UP, down).replicas == 2


def test_scale_up_window_applies_the_lowest_recommendation():
    clock = FakeClock(0.0)
    behavior = Behavior(clock)
    up = {**UP, "stabilizationWindowSeconds": 30}
    behavior.decide("ns/h", 3, 3, 1, 10, up, DOWN)
    clock.advance(10)
    decision = behavior.decide("ns/h", 3, 6, 1, 10, up, DOWN)
    assert (decision.replicas, decision.able_reason) == (3, "ScaleUpStabilized")
    clock.advance(25)       # 3 (t=0) left the window; 6 (t=10) is the lowest now
    assert behavior.decide("ns/h", 3, 8, 1, 10, up, DOWN).replicas == 6


def test_min_replicas_and_scale_down_policies():
    pods_down = {**DOWN, "stabilizationWindowSeconds": 0,
                 "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
    decision = Behavior(FakeClock(0.0)).decide("ns/h", 5, 1, 1, 10, UP, pods_down)
    assert (decision.replicas, decision.limited_reason) == (4, "ScaleDownLimit")
    fast_down = {**DOWN, "stabilizationWindowSeconds": 0}
    decision = Behavior(FakeClock(0.0)).decide("ns/h", 5, 1, 3, 10, UP, fast_down)
    assert (decision.replicas, decision.limited_reason, decision.limited_message) == \
        (3, "TooFewReplicas", "the desired replica count is less than the minimum replica count")


def test_disabled_scale_down_keeps_the_count():
    disabled = {**DOWN, "stabilizationWindowSeconds": 0, "selectPolicy": "Disabled"}
    decision = Behavior(FakeClock(0.0)).decide("ns/h", 5, 1, 1, 10, UP, disabled)
    assert (decision.replicas, decision.limited) == (5, True)


def test_recorded_scale_events_limit_the_next_step_and_expire():
    clock = FakeClock(0.0)
    behavior = Behavior(clock)
    behavior.record_scale("ns/h", 1, 5, UP, DOWN)
    clock.advance(5)
    assert behavior.decide("ns/h", 5, 20, 1, 50, UP, DOWN).replicas == 5
    clock.advance(11)
    assert behavior.decide("ns/h", 5, 20, 1, 50, UP, DOWN).replicas == 10
    behavior.forget("ns/h")
    assert behavior.decide("ns/h", 5, 20, 1, 50, UP, DOWN).replicas == 10
