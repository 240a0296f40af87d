"""The kubectl-shaped verbs of `steer`, run as subprocesses against a real cluster.

One module-scoped cluster: a 3-node store and steer-apiserver, the controller
manager (deployment, replicaset, daemonset and statefulset controllers), the scheduler, two hollow nodes
(n1, n2) and a fake node agent serving logs for a third node. Each test uses its
own objects so the order does not matter.
"""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from control.objects import kinds
from tests.support.apiproc import ROOT, eventually
from tests.support.controlplane import ControlPlane
from tests.support.fake_agent import FakeAgent


class Cluster:
    def __init__(self, api, components, home):
        self.api, self.components = api, components
        # The admin's kubeconfig (TLS, client certificate), never a developer's ~/.steer.
        self.env = {**os.environ, "STEER_SERVER": "", "STEER_HOME": str(home),
                    "KUBECONFIG": api.kubeconfig, "PYTHONPATH": ROOT}

    def steer(self, *args, stdin=None, env=None, timeout=90, check=None):
        """Run `steer ARGS`; return the CompletedProcess (assert its exit code if asked)."""
        environment = {**self.env, **(env or {})}
        result = subprocess.run([sys.executable, "-m", "cli.main", *args], input=stdin,
                                capture_output=True, text=True, env=environment, cwd=ROOT,
                                timeout=timeout)
        if check is not None:
            assert result.returncode == check, (
                f"steer {' '.join(args)} -> {result.returncode}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}\n{self.logs()}")
        return result

    def ok(self, *args, **kw):
        return self.steer(*args, check=0, **kw).stdout

    def json(self, *args):
        return json.loads(self.ok(*args, "-o", "json"))

    def logs(self):
        return self.components.logs()[-6000:]


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory):
    agent = FakeAgent.for_server(server, ["logger"])
    try:
        with ControlPlane(server, tmp_path_factory.mktemp("cli-verbs"),
                          "deployment,replicaset,daemonset,statefulset",
                          nodes=["n1", "n2"], renew_interval=1.0) as plane:
            yield Cluster(server, plane.manager, tmp_path_factory.mktemp("steer-home")), agent
    finally:
        agent.stop()


@pytest.fixture
def c(cluster):
    return cluster[0]


def deployment(name, image="busybox:1", replicas=2, labels=None, namespace=None):
    meta = {"name": name, "labels": labels or {"app": name}}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "main", "image": image}]}}}}


def dump(*docs):
    return yaml.safe_dump_all(docs)


# -- apply / create / delete --------------------------------------------------------------
def test_apply_created_configured_unchanged_and_field_removal(c, tmp_path):
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "settings", "labels": {"team": "a", "extra": "yes"}},
          "data": {"a": "1", "b": "2"}}
    path = tmp_path / "app.yaml"
    path.write_text(dump(cm, deployment("applied", replicas=1)))
    assert c.ok("apply", "-f", str(path)).splitlines() == [
        "configmap/settings created", "deployment.apps/applied created"]
    assert c.ok("apply", "-f", str(path)).splitlines() == [
        "configmap/settings unchanged", "deployment.apps/applied unchanged"]
    del cm["data"]["b"]
    del cm["metadata"]["labels"]["extra"]
    path.write_text(dump(cm, deployment("applied", replicas=1)))
    assert "configmap/settings configured" in c.ok("apply", "-f", str(path))
    live = c.json("get", "configmap", "settings")
    assert live["data"] == {"a": "1"} and live["metadata"]["labels"] == {"team": "a"}
    # A directory and stdin work too; create refuses an existing object.
    assert "configmap/settings unchanged" in c.ok("apply", "-f", str(tmp_path))
    assert "configmap/settings unchanged" in c.ok("apply", "-f", "-", stdin=dump(cm))
    result = c.steer("create", "-f", str(path), check=1)
    assert (f'Error from server (AlreadyExists): error when creating "{path}": configmaps '
            '"settings" already exists') in result.stderr


@pytest.mark.kubectl
def test_steer_and_kubectl_take_turns_at_apply(c, tmp_path):
    """steer writes last-applied exactly as kubectl does: they can take turns."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "turns", "labels": {"team": "a", "extra": "yes"}},
          "data": {"a": "1", "b": "2"}}
    path = tmp_path / "turns.yaml"
    path.write_text(dump(cm, deployment("turns", replicas=1)))
    c.ok("apply", "-f", str(path))
    del cm["data"]["b"]
    del cm["metadata"]["labels"]["extra"]
    path.write_text(dump(cm, deployment("turns", replicas=1)))
    assert "configmap/turns configured" in c.ok("apply", "-f", str(path))
    out = c.api.kubectl("apply", "--validate=false", "-f", str(path)).stdout
    assert out.splitlines() == ["configmap/turns unchanged", "deployment.apps/turns unchanged"]
    assert "configmap/turns unchanged" in c.ok("apply", "-f", str(path))


def test_delete_waits_until_gone(c, tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "doomed"},
           "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "busybox"}]}}
    c.ok("create", "-f", "-", stdin=dump(pod))
    eventually(lambda: c.json("get", "pod", "doomed").get("status", {}).get("phase")
               == "Running", timeout=60, message="pod running")
    assert c.ok("delete", "pod", "doomed", "--grace-period", "30") == 'pod "doomed" deleted\n'
    result = c.steer("get", "pod", "doomed", check=1)
    assert result.stderr.strip() == 'Error from server (NotFound): pods "doomed" not found'
    # By manifest and by selector, without waiting.
    path = tmp_path / "cms.yaml"
    path.write_text(dump(*[{"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": f"gone-{i}", "labels": {"batch": "x"}}}
                           for i in range(3)]))
    c.ok("apply", "-f", str(path))
    assert c.ok("delete", "cm", "gone-0", "--wait=false") == 'configmap "gone-0" deleted\n'
    assert sorted(c.ok("delete", "cm", "-l", "batch=x").splitlines()) == [
        'configmap "gone-1" deleted', 'configmap "gone-2" deleted']
    result = c.steer("delete", "-f", str(path), check=1)
    assert 'configmaps "gone-0" not found' in result.stderr
    assert c.ok("delete", "-f", str(path), "--ignore-not-found") == ""


# -- get ----------------------------------------------------------------------------------
def test_get_in_every_output_form(c, tmp_path):
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}
    cms = [{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": n, "namespace": "shop", "labels": {"tier": t}},
            "data": {"k": "v"}} for n, t in (("alpha", "front"), ("beta", "back"))]
    c.ok("apply", "-f", "-", stdin=dump(ns, *cms))
    lines = c.ok("get", "cm", "-n", "shop").splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["alpha", "beta"]
    assert c.ok("get", "configmaps", "-n", "shop", "-o", "name").splitlines() == [
        "configmap/alpha", "configmap/beta"]
    assert c.ok("get", "cm/alpha", "-n", "shop", "-o", "name") == "configmap/alpha\n"
    assert c.ok("get", "cm", "-n", "shop", "-l", "tier=back", "-o", "name") == "configmap/beta\n"
    assert c.ok("get", "cm", "-n", "shop", "--field-selector", "metadata.name=alpha",
                "-o", "name") == "configmap/alpha\n"
    one = yaml.safe_load(c.ok("get", "cm", "alpha", "-n", "shop", "-o", "yaml"))
    assert one["kind"] == "ConfigMap" and one["data"] == {"k": "v"}
    listing = c.json("get", "cm", "-n", "shop")
    assert listing["kind"] == "List" and len(listing["items"]) == 2
    assert listing["items"][0]["apiVersion"] == "v1"
    assert c.ok("get", "cm", "-n", "shop", "-o", "jsonpath={.items[*].metadata.name}") == \
        "alpha beta"
    assert c.ok("get", "cm", "alpha", "-n", "shop", "-o", "jsonpath={.data.k}") == "v"
    assert c.ok("get", "cm", "-n", "shop", "-o",
                "custom-columns=NAME:.metadata.name,TIER:.metadata.labels.tier").splitlines() == [
        "NAME    TIER", "alpha   front", "beta    back"]
    everywhere = c.ok("get", "cm", "-A", "-l", "tier").splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert everywhere[1].split()[:2] == ["shop", "alpha"]
    result = c.steer("get", "pods", "-n", "shop", check=0)
    assert result.stdout == "" and result.stderr == "No resources found in shop namespace.\n"
    # Nodes (cluster-scoped), wide columns, `all` with kind/ prefixes.
    wide = c.ok("get", "nodes", "-o", "wide").splitlines()
    assert "INTERNAL-IP" in wide[0] and any(line.startswith("n1 ") for line in wide)
    c.ok("apply", "-f", "-", stdin=dump(deployment("listed", replicas=1, namespace="shop")))
    everything = c.ok("get", "all", "-n", "shop")
    assert "deployment.apps/listed" in everything


def test_get_watch_prints_rows_as_they_change(c):
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "get", "cm", "-w",
                             "-l", "watched=yes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=c.env)
    try:
        assert proc.stderr.readline() == "No resources found in default namespace.\n"
        c.ok("apply", "-f", "-", stdin=dump({"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "seen",
                                                          "labels": {"watched": "yes"}}}))
        assert proc.stdout.readline().split() == ["NAME", "DATA", "AGE"]
        assert proc.stdout.readline().split()[0] == "seen"
    finally:
        proc.kill()
        proc.wait(10)


# -- describe, events, api-resources --------------------------------------------------------
def test_describe_and_events(c):
    c.ok("apply", "-f", "-", stdin=dump(deployment("described", replicas=1)))
    assert c.ok("wait", "--for=condition=Available", "deploy/described", "--timeout",
                "60s") == "deployment.apps/described condition met\n"
    def line(pattern, text):
        assert re.search(pattern, text, re.M), f"{pattern!r} not in:\n{text}"

    page = c.ok("describe", "deployment", "described")
    for pattern in (r"^Name:\s+described$", r"^Replicas:\s+1 desired \| 1 updated",
                    r"^Pod Template:$", r"^NewReplicaSet:\s+described-\w+ \(1/1 replicas",
                    r"^Events:$", r"^  Normal\s+ScalingReplicaSet\s"):
        line(pattern, page)
    pod = c.json("get", "pods", "-l", "app=described")["items"][0]["metadata"]["name"]
    page = c.ok("describe", "pod", pod)
    line(r"^Controlled By:\s+ReplicaSet/described-", page)
    line(r"^Status:\s+Running$", page)
    line(r"^Events:", page)
    rs_page = c.ok("describe", "rs", "-l", "app=described")
    line(r"^Controlled By:\s+Deployment/described$", rs_page)
    line(r"^Pods Status:\s+1 Running / 0 Waiting / 0 Succeeded / 0 Failed$", rs_page)
    node_page = c.ok("describe", "node", "n1")
    line(r"^Capacity:$", node_page)
    line(r"^Non-terminated Pods:\s+\(\d+ in total\)$", node_page)
    line(r"^  cpu\s+\S+ \(\d+%\)", node_page)
    line(r"^Status:\s+Active$", c.ok("describe", "ns", "default"))
    generic = c.ok("describe", "lease", "n1", "-n", "kube-node-lease")
    assert re.search(r"^Kind:\s+Lease$", generic, re.M) and "Holder Identity:" in generic
    events = c.ok("events", "--for", "deployment/described").splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any("ScalingReplicaSet" in e and "Deployment/described" in e for e in events[1:])
    every = c.ok("events", "-A").splitlines()
    assert every[0].startswith("NAMESPACE")


def test_api_resources(c):
    lines = c.ok("api-resources").splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert any(line.split() == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
               for line in lines)
    client, server = c.ok("version").splitlines()
    assert client == "Client Version: v0.1.0" and server.startswith("Server Version: v1.")
    names = c.ok("api-resources", "--namespaced=false", "-o", "name").split()
    assert "nodes" in names and "pods" not in names


# -- scale and rollout -------------------------------------------------------------------
def test_scale_and_rollout_status_history_undo_restart(c, tmp_path):
    path = tmp_path / "roll.yaml"
    path.write_text(dump(deployment("roll", image="app:v1", replicas=2)))
    c.ok("apply", "-f", str(path))
    out = c.ok("rollout", "status", "deploy/roll", "--timeout", "60")
    assert out.splitlines()[-1] == 'deployment "roll" successfully rolled out'
    assert c.ok("scale", "deploy", "roll", "--replicas", "3") == "deployment.apps/roll scaled\n"
    out = c.ok("rollout", "status", "deployment", "roll", "--timeout", "60")
    assert out.splitlines()[-1] == 'deployment "roll" successfully rolled out'
    assert c.json("get", "deploy", "roll")["status"]["availableReplicas"] == 3

    changed = deployment("roll", image="app:v2", replicas=3)
    path.write_text(dump(changed))
    assert c.ok("apply", "-f", str(path)) == "deployment.apps/roll configured\n"
    out = c.ok("rollout", "status", "deploy/roll", "--timeout", "60").splitlines()
    assert out[-1] == 'deployment "roll" successfully rolled out'
    assert all(line.startswith(("Waiting for deployment", 'deployment "roll"')) for line in out)
    history = c.ok("rollout", "history", "deploy/roll").splitlines()
    assert history[0].strip() == "deployment.apps/roll"
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    page = c.ok("rollout", "history", "deploy/roll", "--revision", "1")
    assert page.startswith("deployment.apps/roll with revision #1\nPod Template:\n")
    assert re.search(r"^    Image:\s+app:v1$", page, re.M), page

    assert c.ok("rollout", "undo", "deploy/roll") == "deployment.apps/roll rolled back\n"
    template = c.json("get", "deploy", "roll")["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "app:v1"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    c.ok("rollout", "status", "deploy/roll", "--timeout", "60")
    assert c.ok("rollout", "undo", "deploy/roll", "--to-revision", "2") == \
        "deployment.apps/roll rolled back\n"
    c.ok("rollout", "status", "deploy/roll", "--timeout", "60")
    result = c.steer("rollout", "undo", "deploy/roll", "--to-revision", "99", check=1)
    assert "unable to find specified revision 99 in history" in result.stderr

    assert c.ok("rollout", "restart", "deploy/roll") == "deployment.apps/roll restarted\n"
    annotations = c.json("get", "deploy", "roll")["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    out = c.ok("rollout", "status", "deploy/roll", "--timeout", "60")
    assert out.splitlines()[-1] == 'deployment "roll" successfully rolled out'


def test_statefulset_rollout_status_and_restart(c):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"replicas": 2, "serviceName": "db",
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"terminationGracePeriodSeconds": 0,
                                          "containers": [{"name": "db", "image": "db:1"}]}}}}
    c.ok("apply", "-f", "-", stdin=dump(sts))
    out = c.ok("rollout", "status", "sts/db", "--timeout", "60").splitlines()
    assert re.fullmatch(r"statefulset rolling update complete 2 pods at revision db-\w+\.\.\.",
                        out[-1]), out
    assert c.ok("rollout", "restart", "statefulset/db") == "statefulset.apps/db restarted\n"
    out = c.ok("rollout", "status", "sts/db", "--timeout", "60").splitlines()
    assert out[-1].startswith("statefulset rolling update complete 2 pods"), out
    assert c.ok("scale", "sts/db", "--replicas", "1") == "statefulset.apps/db scaled\n"
    history = c.ok("rollout", "history", "sts/db").splitlines()
    assert history[:2] == ["statefulset.apps/db ", "REVISION  CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    result = c.steer("rollout", "undo", "sts/db", check=1)
    assert "rollout undo is only supported for deployments" in result.stderr


# -- label / annotate ---------------------------------------------------------------------
def test_label_and_annotate(c):
    c.ok("apply", "-f", "-", stdin=dump({"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "tagged"}}))
    assert c.ok("label", "cm", "tagged", "color=red") == "configmap/tagged labeled\n"
    result = c.steer("label", "cm/tagged", "color=blue", check=1)
    assert "'color' already has a value (red), and --overwrite is false" in result.stderr
    c.ok("label", "cm/tagged", "color=blue", "--overwrite")
    assert c.json("get", "cm", "tagged")["metadata"]["labels"] == {"color": "blue"}
    c.ok("label", "cm", "tagged", "color-")
    assert not c.json("get", "cm", "tagged")["metadata"].get("labels")
    assert c.ok("annotate", "cm", "tagged", "note=hello world") == \
        "configmap/tagged annotated\n"
    assert c.json("get", "cm", "tagged")["metadata"]["annotations"]["note"] == "hello world"


# -- cordon / uncordon / drain -------------------------------------------------------------
def test_cordon_uncordon_and_drain(c):
    try:
        assert c.ok("cordon", "n1") == "node/n1 cordoned\n"
        assert c.ok("cordon", "n1") == "node/n1 already cordoned\n"
        assert c.json("get", "node", "n1")["spec"]["unschedulable"] is True
        assert c.ok("uncordon", "node/n1") == "node/n1 uncordoned\n"
        assert not c.json("get", "node", "n1")["spec"].get("unschedulable")

        c.ok("apply", "-f", "-", stdin=dump(deployment("drained", replicas=4)))
        c.ok("rollout", "status", "deploy/drained", "--timeout", "60")
        daemon = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agentd"},
                  "spec": {"selector": {"matchLabels": {"app": "agentd"}},
                           "template": {"metadata": {"labels": {"app": "agentd"}},
                                        "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                                 "containers": [{"name": "d", "image": "d"}]}}}}
        c.ok("apply", "-f", "-", stdin=dump(daemon))
        out = c.ok("rollout", "status", "daemonset/agentd", "--timeout", "60")
        assert out.splitlines()[-1] == 'daemon set "agentd" successfully rolled out'
        result = c.steer("drain", "n1", check=1)
        assert "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): " \
               "default/agentd-" in result.stderr
        bare = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
                "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": "busybox"}]}}
        c.ok("create", "-f", "-", stdin=dump(bare))
        result = c.steer("drain", "n1", "--ignore-daemonsets", check=1)
        assert "cannot delete Pods that declare no controller (use --force to override): " \
               "default/bare" in result.stderr
        result = c.steer("drain", "n1", "--ignore-daemonsets", "--force", "--timeout", "60",
                         check=0)
        assert "evicting pod default/bare" in result.stdout
        assert result.stdout.endswith("node/n1 drained\n")
        assert "Warning: ignoring DaemonSet-managed Pods: default/agentd-" in result.stderr
        assert "; deleting Pods that declare no controller: default/bare" in result.stderr
        daemon_pods = c.json("get", "pods", "-l", "app=agentd")["items"]
        assert sorted(p["spec"]["nodeName"] for p in daemon_pods) == ["n1", "n2"]
        assert c.ok("get", "pods", "--field-selector", "spec.nodeName=n1,metadata.name=bare",
                    "-o", "name") == ""

        def all_on_n2():
            pods = c.json("get", "pods", "-l", "app=drained")["items"]
            return len(pods) == 4 and all(p["spec"].get("nodeName") == "n2" for p in pods)
        eventually(all_on_n2, timeout=60, message="drained pods rescheduled on n2")
    finally:
        c.steer("uncordon", "n1")


# -- logs ------------------------------------------------------------------------------------
def test_logs_of_a_pod_and_of_a_deployment(cluster):
    c, agent = cluster
    nodes = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "logger"},
             "spec": {"unschedulable": True}}
    c.ok("create", "-f", "-", stdin=dump(nodes))
    status = {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                         "daemonEndpoints": {"kubeletEndpoint": {"Port": agent.port}}}}
    c.api.rest_client().patch(kinds.NODES, None, "logger", status, subresource="status")
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "talker", "labels": {"app": "talker"}},
           "spec": {"nodeName": "logger", "containers": [{"name": "main", "image": "x"},
                                                        {"name": "side", "image": "y"}]}}
    c.ok("create", "-f", "-", stdin=dump(pod))
    agent.logs[("default", "talker", "main")] = ["one", "two", "three"]
    agent.logs[("default", "talker", "side")] = ["side"]
    result = c.steer("logs", "talker", check=0)
    assert result.stdout == "one\ntwo\nthree\n"
    assert 'Defaulted container "main" out of: main, side' in result.stderr
    assert c.ok("logs", "talker", "-c", "side") == "side\n"
    assert c.ok("logs", "pod/talker", "main", "--tail", "1") == "three\n"
    assert c.ok("logs", "talker", "-c", "main", "--timestamps", "--tail", "1").endswith(
        " three\n")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "talker"},
               "spec": {"clusterIP": "None", "selector": {"app": "talker"},
                        "ports": [{"port": 80, "targetPort": 8080}]}}
    c.ok("apply", "-f", "-", stdin=dump(service))
    assert c.ok("logs", "svc/talker", "-c", "main", "--tail", "2") == "two\nthree\n"
    page = c.ok("describe", "service", "talker")
    assert re.search(r"^Selector:\s+app=talker$", page, re.M)
    assert re.search(r"^TargetPort:\s+8080/TCP$", page, re.M)
    result = c.steer("logs", "talker", "-c", "nope", check=1)
    assert "container nope is not valid for pod talker" in result.stderr
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "logs", "-f", "talker",
                             "-c", "side"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT,
                            env=c.env)
    try:
        assert proc.stdout.readline() == "side\n"
        agent.append("later")
        assert proc.stdout.readline() == "later\n"
        agent.finish()
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# -- errors and exit codes ------------------------------------------------------------------
def test_errors_and_exit_codes(c, tmp_path):
    result = c.steer("get", "foos", check=1)
    assert result.stderr == 'error: the server doesn\'t have a resource type "foos"\n'
    result = c.steer("get", "pod", "nope", check=1)
    assert result.stderr == 'Error from server (NotFound): pods "nope" not found\n'
    result = c.steer("apply", "-f", "-", check=1, stdin=dump(
        {"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "g"}}))
    assert 'no matches for kind "Gizmo" in version "v1"' in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n")
    result = c.steer("apply", "-f", str(bad), check=1)
    assert f"error: error parsing {bad}: line" in result.stderr
    result = c.steer("apply", "-f", "-", check=1, stdin=dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}))
    assert result.stderr.startswith('The ConfigMap "Bad_Name" is invalid: metadata.name: '
                                    "Invalid value")
    result = c.steer("get", "pods", check=1, env={"STEER_SERVER": "http://127.0.0.1:1"})
    assert result.stderr == ("error: cannot reach the API server at http://127.0.0.1:1: is the "
                             "cluster up? run `steer up`\n")
    home = tmp_path / "home"
    home.mkdir()
    env = {"STEER_SERVER": "", "STEER_HOME": str(home), "KUBECONFIG": str(home / "none")}
    result = c.steer("get", "pods", check=1, env=env)
    assert result.stderr == "error: no cluster: run `steer up` (or pass --server)\n"
    (home / "config").write_text(yaml.safe_dump({"apiServer": c.api.url, "token": "",
                                                 "kubeconfig": c.api.kubeconfig}))
    assert c.steer("get", "ns", "default", "-o", "name", env=env, check=0).stdout == \
        "namespace/default\n"
