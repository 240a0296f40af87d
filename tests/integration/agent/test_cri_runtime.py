"""A real steer-agent with the cri runtime: pods are containers in a real containerd.

One containerd in its own network namespace (tests/support/containerd.py) and one
agent against a real API server for the whole module. The agent runs in the root
namespace and reaches pod IPs (probes) through the node's namespace.
"""

import ipaddress
import os
import signal
import uuid

import pytest

from agent.provision import containerd as provision
from agent.runtime.cri import api_pb2
from agent.runtime.cri import labels as labelmod
from cli.local_images import BUSYBOX_IMAGE
from control.objects.kinds import CONFIGMAPS, EVENTS, NODES, PODS, SECRETS
from tests.integration.agent.conftest import AgentProcess, pod_gone
from tests.support import containerd as ctd
from tests.support.apiproc import eventually

pytestmark = pytest.mark.skipif(ctd.missing_requirements() is not None,
                                reason=f"no real containerd: {ctd.missing_requirements()}")

POD_CIDR = "10.244.19.0/24"


class Node:
    """The module's containerd (restartable) and the pid it runs as now."""

    def __init__(self, handle):
        self.handle, self.pid = handle, handle.pid

    def kill_and_restart(self):
        os.kill(self.pid, signal.SIGKILL)
        provision._reap(self.pid)
        self.pid = provision.start_containerd(self.handle.paths, self.handle.netns_path)
        provision.wait_ready(self.handle.endpoint, timeout=60, pid=self.pid)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with ctd.running_containerd(tmp_path_factory.mktemp("ctd"), pod_cidr=POD_CIDR) as handle:
        node = Node(handle)
        try:
            yield node
        finally:
            if node.pid != handle.pid:
                # Restarted by a test: stop this one; the fixture cleans after the first.
                provision.stop_containerd(handle.paths, node.pid, client=handle.client)


@pytest.fixture(scope="module")
def cri_agent(server, node, tmp_path_factory):
    proc = _agent(server, node, tmp_path_factory.mktemp("agent"))
    try:
        yield proc
    finally:
        proc.stop()


def _agent(server, node, base_dir):
    handle = node.handle
    proc = AgentProcess(server, base_dir, node_name=handle.node_name, extra_args=[
        "--runtime", "cri", "--container-runtime-endpoint", handle.endpoint,
        "--node-netns", handle.netns_path, "--resolv-conf", ""])
    proc.start()
    rest = server.rest_client()

    def registered():
        try:
            return rest.get(NODES, None, proc.node_name)["status"]["daemonEndpoints"]
        except Exception:
            return None
    eventually(registered, timeout=60, message="node registered", logs=proc.logs)
    return proc


def _pod(node_name, name, containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "terminationGracePeriodSeconds": 1,
                     "containers": [{"image": BUSYBOX_IMAGE, **c} for c in containers],
                     **spec}}


def _sleeper(name="main", **extra):
    return {"name": name, "command": ["sleep", "3600"], **extra}


def _statuses(rest, name):
    pod = rest.get(PODS, "default", name)
    return pod, {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or ()}


def _running(rest, name, ready=True):
    pod, statuses = _statuses(rest, name)
    ok = (pod.get("status") or {}).get("phase") == "Running" and statuses and \
        all("running" in s["state"] and (s["ready"] or not ready) for s in statuses.values())
    return ok and (pod, statuses)


def _wait_running(rest, agent, name, ready=True, timeout=60):
    return eventually(lambda: _running(rest, name, ready), timeout=timeout,
                      message=f"{name} running", logs=agent.logs)


def _container_id(status):
    return status["containerID"].split("://", 1)[1]


def _exec(node, status, argv):
    code, out, err = node.handle.client.exec_sync(_container_id(status), argv, 10)
    return code, out.decode(), err.decode()


def test_node_reports_containerd(cri_agent, rest):
    node = rest.get(NODES, None, cri_agent.node_name)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.")
    assert node["metadata"]["labels"]["node.steersman.io/runtime"] == "cri"


def test_pod_runs_with_its_own_ip_and_logs(server, node, cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "sleeper", [
        {"name": "main", "command": ["sh", "-c", "echo hello from $HOSTNAME; sleep 3600"]}]))
    pod, statuses = _wait_running(rest, cri_agent, "sleeper")
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_CIDR)
    assert pod["status"]["hostIP"] == "127.0.0.1"
    status = statuses["main"]
    assert status["containerID"].startswith("containerd://") and status["restartCount"] == 0
    assert status["imageID"].startswith("sha256:")
    eventually(lambda: "hello from sleeper" in server.steer("logs", "sleeper", check=False).stdout,
               timeout=30, message="logs through the agent", logs=cri_agent.logs)
    code, out, _ = _exec(node, status, ["cat", "/etc/hosts"])
    assert code == 0 and f"{pod['status']['podIP']}\tsleeper" in out
    # --resolv-conf "": no resolver at all, not the host's (containerd's default).
    assert "nameserver" not in _exec(node, status, ["cat", "/etc/resolv.conf"])[1]
    reasons = {e["reason"] for e in rest.list(EVENTS, "default")["items"]
               if e["involvedObject"]["name"] == "sleeper"}
    assert {"Pulled", "Created", "Started"} <= reasons


def test_volumes_appear_at_their_mount_paths(node, cri_agent, rest):
    rest.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cfg"}, "data": {"a.conf": "x=1"}})
    rest.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "pw"}, "stringData": {"pw": "s3cret"}})
    rest.create(PODS, "default", _pod(cri_agent.node_name, "vols", [
        {"name": "writer", "command": ["sh", "-c", "echo shared > /shared/f; sleep 3600"],
         "volumeMounts": [{"name": "scratch", "mountPath": "/shared"},
                          {"name": "cfg", "mountPath": "/etc/config", "readOnly": True},
                          {"name": "pw", "mountPath": "/etc/pw", "readOnly": True}]},
        _sleeper("reader", volumeMounts=[{"name": "scratch", "mountPath": "/data"},
                                         {"name": "cfg", "mountPath": "/one.conf",
                                          "subPath": "a.conf"}])],
        volumes=[{"name": "scratch", "emptyDir": {}},
                 {"name": "cfg", "configMap": {"name": "cfg"}},
                 {"name": "pw", "secret": {"secretName": "pw"}}]))
    _, statuses = _wait_running(rest, cri_agent, "vols")
    writer, reader = statuses["writer"], statuses["reader"]
    assert _exec(node, writer, ["cat", "/etc/config/a.conf"])[1] == "x=1"
    assert _exec(node, writer, ["cat", "/etc/pw/pw"])[1] == "s3cret"
    assert _exec(node, writer, ["touch", "/etc/config/new"])[0] != 0      # readOnly
    assert _exec(node, reader, ["cat", "/one.conf"])[1] == "x=1"
    eventually(lambda: _exec(node, reader, ["cat", "/data/f"])[1] == "shared\n", timeout=30,
               message="emptyDir shared between containers")


def test_security_context(node, cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "secure", [
        _sleeper("user", securityContext={"runAsUser": 1000, "runAsGroup": 1000}),
        _sleeper("readonly", securityContext={"readOnlyRootFilesystem": True})]))
    _, statuses = _wait_running(rest, cri_agent, "secure")
    assert _exec(node, statuses["user"], ["id", "-u"])[1].strip() == "1000"
    assert _exec(node, statuses["readonly"], ["touch", "/x"])[0] != 0
    assert _exec(node, statuses["readonly"], ["touch", "/tmp/x"])[0] != 0


def test_run_as_non_root_refuses_a_root_image(cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "nonroot", [
        _sleeper(securityContext={"runAsNonRoot": True})]))

    def refused():
        _, statuses = _statuses(rest, "nonroot")
        waiting = (statuses.get("main") or {}).get("state", {}).get("waiting") or {}
        return waiting.get("reason") == "CreateContainerConfigError" and waiting
    waiting = eventually(refused, timeout=60, message="refused", logs=cri_agent.logs)
    assert "runAsNonRoot" in waiting["message"]


def test_memory_limit_ends_oomkilled(cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "hog", [
        {"name": "main", "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
         "resources": {"limits": {"memory": "16Mi"}}}], restartPolicy="Never"))

    def terminated():
        pod, statuses = _statuses(rest, "hog")
        state = (statuses.get("main") or {}).get("state", {})
        return "terminated" in state and (pod, state["terminated"])
    pod, state = eventually(terminated, timeout=60, message="hog ended", logs=cri_agent.logs)
    assert (state["reason"], state["exitCode"]) == ("OOMKilled", 137)
    assert pod["status"]["phase"] == "Failed"


def test_restart_policy_never_exit_1_fails(node, cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "fails", [
        {"name": "main", "command": ["sh", "-c", "echo bye > /dev/termination-log; exit 1"]}],
        restartPolicy="Never"))
    pod = eventually(lambda: ((p := rest.get(PODS, "default", "fails")).get("status") or {})
                     .get("phase") == "Failed" and p, timeout=60, message="failed",
                     logs=cri_agent.logs)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1 and terminated["reason"] == "Error"
    assert terminated["message"] == "bye\n"
    # Nothing will run in it again: its sandbox is stopped (the IP freed), not removed.
    uid = pod["metadata"]["uid"]
    eventually(lambda: [s.state for s in node.handle.client.list_pod_sandbox(
        label_selector={labelmod.POD_UID: uid})] == [api_pb2.SANDBOX_NOTREADY], timeout=30,
        message="sandbox stopped", logs=cri_agent.logs)


def test_a_missing_program_is_a_start_error(node, cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "nobin", [
        {"name": "main", "command": ["/no/such/program"]}], restartPolicy="Never"))
    pod = eventually(lambda: ((p := rest.get(PODS, "default", "nobin")).get("status") or {})
                     .get("phase") == "Failed" and p, timeout=60, message="failed",
                     logs=cri_agent.logs)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("StartError", 128)
    assert "/no/such/program" in terminated["message"]
    assert not _containers(node, "nobin")           # the failed container was removed


def test_probes_liveness_restarts_and_readiness_over_http(server, cri_agent, rest):
    rest.create(PODS, "default", _pod(cri_agent.node_name, "probed", [
        {"name": "sick", "command": ["sh", "-c", "echo alive; exec sleep 3600"],
         "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1,
                           "failureThreshold": 1}},
        {"name": "web", "command": ["sh", "-c", "echo ok > /tmp/index.html; "
                                                "exec httpd -f -p 8080 -h /tmp"],
         "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080},
                            "periodSeconds": 1}}]))

    def probed():
        _, statuses = _statuses(rest, "probed")
        sick, web = statuses.get("sick") or {}, statuses.get("web") or {}
        return sick.get("restartCount", 0) >= 1 and web.get("ready") and statuses
    eventually(probed, timeout=90, message="liveness restart and readiness",
               logs=cri_agent.logs)
    reasons = {e["reason"] for e in rest.list(EVENTS, "default")["items"]
               if e["involvedObject"]["name"] == "probed"}
    assert {"Unhealthy", "Killing"} <= reasons
    eventually(lambda: "alive" in server.steer("logs", "probed", "-c", "sick", "--previous",
                                               check=False).stdout,
               timeout=30, message="logs of the previous attempt", logs=cri_agent.logs)


def test_a_new_agent_readopts_the_containers(server, node, cri_agent, rest):
    _, before = _wait_running(rest, cri_agent, "sleeper")
    cri_agent.kill()
    cri_agent.start()
    # The new agent posts the same container: same id, no restart.
    eventually(lambda: rest.get(NODES, None, cri_agent.node_name), timeout=30)
    _, after = _wait_running(rest, cri_agent, "sleeper")
    assert after["main"]["containerID"] == before["main"]["containerID"]
    assert after["main"]["restartCount"] == before["main"]["restartCount"]
    eventually(lambda: "re-adopted" in _log_text(cri_agent), timeout=30, message="re-adopted",
               logs=cri_agent.logs)
    rest.patch(PODS, "default", "sleeper", {"metadata": {"labels": {"poke": uuid.uuid4().hex}}})
    _, again = _wait_running(rest, cri_agent, "sleeper")
    assert again["main"]["containerID"] == before["main"]["containerID"]
    assert len(_containers(node, "sleeper")) == 1         # nothing started twice


def _log_text(agent):
    with open(agent.log_path, errors="replace") as f:
        return f.read()


def _containers(node, name):
    return node.handle.client.list_containers(label_selector={labelmod.POD_NAME: name})


def test_containerd_restart_keeps_pods_running(node, cri_agent, rest):
    _, before = _wait_running(rest, cri_agent, "sleeper")
    node.kill_and_restart()
    _, after = _wait_running(rest, cri_agent, "sleeper")
    assert after["main"]["containerID"] == before["main"]["containerID"]
    assert len(_containers(node, "sleeper")) == 1
    # The agent still drives it: a new pod starts on the restarted containerd.
    rest.create(PODS, "default", _pod(cri_agent.node_name, "after-restart", [_sleeper()]))
    _wait_running(rest, cri_agent, "after-restart")


def test_deleting_a_pod_removes_its_sandbox(node, cri_agent, rest):
    uid = rest.get(PODS, "default", "sleeper")["metadata"]["uid"]
    assert node.handle.client.list_pod_sandbox(label_selector={labelmod.POD_UID: uid})
    rest.delete(PODS, "default", "sleeper")
    eventually(lambda: pod_gone(rest, "sleeper"), timeout=60, message="pod deleted",
               logs=cri_agent.logs)
    eventually(lambda: not node.handle.client.list_pod_sandbox(
        label_selector={labelmod.POD_UID: uid}), timeout=30, message="sandbox removed")


def _delete(rest, agent, name):
    rest.delete(PODS, "default", name)
    eventually(lambda: pod_gone(rest, name), timeout=60, message=f"{name} deleted",
               logs=agent.logs)


def test_log_rotation_renames_and_containerd_reopens(server, node, cri_agent, rest):
    from agent.runtime.cri.logrotation import ContainerLogRotator
    rest.create(PODS, "default", _pod(cri_agent.node_name, "chatty", [
        {"name": "main", "command": ["sh", "-c", "i=0; while true; do for j in 1 2 3 4 5; "
                                     "do i=$((i+1)); echo line $i; done; sleep 1; done"]}]))
    _, statuses = _wait_running(rest, cri_agent, "chatty")
    container_id = _container_id(statuses["main"])
    path = node.handle.client.container_status(container_id).status.log_path
    eventually(lambda: os.path.getsize(path) >= 200, timeout=30, message="log grows")
    rotator = ContainerLogRotator(node.handle.client, 200, 3,
                                  labels={labelmod.POD_NAME: "chatty"})
    assert rotator.rotate_all() == [container_id]

    def numbers(name):
        with open(name) as f:
            return [int(line.rsplit(" ", 1)[1]) for line in f if " line " in line]
    fresh = eventually(lambda: numbers(path), timeout=30, message="containerd writes anew")
    assert numbers(f"{path}.1")[-1] + 1 == fresh[0]     # nothing lost, nothing twice
    out = eventually(lambda: (text := server.steer("logs", "chatty", check=False).stdout)
                     .startswith("line 1\n") and f"line {fresh[0]}\n" in text and text,
                     timeout=30, message="logs across the rotation", logs=cri_agent.logs)
    assert out.count("line 1\n") == 1
    _delete(rest, cri_agent, "chatty")


def test_a_failed_create_waits_as_create_container_error(node, cri_agent, rest, tmp_path):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")      # containerd cannot make a directory here
    rest.create(PODS, "default", _pod(cri_agent.node_name, "badmount", [
        _sleeper(volumeMounts=[{"name": "data", "mountPath": "/data"}])],
        volumes=[{"name": "data", "hostPath": {"path": str(dangling)}}]))

    def waiting():
        _, statuses = _statuses(rest, "badmount")
        state = (statuses.get("main") or {}).get("state", {}).get("waiting") or {}
        return state.get("reason") == "CreateContainerError" and (statuses["main"], state)
    status, state = eventually(waiting, timeout=60, message="CreateContainerError",
                               logs=cri_agent.logs)
    assert str(dangling) in state["message"] and status["restartCount"] == 0
    assert rest.get(PODS, "default", "badmount")["status"]["phase"] == "Pending"
    assert not _containers(node, "badmount")
    _delete(rest, cri_agent, "badmount")


def test_a_replaced_sandbox_runs_the_init_containers_again(node, cri_agent, rest):
    pod = _pod(cri_agent.node_name, "initagain", [_sleeper()])
    pod["spec"]["initContainers"] = [{"name": "init", "image": BUSYBOX_IMAGE,
                                      "command": ["true"]}]
    rest.create(PODS, "default", pod)
    created = _wait_running(rest, cri_agent, "initagain")[0]
    [sandbox] = node.handle.client.list_pod_sandbox(
        label_selector={labelmod.POD_UID: created["metadata"]["uid"]})
    node.handle.client.stop_pod_sandbox(sandbox.id)

    def again():
        pod, statuses = _running(rest, "initagain") or (None, None)
        init = pod and pod["status"]["initContainerStatuses"][0]
        return init and init["restartCount"] == 1 and statuses["main"]["restartCount"] == 1 \
            and pod
    eventually(again, timeout=60, message="init and main again in a new sandbox",
               logs=cri_agent.logs)
    inits = [c for c in _containers(node, "initagain")
             if c.labels.get(labelmod.CONTAINER_NAME) == "init"]
    assert len({c.pod_sandbox_id for c in inits}) == 2
    _delete(rest, cri_agent, "initagain")
