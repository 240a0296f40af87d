"""HorizontalPodAutoscaler end to end with the real metrics API.

A real store and API server, the controller manager (deployment, replicaset and
horizontalpodautoscaling, syncing every second), the scheduler and one real agent
with the process runtime: pods are host processes, and their cpu comes from the
kernel through the agent's stats and metrics.k8s.io. The Deployment's pods spin
while a file the test owns exists (cpu request 50m, limit 200m where cgroup v2 is
writable), so the HPA scales up; the test removes the file, usage falls to zero and
the HPA scales back down after the 3 s stabilization window its behavior sets.
"""

import contextlib
import os
import shutil
import signal

import pytest

from agent.main import Agent, parse_args
from control.client import Invalid, NotFound
from control.controllers.podautoscaler import HPAS
from control.objects.kinds import DEPLOYMENTS, EVENTS, PODS
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane, create_namespace

NODE = "hpa-node"
NS = "autoscaling"
TIMEOUT = 90
MANAGER_ARGS = ["--horizontal-pod-autoscaler-sync-period", "1s",
                "--horizontal-pod-autoscaler-cpu-initialization-period", "1s"]


@pytest.fixture(scope="module")
def agent(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("hpa-agent")
    started = Agent(parse_args([
        "--kubeconfig", server.kubeconfig_for(f"node-{NODE}", f"system:node:{NODE}",
                                              ["system:nodes"]),
        "--node-name", NODE, *server.agent_tls_args(NODE), "--node-ip", "127.0.0.1",
        "--port", "0", "--runtime", "process", "--data-dir", str(base / "data"),
        "--heartbeat-interval", "1", "--sync-period", "0.2", "--stats-interval", "0.5",
        "--backoff-base", "0.2", "--backoff-max", "1"])).start()
    try:
        yield started
    finally:
        started.stop()
        _kill_leftover_pods(str(base))


def _kill_leftover_pods(base):
    """Kill, by pid, the shims (and their pods) this module's agent left under ``base``.

    Pods of the process runtime outlive their agent, as containers outlive kubelet;
    the test deletes them before this, so normally nothing is found.
    """
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"agent.runtime.shim" in argv and any(base.encode() in arg for arg in argv):
            for pid in _children(int(entry)) + [int(entry)]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


@pytest.fixture(scope="module")
def plane(server, rest, agent, tmp_path_factory):
    with ControlPlane(server, tmp_path_factory.mktemp("hpa-plane"),
                      "deployment,replicaset,horizontalpodautoscaling",
                      manager_args=MANAGER_ARGS) as started:
        create_namespace(rest, NS)
        yield started


def _deployment(load_file):
    script = f'while [ -e "{load_file}" ]; do :; done; exec sleep 100000'
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "burn", "namespace": NS},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "burn"}},
                     "template": {"metadata": {"labels": {"app": "burn"}}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "spin", "image": "x",
                                         "command": ["sh", "-c", script],
                                         "resources": {"requests": {"cpu": "50m"},
                                                       "limits": {"cpu": "200m"}}}]}}}}


HPA = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
       "metadata": {"name": "burn", "namespace": NS},
       "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                   "name": "burn"},
                "minReplicas": 1, "maxReplicas": 2,
                "metrics": [{"type": "Resource", "resource": {
                    "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 3}}}}


def _replicas(rest):
    return (rest.get(DEPLOYMENTS, NS, "burn").get("spec") or {}).get("replicas")


def _conditions(hpa):
    return {c["type"]: c for c in (hpa.get("status") or {}).get("conditions") or ()}


def _events(rest, reason):
    return [e["message"] for e in rest.list(EVENTS, NS)["items"]
            if e.get("reason") == reason and e["involvedObject"]["name"] == "burn"]


def test_invalid_hpas_are_refused_with_kubernetes_messages(rest, plane):
    bad = {**HPA, "metadata": {"name": "bad", "namespace": NS},
           "spec": {**HPA["spec"], "minReplicas": 3, "maxReplicas": 2,
                    "behavior": {"scaleUp": {"selectPolicy": "Fastest", "policies": []}}}}
    with pytest.raises(Invalid) as refused:
        rest.create(HPAS, NS, bad)
    causes = {(c["field"], c["message"]) for c in refused.value.details["causes"]}
    assert ("spec.maxReplicas",
            "Invalid value: 2: must be greater than or equal to `minReplicas`") in causes
    assert ("spec.behavior.scaleUp.selectPolicy",
            'Unsupported value: "Fastest": supported values: "Disabled", "Max", "Min"') in causes
    assert ("spec.behavior.scaleUp.policies",
            "Required value: must specify at least one Policy") in causes
    # The server still serves, and a valid HPA gets Kubernetes' defaults.
    made = rest.create(HPAS, NS, {**HPA, "metadata": {"name": "defaults", "namespace": NS},
                                  "spec": {"scaleTargetRef": HPA["spec"]["scaleTargetRef"],
                                           "maxReplicas": 3}})
    assert made["spec"]["minReplicas"] == 1
    assert made["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    rest.delete(HPAS, NS, "defaults")


@pytest.mark.skipif(shutil.which("sh") is None, reason="the pods' command needs sh")
def test_hpa_scales_up_under_load_and_down_after_it(server, rest, plane, tmp_path):
    load = tmp_path / "load"
    load.write_text("on")
    logs = plane.logs
    try:
        rest.create(DEPLOYMENTS, NS, _deployment(load))
        rest.create(HPAS, NS, HPA)
        eventually(lambda: _replicas(rest) == 2, timeout=TIMEOUT,
                   message="the HPA scaling the Deployment up to 2", logs=logs)
        up = "New size: 2; reason: cpu resource utilization (percentage of request) above target"
        eventually(lambda: up in _events(rest, "SuccessfulRescale"), timeout=TIMEOUT,
                   message="the scale-up event")
        hpa = eventually(lambda: (lambda h: h if (h.get("status") or {}).get("lastScaleTime")
                                  else None)(rest.get(HPAS, NS, "burn")), timeout=TIMEOUT,
                         message="the HPA's status after the scale-up")
        assert hpa["status"]["currentMetrics"][0]["resource"]["current"][
            "averageUtilization"] > 50
        assert _conditions(hpa)["ScalingActive"]["reason"] == "ValidMetricFound"
        assert hpa["status"]["lastScaleTime"]

        load.unlink()                          # the pods go idle
        eventually(lambda: _replicas(rest) == 1, timeout=TIMEOUT,
                   message="the HPA scaling the Deployment down to 1", logs=logs)
        eventually(lambda: "New size: 1; reason: All metrics below target" in _events(
            rest, "SuccessfulRescale"), timeout=TIMEOUT, message="the scale-down event")
        settled = eventually(lambda: (lambda h: h if (h.get("status") or {}).get(
            "currentReplicas") == 1 else None)(rest.get(HPAS, NS, "burn")), timeout=TIMEOUT,
            message="the HPA's status saying 1 replica", logs=logs)
        assert settled["status"]["currentMetrics"][0]["resource"]["current"][
            "averageUtilization"] < 50
        _check_printing(server)
    finally:
        if load.exists():
            load.unlink()
        # No garbage collector runs here: scale to zero so the agent stops the pods.
        with contextlib.suppress(NotFound):
            rest.delete(HPAS, NS, "burn")
        with contextlib.suppress(NotFound):
            rest.patch(DEPLOYMENTS, NS, "burn", {"spec": {"replicas": 0}})
        eventually(lambda: not rest.list(PODS, NS)["items"], timeout=TIMEOUT,
                   message="the Deployment's pods gone", logs=logs)


def _check_printing(server):
    """`steer get hpa` and, where kubectl is installed, kubectl get and describe."""
    got = server.steer("get", "hpa", "-n", NS).stdout.splitlines()
    assert got[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                              "REPLICAS", "AGE"]
    row = got[1].split()
    # TARGETS is "cpu: 0%/50%" (two words once split); MINPODS, MAXPODS, REPLICAS follow.
    assert row[:3] == ["burn", "Deployment/burn", "cpu:"] and row[4:7] == ["1", "2", "1"]
    assert row[3].endswith("%/50%"), row
    if shutil.which("kubectl") is None:
        return
    table = server.kubectl("get", "hpa", "-n", NS).stdout.splitlines()
    assert table[0].split() == got[0].split()
    described = server.kubectl("describe", "hpa", "burn", "-n", NS).stdout
    for expected in ("Reference:", "Deployment/burn", "Min replicas:", "Max replicas:",
                     "AbleToScale", "ScalingActive", "SuccessfulRescale",
                     "resource cpu on pods  (as a percentage of request):"):
        assert expected in described, described
