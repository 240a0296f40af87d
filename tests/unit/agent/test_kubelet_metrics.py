"""The agent's /metrics families the monitoring addon's alerts and dashboard read."""

from tests.unit.agent.test_kubelet import manager  # noqa: F401 - the fixture

RESTARTS = 'steer_agent_pod_container_restarts{namespace="default",pod="web",container="c"}'


def test_restarts_per_container_and_pods_by_phase(manager):  # noqa: F811
    pods, h = manager
    h.step()
    text = pods.metrics()
    assert f"{RESTARTS} 0" in text
    assert "# TYPE steer_agent_pods_by_phase gauge" in text
    assert 'steer_agent_pods_by_phase{phase="Running"} 1' in text
    h.runtime.exit(h.uid, "c", 1)
    h.step()                                      # the first restart is immediate
    assert h.status()["restartCount"] == 1
    assert f"{RESTARTS} 1" in pods.metrics()
