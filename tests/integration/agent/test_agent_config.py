"""A real agent running pods that use init containers, env sources, volumes and SIGTERM."""

import base64
import os
import signal
import subprocess

from control.objects import kinds
from control.objects.kinds import CONFIGMAPS, PODS, SECRETS
from tests.integration.agent.conftest import pod_gone
from tests.support.apiproc import ROOT, eventually

SCRIPT = ('echo "$GREETING $PW $POD_NAME $NODE $POD_IP"; cat etc/cfg/app.conf; '
          'cat $STEER_ROOT/work/marker; sleep 1000')


def _logs(server, name):
    return server.steer("logs", name, check=False).stdout


def test_init_containers_env_and_volumes(server, agent):
    rest = server.rest_client()
    rest.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "cfg"},
                                        "data": {"greeting": "hi", "app.conf": "x=1"}})
    rest.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "sec"},
                                     "data": {"pw": base64.b64encode(b"pw1").decode()}})
    field = lambda path: {"fieldRef": {"fieldPath": path}}     # noqa: E731
    rest.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "config"},
        "spec": {"nodeName": agent.node_name, "terminationGracePeriodSeconds": 1,
                 "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                             {"name": "work", "emptyDir": {}}],
                 "initContainers": [{"name": "init", "image": "none",
                                     "command": ["sh", "-c", "echo init-ran > work/marker"],
                                     "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
                 "containers": [{
                     "name": "main", "image": "none", "command": ["sh", "-c", SCRIPT],
                     "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {
                                 "name": "cfg", "key": "greeting"}}},
                             {"name": "PW", "valueFrom": {"secretKeyRef": {
                                 "name": "sec", "key": "pw"}}},
                             {"name": "POD_NAME", "valueFrom": field("metadata.name")},
                             {"name": "NODE", "valueFrom": field("spec.nodeName")},
                             {"name": "POD_IP", "valueFrom": field("status.podIP")}],
                     "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                                      {"name": "work", "mountPath": "/work"}]}]}})
    text = eventually(lambda: "init-ran" in (out := _logs(server, "config")) and out,
                      timeout=60, message="config pod output", logs=agent.logs)
    assert f"hi pw1 config {agent.node_name} 127.0.0.1" in text and "x=1" in text
    pod = rest.get(PODS, "default", "config")
    [init] = pod["status"]["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert pod["status"]["phase"] == "Running"
    # steer logs -f follows through the API server.
    follower = subprocess.Popen(server.steer_argv("logs", "-f", "config"),
                                stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert follower.stdout.readline().startswith("hi pw1")
    finally:
        os.kill(follower.pid, signal.SIGTERM)
        follower.wait(10)
    rest.delete(PODS, "default", "config")
    eventually(lambda: pod_gone(rest, "config"), timeout=60, message="config deleted")


def test_deletion_sends_sigterm_first(server, agent, tmp_path):
    rest = server.rest_client()
    script = ('trap "echo got-term > out/term; exit 0" TERM; echo up; '
              'while true; do sleep 0.1; done')
    rest.create(PODS, "default", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful"},
        "spec": {"nodeName": agent.node_name, "terminationGracePeriodSeconds": 30,
                 "volumes": [{"name": "out", "hostPath": {"path": str(tmp_path)}}],
                 "containers": [{"name": "main", "image": "none",
                                 "command": ["sh", "-c", script],
                                 "volumeMounts": [{"name": "out", "mountPath": "/out"}]}]}})
    eventually(lambda: "up" in _logs(server, "graceful"), timeout=60, message="graceful up",
               logs=agent.logs)
    rest.delete(PODS, "default", "graceful")
    eventually(lambda: pod_gone(rest, "graceful"), timeout=60, message="graceful deleted",
               logs=agent.logs)
    with open(tmp_path / "term") as f:
        assert f.read().strip() == "got-term"


def test_run_to_completion_and_a_bad_command(server, agent):
    rest = server.rest_client()
    for name, command, policy in (("once", ["sh", "-c", "echo done"], "Never"),
                                  ("bad", ["no-such-binary-xyz"], "Always")):
        rest.create(PODS, "default", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": agent.node_name, "restartPolicy": policy,
                     "containers": [{"name": "main", "image": "none", "command": command}]}})
    pod = eventually(lambda: ((p := rest.get(PODS, "default", "once")).get("status") or {}).get("phase")
                     == "Succeeded" and p, timeout=60, message="once succeeded",
                     logs=agent.logs)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"

    def crash_looping():
        status = (rest.get(PODS, "default", "bad").get("status") or {})
        waiting = ((status.get("containerStatuses") or [{}])[0].get("state") or {}) \
            .get("waiting") or {}
        return waiting.get("reason") == "CrashLoopBackOff" and status
    status = eventually(crash_looping, timeout=60, message="bad in CrashLoopBackOff",
                        logs=agent.logs)
    assert status["phase"] == "Running"     # kubelet's phase for a crash-looping Always pod
    events = [e for e in rest.list(kinds.lookup("", "v1", "events"), "default")["items"]
              if e["involvedObject"]["name"] == "bad"]
    failed = [e for e in events if e["reason"] == "Failed"]
    assert failed and "executable file not found" in failed[0]["message"]
    assert any(e["reason"] == "BackOff" and e["type"] == "Warning" for e in events)
