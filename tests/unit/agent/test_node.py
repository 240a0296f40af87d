"""Node registration, status reports and Lease renewals against a fake API."""

import pytest

from agent.node import NodeAgent, cri_problem, parse_labels, parse_taints
from control.client import AlreadyExists, NotFound


class FakeRest:
    def __init__(self):
        self.objects, self.calls = {}, []

    def create(self, resource, namespace, body):
        key = (resource.plural, body["metadata"]["name"])
        self.calls.append(("create", key))
        if key in self.objects:
            raise AlreadyExists("exists")
        body = {**body, "metadata": {**body["metadata"], "uid": "uid-1"}}
        self.objects[key] = body
        return body

    def get(self, resource, namespace, name):
        if (resource.plural, name) not in self.objects:
            raise NotFound("nope")
        return self.objects[(resource.plural, name)]

    def patch(self, resource, namespace, name, patch, subresource=None):
        key = (resource.plural, name)
        self.calls.append(("patch", key, subresource))
        if key not in self.objects:
            raise NotFound("nope")
        self.objects[key] = {**self.objects[key], **patch}


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def make(rest, clock=None):
    return NodeAgent(rest, "n1", "10.0.0.5", 10250, max_pods=20, labels={"zone": "a"},
                     taints=parse_taints("dedicated=db:NoSchedule"), heartbeat=1,
                     report_interval=300, clock=clock or Clock())


def test_register_creates_the_node_status_and_lease():
    rest = FakeRest()
    make(rest).register()
    node = rest.objects[("nodes", "n1")]
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "n1" and labels["zone"] == "a"
    assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"]
    assert labels["node.steersman.io/runtime"] == "process"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    status = node["status"]
    assert status["capacity"]["pods"] == "20" and status["allocatable"] == status["capacity"]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert {"type": "InternalIP", "address": "10.0.0.5"} in status["addresses"]
    assert [c["type"] for c in status["conditions"]] == ["MemoryPressure", "DiskPressure",
                                                         "PIDPressure", "Ready"]
    lease = rest.objects[("leases", "n1")]
    assert lease["spec"]["holderIdentity"] == "n1"
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"


def test_status_is_reposted_only_when_needed():
    rest, clock = FakeRest(), Clock()
    agent = make(rest, clock)
    agent.register()
    assert not agent.post_status()                  # unchanged, not due
    node = rest.objects[("nodes", "n1")]
    node["status"]["conditions"][-1] = {"type": "Ready", "status": "Unknown"}
    assert agent.needs_report()                     # the lifecycle controller marked it
    agent.heartbeat_once()
    assert rest.objects[("nodes", "n1")]["status"]["conditions"][-1]["status"] == "True"
    clock.now = 301
    assert agent.post_status()                      # the report interval passed


def test_reregistering_merges_labels():
    rest = FakeRest()
    make(rest).register()
    make(rest).register()
    assert ("patch", ("nodes", "n1"), None) in rest.calls


def test_flag_parsing():
    assert parse_labels("a=1,b=") == {"a": "1", "b": ""}
    assert parse_taints("k:NoExecute") == [{"key": "k", "effect": "NoExecute"}]
    with pytest.raises(ValueError):
        parse_taints("k=v:Sometimes")
    with pytest.raises(ValueError):
        parse_labels("novalue")


def test_pressure_conditions_follow_the_machine():
    rest = FakeRest()
    agent = NodeAgent(rest, "n1", "10.0.0.5", 10250, clock=Clock(),
                      pressure=lambda: {"MemoryPressure": True, "DiskPressure": False})
    agent.register()
    conditions = {c["type"]: c for c in rest.objects[("nodes", "n1")]["status"]["conditions"]}
    assert conditions["MemoryPressure"]["status"] == "True"
    assert conditions["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert conditions["DiskPressure"]["reason"] == "KubeletHasNoDiskPressure"
    assert conditions["PIDPressure"]["reason"] == "KubeletHasSufficientPID"
    assert conditions["Ready"]["status"] == "True"


def test_machine_pressure_reads_this_machine(tmp_path):
    from agent.node import machine_pressure
    assert set(machine_pressure(str(tmp_path))) == {"MemoryPressure", "DiskPressure",
                                                    "PIDPressure"}


class FakeCri:
    """CRI Status with the given (type, ready, reason, message) conditions."""

    def __init__(self, *conditions):
        from agent.runtime.cri import api_pb2
        self.response = api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=[
            api_pb2.RuntimeCondition(type=t, status=ok, reason=r, message=m)
            for t, ok, r, m in conditions]))

    def status(self):
        return self.response


def test_cri_problem_says_what_kubelet_says():
    assert cri_problem(FakeCri(("RuntimeReady", True, "", ""),
                               ("NetworkReady", True, "", ""))) is None
    problem = cri_problem(FakeCri(("RuntimeReady", True, "", ""), (
        "NetworkReady", False, "NetworkPluginNotReady",
        "Network plugin returns error: cni plugin not initialized")))
    assert problem == ("container runtime network not ready: NetworkReady=false "
                       "reason:NetworkPluginNotReady message:Network plugin returns error: "
                       "cni plugin not initialized")
    assert cri_problem(FakeCri(("RuntimeReady", False, "Down", "gone"))).startswith(
        "container runtime is down")


def test_node_is_not_ready_while_the_runtime_cannot_run_pods():
    problems = ["container runtime network not ready: NetworkReady=false"]
    agent = NodeAgent(FakeRest(), "n1", "10.0.0.5", 10250, clock=Clock(),
                      pressure=lambda: {}, runtime_problem=lambda: problems[0])
    ready = next(c for c in agent.status()["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    assert ready["message"] == problems[0]
    problems[0] = None
    ready = next(c for c in agent.status()["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "KubeletReady")
