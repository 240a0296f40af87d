"""Probe scheduling and thresholds with Kubernetes' defaults."""

import pytest

from agent.probes import ProbeState, port_of


def test_defaults_and_initial_results():
    state = ProbeState("readiness", {"exec": {"command": ["true"]}}, 100.0)
    assert (state.period, state.timeout, state.success_threshold, state.failure_threshold) == \
        (10, 1, 1, 3)
    assert state.due(100.0) and state.result is False
    assert ProbeState("liveness", {}, 0).result is True
    assert ProbeState("startup", {}, 0).result is None


def test_initial_delay_and_period():
    state = ProbeState("liveness", {"initialDelaySeconds": 5, "periodSeconds": 2}, 100.0)
    assert not state.due(104.9) and state.due(105.0)
    state.record(True, 105.0)
    assert not state.due(106.9) and state.due(107.0)


def test_failure_threshold_needs_consecutive_failures():
    state = ProbeState("liveness", {"failureThreshold": 3}, 0.0)
    assert not state.record(False, 0) and not state.record(False, 10)
    assert state.result is True
    state.record(True, 20)                       # a success resets the count
    state.record(False, 30)
    state.record(False, 40)
    assert state.result is True
    assert state.record(False, 50) and state.result is False


def test_success_threshold_for_readiness():
    state = ProbeState("readiness", {"successThreshold": 2}, 0.0)
    assert not state.record(True, 0) and state.result is False
    assert state.record(True, 10) and state.result is True
    assert not state.record(False, 20) and state.result is True


def test_named_ports():
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert port_of("http", container) == 8080 and port_of(81, container) == 81
    assert port_of("82", container) == 82
    with pytest.raises(ValueError):
        port_of("nope", container)
