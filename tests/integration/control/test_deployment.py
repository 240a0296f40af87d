"""Deployments end to end: real store, API server, controller manager, scheduler, hollow nodes.

The controller manager runs ``--controllers deployment,replicaset``; the hollow
nodes make bound pods Ready after 0.3 s, so a rolling update takes visible steps.
A pod informer records, at every change, how many pods of the namespace exist and
how many are available, which is what maxSurge and maxUnavailable promise about.
"""

import threading

import pytest

from control.client import Informer
from control.controllers import pods as podutil
from control.objects import kinds
from control.objects.kinds import DEPLOYMENTS, PODS, REPLICASETS
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane, create_namespace

REVISION = "deployment.kubernetes.io/revision"
TIMEOUT = 60


@pytest.fixture(scope="module")
def cluster(server, tmp_path_factory):
    """Controller manager, scheduler and three hollow nodes for the whole module."""
    with ControlPlane(server, tmp_path_factory.mktemp("deployment"), "deployment,replicaset",
                      nodes=["n1", "n2", "n3"], cpu="4", memory="8Gi", renew_interval=1.0,
                      ready_after=0.3) as plane:
        yield plane.logs


def make_deployment(rest, ns, name, replicas, image="busybox:1", strategy=None):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}}}
    if strategy:
        spec["strategy"] = strategy
    return rest.create(DEPLOYMENTS, ns, {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "metadata": {"name": name, "namespace": ns},
                                         "spec": spec})


def live_pods(rest, ns):
    return [p for p in rest.list(PODS, ns)["items"] if podutil.is_active(p)]


def settled(rest, ns, name, replicas, image=None):
    """The Deployment's status says ``replicas`` pods, all updated and available, and it is so."""
    d = rest.get(DEPLOYMENTS, ns, name)
    status = d.get("status") or {}
    if status.get("observedGeneration", 0) < d["metadata"]["generation"]:
        return False
    if any(status.get(k, 0) != replicas for k in ("replicas", "updatedReplicas",
                                                  "readyReplicas", "availableReplicas")):
        return False
    pods = live_pods(rest, ns)
    return (len(pods) == replicas
            and all(p["spec"].get("nodeName") and podutil.is_ready(p) for p in pods)
            and (image is None or all(p["spec"]["containers"][0]["image"] == image
                                      for p in pods)))


def replica_sets(rest, ns):
    return {rs["metadata"]["name"]: rs for rs in rest.list(REPLICASETS, ns)["items"]}


class PodRecorder:
    """Record (live pods, available pods, images of live pods) at every pod change in ``ns``."""

    def __init__(self, server, ns):
        self.ns = ns
        self.rest = server.rest_client(timeout=10)
        self.informer = Informer(self.rest, PODS)
        self.samples = []
        self._lock = threading.Lock()
        self.informer.add_handler(self._changed, lambda old, new: self._changed(new),
                                  self._changed)

    def _changed(self, pod):
        if pod["metadata"].get("namespace") != self.ns:
            return
        pods = [p for p in self.informer.store.list()
                if p["metadata"].get("namespace") == self.ns]
        live = [p for p in pods if podutil.is_active(p)]
        sample = (len(live), sum(podutil.is_ready(p) for p in live),
                  frozenset(p["spec"]["containers"][0]["image"] for p in pods
                            if (p.get("status") or {}).get("phase") not in podutil.TERMINAL_PHASES))
        with self._lock:
            if not self.samples or self.samples[-1] != sample:
                self.samples.append(sample)

    def __enter__(self):
        self.informer.start()
        assert self.informer.wait_for_sync(TIMEOUT)
        return self

    def __exit__(self, *exc):
        self.informer.stop()
        self.rest.close()


def test_a_deployment_of_ten_runs_ten_ready_pods_and_scales(rest, server, cluster):
    ns = create_namespace(rest, "scale")
    make_deployment(rest, ns, "web", 10)
    eventually(lambda: settled(rest, ns, "web", 10), timeout=TIMEOUT,
               message="10 bound, ready pods", logs=cluster)
    d = rest.get(DEPLOYMENTS, ns, "web")
    conditions = {c["type"]: c for c in d["status"]["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert d["metadata"]["annotations"][REVISION] == "1"
    (rs,) = replica_sets(rest, ns).values()
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash
               for p in live_pods(rest, ns))
    server.steer("rollout", "status", "deployment/web", "-n", ns, "--timeout", "60")

    for replicas in (15, 5):
        rest.patch(DEPLOYMENTS, ns, "web", {"spec": {"replicas": replicas}})
        eventually(lambda n=replicas: settled(rest, ns, "web", n), timeout=TIMEOUT,
                   message=f"scaled to {replicas}", logs=cluster)
    assert list(replica_sets(rest, ns)) == [rs["metadata"]["name"]]     # no new template
    events = rest.list(kinds.lookup("", "v1", "events"), ns)["items"]
    messages = {e["message"] for e in events if e["reason"] == "ScalingReplicaSet"}
    name = rs["metadata"]["name"]
    assert {f"Scaled up replica set {name} to 10", f"Scaled up replica set {name} to 15 from 10",
            f"Scaled down replica set {name} to 5 from 15"} <= messages


def test_a_rolling_update_stays_within_surge_and_unavailability(rest, server, cluster):
    ns = create_namespace(rest, "rolling")
    replicas, max_surge, max_unavailable = 10, 3, 2       # 25% of 10: up 3, down 2
    make_deployment(rest, ns, "web", replicas)
    eventually(lambda: settled(rest, ns, "web", replicas), timeout=TIMEOUT,
               message="10 ready pods", logs=cluster)
    with PodRecorder(server, ns) as recorder:
        rest.patch(DEPLOYMENTS, ns, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox:2"}]}}}})
        eventually(lambda: settled(rest, ns, "web", replicas, image="busybox:2"),
                   timeout=TIMEOUT, message="rolled out to busybox:2", logs=cluster)
    samples = recorder.samples
    # From the first full availability on (the recorder starts there), at every step:
    for total, available, _ in samples:
        assert available >= replicas - max_unavailable, samples
        assert total <= replicas + max_surge, samples
    # It went step by step: old and new pods ran side by side for a while.
    assert any(images == {"busybox:1", "busybox:2"} for _, _, images in samples), samples
    assert samples[-1] == (replicas, replicas, frozenset({"busybox:2"}))
    assert len(replica_sets(rest, ns)) == 2


@pytest.mark.kubectl
def test_rollout_status_history_undo_and_restart_with_kubectl(rest, server, cluster):
    ns = create_namespace(rest, "rollout")
    make_deployment(rest, ns, "web", 3)
    server.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    first = next(iter(replica_sets(rest, ns).values()))
    server.kubectl("set", "image", "deployment/web", "c=busybox:2", "-n", ns)
    out = server.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    assert "successfully rolled out" in out.stdout
    assert rest.get(DEPLOYMENTS, ns, "web")["metadata"]["annotations"][REVISION] == "2"
    history = server.kubectl("rollout", "history", "deployment/web", "-n", ns).stdout
    revisions = [line.split()[0] for line in history.splitlines()[2:] if line.strip()]
    assert revisions == ["1", "2"], history

    # Undo: the template of revision 1 comes back, and so does its ReplicaSet.
    server.kubectl("rollout", "undo", "deployment/web", "-n", ns)
    d = rest.get(DEPLOYMENTS, ns, "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1"
    server.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    eventually(lambda: settled(rest, ns, "web", 3, image="busybox:1"), timeout=TIMEOUT,
               message="back on busybox:1", logs=cluster)
    rss = replica_sets(rest, ns)
    assert len(rss) == 2, list(rss)
    reused = rss[first["metadata"]["name"]]
    assert reused["metadata"]["uid"] == first["metadata"]["uid"]
    assert reused["metadata"]["annotations"][REVISION] == "3"
    assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert reused["spec"]["replicas"] == 3
    eventually(lambda: rest.get(DEPLOYMENTS, ns, "web")["metadata"]["annotations"][REVISION]
               == "3", message="deployment at revision 3", logs=cluster)
    history = server.kubectl("rollout", "history", "deployment/web", "-n", ns).stdout
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == \
        ["2", "3"], history

    # Restart: a template annotation, hence a new ReplicaSet and fresh pods.
    before = {p["metadata"]["name"] for p in live_pods(rest, ns)}
    server.kubectl("rollout", "restart", "deployment/web", "-n", ns)
    server.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    eventually(lambda: settled(rest, ns, "web", 3)
               and not before & {p["metadata"]["name"] for p in live_pods(rest, ns)},
               timeout=TIMEOUT, message="restarted pods", logs=cluster)
    assert len(replica_sets(rest, ns)) == 3


def test_recreate_never_runs_old_and_new_pods_together(rest, server, cluster):
    ns = create_namespace(rest, "recreate")
    make_deployment(rest, ns, "web", 4, strategy={"type": "Recreate"})
    eventually(lambda: settled(rest, ns, "web", 4), timeout=TIMEOUT,
               message="4 ready pods", logs=cluster)
    with PodRecorder(server, ns) as recorder:
        rest.patch(DEPLOYMENTS, ns, "web", {"spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox:2"}]}}}})
        eventually(lambda: settled(rest, ns, "web", 4, image="busybox:2"),
                   timeout=TIMEOUT, message="recreated on busybox:2", logs=cluster)
    samples = recorder.samples
    assert all(len(images) <= 1 for _, _, images in samples), samples
    assert any(total == 0 for total, _, _ in samples), samples      # all gone in between
    server.steer("rollout", "status", "deployment/web", "-n", ns, "--timeout", "60")


def test_pause_holds_the_rollout_but_not_scaling(rest, server, cluster):
    ns = create_namespace(rest, "paused")
    make_deployment(rest, ns, "web", 2)
    server.steer("rollout", "status", "deployment/web", "-n", ns, "--timeout", "60")
    server.steer("rollout", "pause", "deployment/web", "-n", ns)
    rest.patch(DEPLOYMENTS, ns, "web", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}}, patch_type="strategic")
    server.steer("scale", "deployment/web", "--replicas=4", "-n", ns)

    def progressing_reason():
        d = rest.get(DEPLOYMENTS, ns, "web")
        cond = next((c for c in (d.get("status") or {}).get("conditions") or ()
                     if c["type"] == "Progressing"), {})
        return d["status"].get("observedGeneration") == d["metadata"]["generation"] and \
            cond.get("reason")

    assert eventually(progressing_reason, timeout=TIMEOUT, message="paused condition",
                      logs=cluster) == "DeploymentPaused"

    def scaled_while_paused():
        # The template changed but no ReplicaSet has it yet: 0 updated replicas.
        status = rest.get(DEPLOYMENTS, ns, "web")["status"]
        pods = live_pods(rest, ns)
        return (status.get("replicas") == status.get("availableReplicas") == 4
                and not status.get("updatedReplicas") and len(pods) == 4
                and all(podutil.is_ready(p) for p in pods))

    eventually(scaled_while_paused, timeout=TIMEOUT, message="scaled to 4 while paused",
               logs=cluster)
    assert len(replica_sets(rest, ns)) == 1             # no rollout while paused
    server.steer("rollout", "resume", "deployment/web", "-n", ns)
    server.steer("rollout", "status", "deployment/web", "-n", ns, "--timeout", "60")
    eventually(lambda: settled(rest, ns, "web", 4, image="busybox:2"), timeout=TIMEOUT,
               message="rolled out after resume", logs=cluster)
    assert len(replica_sets(rest, ns)) == 2


def test_a_rollout_without_progress_exceeds_its_deadline(rest, server, cluster):
    ns = create_namespace(rest, "deadline")
    d = make_deployment(rest, ns, "stuck", 2)
    d["spec"]["progressDeadlineSeconds"] = 2
    # No node has this label: the pods stay Pending and the rollout cannot progress.
    d["spec"]["template"]["spec"]["nodeSelector"] = {"example.com/none": "true"}
    rest.update(DEPLOYMENTS, ns, d)

    def progressing():
        status = rest.get(DEPLOYMENTS, ns, "stuck").get("status") or {}
        return next((c for c in status.get("conditions") or ()
                     if c["type"] == "Progressing"), {})

    cond = eventually(lambda: progressing().get("reason") == "ProgressDeadlineExceeded"
                      and progressing(), timeout=TIMEOUT, message="deadline exceeded",
                      logs=cluster)
    assert cond["status"] == "False"
    assert "has timed out progressing" in cond["message"]
    result = server.steer("rollout", "status", "deployment/stuck", "-n", ns,
                          "--timeout", "30", check=False)
    assert result.returncode != 0
    assert "exceeded its progress deadline" in result.stderr
