"""Pod status building: kubelet's phase rules, conditions and container states."""

import pytest

from agent import status as statusmod
from agent.runtime.base import Record

T0 = 1_700_000_000.0


def running(name="c"):
    return statusmod.ContainerView(name, "img", Record("id1", "u", name, 0, started_at=T0),
                                   ready=True, started=True)


def exited(code, name="c", restarts=0, previous=None):
    record = Record("id2", "u", name, restarts, started_at=T0, exit_code=code,
                    finished_at=T0 + 5, reason="Completed" if code == 0 else "Error")
    return statusmod.ContainerView(name, "img", record, previous, restarts)


def backing_off(name="c"):
    previous = Record("id3", "u", name, 0, started_at=T0, exit_code=1, finished_at=T0 + 1,
                      reason="Error")
    return statusmod.ContainerView(name, "img", previous, previous, 1,
                                   waiting_reason="CrashLoopBackOff")


def pod(policy="Always"):
    return {"metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "c"}]}, "status": {}}


@pytest.mark.parametrize("policy, views, phase", [
    ("Always", [statusmod.ContainerView("c")], "Pending"),
    ("Always", [running()], "Running"),
    ("Always", [running(), statusmod.ContainerView("d")], "Pending"),
    ("Always", [exited(0)], "Running"),
    ("Always", [backing_off()], "Running"),
    ("OnFailure", [exited(0)], "Succeeded"),
    ("OnFailure", [exited(1)], "Running"),
    ("Never", [exited(0), exited(0, "d")], "Succeeded"),
    ("Never", [exited(0), exited(2, "d")], "Failed"),
    ("Never", [running(), exited(2, "d")], "Running"),
])
def test_phase(policy, views, phase):
    built = statusmod.build(pod(policy), [], views, T0 + 10, "10.0.0.5", "10.0.0.5", T0,
                            "process")
    assert built["phase"] == phase


def test_conditions_and_states():
    built = statusmod.build(pod(), [], [backing_off()], T0 + 10, "h", "h", T0, "process")
    conditions = {c["type"]: c for c in built["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "ContainersNotReady"
    assert conditions["Ready"]["message"] == "containers with unready status: [c]"
    assert conditions["PodScheduled"]["status"] == "True"
    [container] = built["containerStatuses"]
    assert container["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert container["lastState"]["terminated"]["exitCode"] == 1
    assert container["restartCount"] == 1 and container["containerID"] == "process://id3"
    assert built["startTime"] == "2023-11-14T22:13:20Z" and built["qosClass"] == "BestEffort"


def test_transition_times_are_kept_while_a_condition_holds():
    first = statusmod.build(pod(), [], [running()], T0, "h", "h", T0, "process")
    later = statusmod.build(pod(), [], [running()], T0 + 60, "h", "h", T0, "process", old=first)
    assert later == first
    changed = statusmod.build(pod(), [], [backing_off()], T0 + 90, "h", "h", T0, "process",
                              old=first)
    ready = next(c for c in changed["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2023-11-14T22:14:50Z"      # T0 + 90


def test_signal_exit_and_completed_pod_conditions():
    killed = exited(137)
    built = statusmod.build(pod("Never"), [], [killed], T0, "h", "h", T0, "process")
    assert built["containerStatuses"][0]["state"]["terminated"]["signal"] == 9
    ready = next(c for c in built["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "PodCompleted"


@pytest.mark.parametrize("resources, qos", [
    ({}, "BestEffort"),
    ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
    ({"requests": {"cpu": "100m"}}, "Burstable")])
def test_qos_class(resources, qos):
    spec = pod()
    spec["spec"]["containers"][0]["resources"] = resources
    assert statusmod.qos_class(spec) == qos
