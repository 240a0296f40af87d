"""A real steer-agent with the process runtime against a real API server."""

import os
import signal

from control.client import NotFound
from control.objects.kinds import EVENTS, LEASES, NODES, PODS
from tests.integration.agent.conftest import pod_gone
from tests.support.apiproc import eventually


def _pod(name, node, command, **container_extra):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "none", "command": command,
                                     **container_extra}]}}


def _container_status(rest, name):
    pod = rest.get(PODS, "default", name)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return pod, (statuses[0] if statuses else {})


def _running_ready(rest, name, restarts=None):
    pod, status = _container_status(rest, name)
    ok = (pod.get("status") or {}).get("phase") == "Running" and status.get("ready") and \
        "running" in status.get("state", {})
    if restarts is not None:
        ok = ok and status.get("restartCount", 0) >= restarts
    return ok and (pod, status)


def _current_pid(agent, uid):
    """The pid of the newest attempt of the pod's container."""
    config, pid = max(agent.containers(uid), key=lambda item: item[0]["attempt"])
    return config, pid["pid"]


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_node_registers_with_status_and_lease(server, agent, rest):
    node = rest.get(NODES, None, agent.node_name)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == agent.node_name
    assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"]
    status = node["status"]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert int(status["capacity"]["cpu"]) >= 1 and status["capacity"]["memory"].endswith("Ki")
    assert status["capacity"]["pods"] == "110"
    ready = {c["type"]: c["status"] for c in status["conditions"]}
    assert ready == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                     "PIDPressure": "False"}
    first = eventually(lambda: _lease(rest, agent.node_name), timeout=30, message="lease")
    eventually(lambda: (lease := _lease(rest, agent.node_name)) and lease != first,
               timeout=30, message="lease renewed", logs=agent.logs)


def _lease(rest, name):
    try:
        return rest.get(LEASES, "kube-node-lease", name)["spec"]["renewTime"]
    except NotFound:
        return None


def test_pod_runs_is_ready_and_logs_show(server, agent, rest):
    rest.create(PODS, "default", _pod("hello", agent.node_name,
                                      ["sh", "-c", "echo hello; sleep 1000"]))
    pod, status = eventually(lambda: _running_ready(rest, "hello"), timeout=60,
                             message="hello running and ready", logs=agent.logs)
    assert pod["status"]["podIP"] == pod["status"]["hostIP"] == "127.0.0.1"
    assert status["containerID"].startswith("process://") and status["restartCount"] == 0
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["Ready"] == "True" and conditions["ContainersReady"] == "True"
    eventually(lambda: "hello" in server.steer("logs", "hello", check=False).stdout,
               timeout=30, message="steer logs shows hello", logs=agent.logs)
    stamped = server.steer("logs", "hello", "--timestamps").stdout
    assert stamped.split()[0].endswith("Z") and stamped.split()[1] == "hello"
    reasons = {e["reason"] for e in rest.list(EVENTS, "default")["items"]
               if e["involvedObject"]["name"] == "hello"}
    assert {"Created", "Started"} <= reasons


def test_killed_process_is_restarted(agent, rest):
    pod = rest.get(PODS, "default", "hello")
    uid = pod["metadata"]["uid"]
    _, pid = _current_pid(agent, uid)
    os.kill(pid, signal.SIGKILL)
    _, status = eventually(lambda: _running_ready(rest, "hello", restarts=1), timeout=60,
                           message="restarted after SIGKILL", logs=agent.logs)
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 137
    _, new_pid = _current_pid(agent, uid)
    assert new_pid != pid


def test_previous_logs(server, agent):
    eventually(lambda: "hello" in server.steer("logs", "hello", "--previous",
                                               check=False).stdout,
               timeout=30, message="steer logs --previous", logs=agent.logs)


def test_failing_liveness_probe_restarts(agent, rest):
    rest.create(PODS, "default", _pod(
        "sick", agent.node_name, ["sleep", "1000"],
        livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1,
                       "failureThreshold": 1}))
    eventually(lambda: _container_status(rest, "sick")[1].get("restartCount", 0) >= 1,
               timeout=60, message="liveness restart", logs=agent.logs)
    reasons = {e["reason"] for e in rest.list(EVENTS, "default")["items"]
               if e["involvedObject"]["name"] == "sick"}
    assert {"Unhealthy", "Killing"} <= reasons


def test_delete_stops_the_process_group_and_removes_the_pod(agent, rest):
    uid = rest.get(PODS, "default", "sick")["metadata"]["uid"]
    pids = [pid["pid"] for _, pid in agent.containers(uid)]
    rest.delete(PODS, "default", "sick")
    eventually(lambda: pod_gone(rest, "sick"), timeout=60, message="pod deleted",
               logs=agent.logs)
    eventually(lambda: not any(_group_alive(pid) for pid in pids), timeout=30,
               message="process groups gone")


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def test_restarted_agent_readopts_running_containers(agent, rest):
    pod, status = eventually(lambda: _running_ready(rest, "hello"), timeout=60,
                             message="hello running", logs=agent.logs)
    uid = pod["metadata"]["uid"]
    attempts_before = len(agent.containers(uid))
    config, pid = _current_pid(agent, uid)
    agent.kill()
    assert _alive(pid)                      # containers outlive the agent
    agent.start()
    lease_before = _lease(rest, agent.node_name)
    eventually(lambda: _lease(rest, agent.node_name) != lease_before, timeout=60,
               message="new agent renewing", logs=agent.logs)
    # The new agent has synced the pod: its status is re-posted unchanged and it keeps running.
    _, again = eventually(lambda: _running_ready(rest, "hello"), timeout=60,
                          message="hello still running", logs=agent.logs)
    assert again["containerID"] == status["containerID"]
    assert again["restartCount"] == status["restartCount"]
    assert _current_pid(agent, uid)[1] == pid and _alive(pid)
    assert len(agent.containers(uid)) == attempts_before
    # And it still looks after it: a kill is noticed and restarted by the new agent.
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: _running_ready(rest, "hello", restarts=status["restartCount"] + 1),
               timeout=60, message="restart by the new agent", logs=agent.logs)
