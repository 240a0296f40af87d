"""Endpoints, namespace deletion, garbage collection and pod GC with real processes.

One store + API server (the module's ``server``), one controller manager running
replicaset,endpoint,namespace,garbagecollector,podgc, one scheduler and two
hollow nodes serve every test; each test works in its own namespace.
"""

import os
import subprocess

import pytest

from control.client import Forbidden, NotFound
from control.objects.kinds import (
    CONFIGMAPS,
    ENDPOINTS,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SERVICES,
)
from tests.support.apiproc import ROOT, eventually
from tests.support.controlplane import ControlPlane, create_namespace

CONTROLLERS = "replicaset,endpoint,namespace,garbagecollector,podgc"


@pytest.fixture(scope="module")
def cluster(server, rest, tmp_path_factory):
    """The manager, a scheduler and hollow nodes n1, n2; yields (rest, nodes, logs)."""
    with ControlPlane(server, tmp_path_factory.mktemp("cleanup"), CONTROLLERS,
                      manager_args=["--podgc-check-period", "1", "--podgc-quarantine", "1"],
                      nodes=["n1", "n2"], renew_interval=1.0) as plane:
        yield rest, plane.nodes, plane.logs


def make_rs(rest, ns, name, replicas=2, finalizers=()):
    template_meta = {"labels": {"app": name}}
    if finalizers:
        template_meta["finalizers"] = list(finalizers)
    return rest.create(REPLICASETS, ns, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": template_meta,
                              "spec": {"containers": [{
                                  "name": "c", "image": "nginx",
                                  "ports": [{"name": "http", "containerPort": 8080}]}]}}}})


def live_pods(rest, ns):
    return rest.list(PODS, ns)["items"]


def running_pods(rest, ns, count):
    """Wait until ``count`` pods of ``ns`` run with an IP; return them."""
    def check():
        pods = [p for p in live_pods(rest, ns) if (p.get("status") or {}).get("podIP")
                and not p["metadata"].get("deletionTimestamp")]
        return pods if len(pods) == count else None
    return check


def gone(rest, resource, ns, name):
    def check():
        try:
            rest.get(resource, ns, name)
        except NotFound:
            return True
        return False
    return check


def test_endpoints_list_ready_pods_and_move_unready_ones(cluster):
    rest, nodes, logs = cluster
    ns = create_namespace(rest, "ep")
    make_rs(rest, ns, "web", replicas=2)
    rest.create(SERVICES, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                               "spec": {"selector": {"app": "web"}, "ports": [
                                   {"name": "web", "port": 80, "targetPort": "http"}]}})
    pods = eventually(running_pods(rest, ns, 2), timeout=60, message="2 running pods",
                      logs=logs)
    ips = sorted(p["status"]["podIP"] for p in pods)

    def endpoints_with(ready, not_ready):
        def check():
            try:
                ep = rest.get(ENDPOINTS, ns, "web")
            except NotFound:
                return None
            subsets = ep.get("subsets") or []
            got_ready = sorted(a["ip"] for s in subsets for a in s.get("addresses") or ())
            got_not = sorted(a["ip"] for s in subsets for a in s.get("notReadyAddresses") or ())
            return ep if (got_ready, got_not) == (ready, not_ready) else None
        return check

    ep = eventually(endpoints_with(ips, []), timeout=60, message="both pods ready", logs=logs)
    assert ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"] == "endpoint-controller"
    (subset,) = ep["subsets"]
    assert subset["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    assert {a["targetRef"]["name"] for a in subset["addresses"]} == \
        {p["metadata"]["name"] for p in pods}

    unready = min(pods, key=lambda p: p["status"]["podIP"])
    nodes.set_ready(ns, unready["metadata"]["name"], False)
    ep = eventually(endpoints_with(ips[1:], ips[:1]), timeout=60, message="one pod not ready",
                    logs=logs)
    # The write that a Ready change caused says when that change happened.
    ready = next(c for c in rest.get(PODS, ns, unready["metadata"]["name"])["status"]
                 ["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] \
        == ready["lastTransitionTime"]
    nodes.set_ready(ns, unready["metadata"]["name"], True)
    eventually(endpoints_with(ips, []), timeout=60, message="ready again", logs=logs)

    rest.delete(SERVICES, ns, "web")
    eventually(gone(rest, ENDPOINTS, ns, "web"), timeout=60, message="endpoints deleted",
               logs=logs)


def test_deleting_a_namespace_removes_its_content_then_itself(cluster, server):
    rest, _, logs = cluster
    ns = create_namespace(rest, "doomed")
    make_rs(rest, ns, "app", replicas=2)
    # A finalizer of ours holds one object, so the namespace's progress can be seen.
    rest.create(CONFIGMAPS, ns, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    rest.create(CONFIGMAPS, ns, {"apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "settings"}, "data": {"a": "b"}})
    rest.create(SERVICES, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"},
                               "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}})
    eventually(running_pods(rest, ns, 2), timeout=60, message="2 running pods", logs=logs)
    eventually(lambda: rest.list(ENDPOINTS, ns)["items"], timeout=60, message="endpoints",
               logs=logs)

    deleter = subprocess.Popen(server.steer_argv("delete", "namespace", ns, "--timeout", "60"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        def held_by_finalizer():
            conditions = {c["type"]: c for c in
                          rest.get(NAMESPACES, None, ns)["status"].get("conditions") or ()}
            remaining = conditions.get("NamespaceFinalizersRemaining", {})
            return conditions if remaining.get("status") == "True" else None
        conditions = eventually(held_by_finalizer, timeout=60, message="finalizers remaining",
                                logs=logs)
        assert conditions["NamespaceFinalizersRemaining"]["message"] == (
            "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
            "resource instances")
        assert conditions["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
        assert rest.get(NAMESPACES, None, ns)["status"]["phase"] == "Terminating"
        with pytest.raises(Forbidden):
            rest.create(CONFIGMAPS, ns, {"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "late"}})
        eventually(lambda: [c["metadata"]["name"] for c in rest.list(CONFIGMAPS, ns)["items"]]
                   == ["held"] and not live_pods(rest, ns), timeout=60,
                   message="everything else deleted", logs=logs)
        rest.patch(CONFIGMAPS, ns, "held", {"metadata": {"finalizers": None}})
        out, err = deleter.communicate(timeout=90)
    finally:
        if deleter.poll() is None:
            deleter.kill()
            deleter.wait()
    assert deleter.returncode == 0, err
    assert 'namespace "doomed" deleted' in out
    missing = server.steer("get", "ns", ns, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    for resource in (PODS, REPLICASETS, CONFIGMAPS, SERVICES, ENDPOINTS):
        assert rest.list(resource, ns)["items"] == []


def test_background_deletion_removes_the_pods(cluster, server):
    rest, _, logs = cluster
    ns = create_namespace(rest, "bg")
    make_rs(rest, ns, "app", replicas=2)
    eventually(running_pods(rest, ns, 2), timeout=60, message="2 running pods", logs=logs)
    server.steer("delete", "rs", "app", "-n", ns)
    eventually(lambda: live_pods(rest, ns) == [], timeout=60, message="pods collected",
               logs=logs)


def test_foreground_deletion_waits_for_the_pods(cluster, server):
    rest, _, logs = cluster
    ns = create_namespace(rest, "fg")
    # The pods hold a finalizer of ours, so the test decides when they are gone.
    make_rs(rest, ns, "app", replicas=2, finalizers=["example.com/hold"])
    eventually(running_pods(rest, ns, 2), timeout=60, message="2 running pods", logs=logs)
    server.steer("delete", "rs", "app", "-n", ns, "--cascade=foreground", "--wait=false")
    eventually(lambda: all(p["metadata"].get("deletionTimestamp") for p in live_pods(rest, ns)),
               timeout=60, message="the collector deletes the pods", logs=logs)
    rs = rest.get(REPLICASETS, ns, "app")
    assert rs["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in rs["metadata"]["finalizers"]

    for pod in live_pods(rest, ns):
        rest.patch(PODS, ns, pod["metadata"]["name"], {"metadata": {"finalizers": None}})
    eventually(gone(rest, REPLICASETS, ns, "app"), timeout=60,
               message="the ReplicaSet goes once its pods are gone", logs=logs)
    assert live_pods(rest, ns) == []


def test_orphan_deletion_keeps_the_pods_without_owner(cluster, server):
    rest, _, logs = cluster
    ns = create_namespace(rest, "orphans")
    make_rs(rest, ns, "app", replicas=2)
    pods = eventually(running_pods(rest, ns, 2), timeout=60, message="2 running pods",
                      logs=logs)
    server.steer("delete", "rs", "app", "-n", ns, "--cascade=orphan")
    eventually(gone(rest, REPLICASETS, ns, "app"), timeout=60, message="the ReplicaSet goes",
               logs=logs)
    left = live_pods(rest, ns)
    assert sorted(p["metadata"]["uid"] for p in left) == \
        sorted(p["metadata"]["uid"] for p in pods)
    assert all(not p["metadata"].get("ownerReferences") for p in left)
    assert all(not p["metadata"].get("deletionTimestamp") for p in left)


def test_pod_of_a_deleted_node_is_force_deleted(cluster):
    rest, _, logs = cluster
    ns = create_namespace(rest, "ghosts")
    rest.create(NODES, None, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ghost"}})
    rest.create(PODS, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stranded"},
                           "spec": {"nodeName": "ghost",
                                    "containers": [{"name": "c", "image": "nginx"}]}})
    rest.delete(NODES, None, "ghost")
    eventually(gone(rest, PODS, ns, "stranded"), timeout=60, message="pod force-deleted",
               logs=logs)
