"""The pod manager's lookups for the HTTP port, metrics, and orphan cleanup."""

import pytest

from agent.kubelet import PodManager
from control.client import RestClient
from tests.unit.agent.fakes import Harness, make_pod


@pytest.fixture
def manager(tmp_path):
    h = Harness(make_pod(name="web"), tmp_path)
    pods = PodManager(RestClient("http://127.0.0.1:1"), h.ctx)
    pods.workers["default/web"] = h.worker
    return pods, h


def test_find_logs(manager):
    pods, h = manager
    with pytest.raises(ValueError, match="waiting to start: ContainerCreating"):
        pods.find_logs("default", "web", "c", False)
    h.step()
    path, running = pods.find_logs("default", "web", "c", False)
    assert path.endswith("/logs/c/0.log") and running()
    with pytest.raises(LookupError, match="previous terminated container"):
        pods.find_logs("default", "web", "c", True)
    with pytest.raises(LookupError, match="not valid"):
        pods.find_logs("default", "web", "nope", False)
    with pytest.raises(LookupError, match="not on this node"):
        pods.find_logs("default", "other", "c", False)
    h.runtime.exit(h.uid, "c", 1)
    h.step()
    previous, running = pods.find_logs("default", "web", "c", True)
    assert previous == path and not running()


def test_metrics(manager):
    pods, h = manager
    h.step()
    text = pods.metrics()
    assert "steer_agent_pods 1" in text and "steer_agent_running_containers 1" in text


def test_orphans_are_killed_and_forgotten(manager):
    pods, h = manager
    h.step()
    orphans = h.runtime.list()
    pods._stop_orphans(h.uid, orphans)
    assert h.runtime.list() == [] and h.runtime.signals
