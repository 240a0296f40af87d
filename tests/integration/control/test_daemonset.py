"""The DaemonSet controller with a real store, API server, scheduler and hollow nodes."""

import threading

import pytest

from control.client import Informer
from control.controllers import pods as podutil
from control.objects import kinds
from control.objects.kinds import DAEMONSETS, NAMESPACES, NODES, PODS
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane
from tests.support.hollow_nodes import HollowNodes

REVISIONS = kinds.CONTROLLERREVISIONS


#: Pods get a 2 s unreachable toleration by default.
SERVER_ARGS = ["--default-unreachable-toleration-seconds", "2"]


@pytest.fixture(scope="module")
def cluster(server, rest, tmp_path_factory):
    """3 hollow nodes labelled role=worker, a scheduler, the daemonset controller and the
    node controllers (a node silent for 4 s is tainted unreachable)."""
    with ControlPlane(server, tmp_path_factory.mktemp("ds"),
                      "daemonset,nodelifecycle,taint-eviction-controller",
                      manager_args=["--node-monitor-grace-period", "4s",
                                    "--node-monitor-period", "1s"],
                      nodes=["n1", "n2", "n3"], labels={"role": "worker"},
                      renew_interval=0.5) as plane:
        yield rest, plane.nodes, lambda: plane.logs() + server.logs()


def make_ds(rest, ns, name, image="busybox:1"):
    rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": ns}})
    return rest.create(DAEMONSETS, ns, {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"nodeSelector": {"role": "worker"},
                                       "containers": [{"name": "c", "image": image}]}}}})


def bound(rest, ns):
    """{node: [(pod name, image)]} of live pods bound to a node."""
    out = {}
    for pod in rest.list(PODS, ns)["items"]:
        node = pod["spec"].get("nodeName")
        if node and not pod["metadata"].get("deletionTimestamp"):
            out.setdefault(node, []).append((pod["metadata"]["name"],
                                             pod["spec"]["containers"][0]["image"]))
    return out


def one_each(rest, ns, node_names, image=None):
    got = bound(rest, ns)
    if set(got) != set(node_names) or any(len(v) != 1 for v in got.values()):
        return False
    return image is None or all(v[0][1] == image for v in got.values())


def status_is(rest, ns, name, **want):
    status = rest.get(DAEMONSETS, ns, name).get("status") or {}
    return all(status.get(k, 0) == v for k, v in want.items())


def test_one_pod_per_node_follows_nodes_and_rolls_an_update(cluster, server):
    rest, nodes, logs = cluster
    ns = "ds-follow"
    make_ds(rest, ns, "agent")
    eventually(lambda: one_each(rest, ns, ["n1", "n2", "n3"]), timeout=60,
               message="one bound pod on each of 3 nodes", logs=logs)
    pod = rest.list(PODS, ns)["items"][0]
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                       "values": [pod["spec"]["nodeName"]]}]}]
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute"} in pod["spec"]["tolerations"]
    eventually(lambda: status_is(rest, ns, "agent", desiredNumberScheduled=3,
                                 currentNumberScheduled=3, numberReady=3, numberAvailable=3,
                                 updatedNumberScheduled=3, numberMisscheduled=0),
               timeout=60, message="status 3/3", logs=logs)

    # A fourth node joins: it gets a pod.
    extra = HollowNodes(server.url, ["n4"], labels={"role": "worker"}, renew_interval=1.0,
                        client_kwargs=server.client_kwargs)
    extra.start()
    try:
        eventually(lambda: one_each(rest, ns, ["n1", "n2", "n3", "n4"]), timeout=60,
                   message="a pod on the new node n4", logs=logs)

        # n2 is relabelled out of the nodeSelector: its pod goes, the others stay.
        rest.patch(NODES, None, "n2", {"metadata": {"labels": {"role": "spare"}}})
        eventually(lambda: one_each(rest, ns, ["n1", "n3", "n4"]), timeout=60,
                   message="n2's pod deleted", logs=logs)

        # A new image rolls through every node, one at a time (maxUnavailable 1):
        # watch the pods and record, at every change, how many nodes lack a Ready pod.
        watcher = Informer(rest, PODS, namespace=ns)
        lock, worst = threading.Lock(), []

        def record(*_):
            with lock:
                ready_nodes = {p["spec"].get("nodeName") for p in watcher.store.list()
                               if podutil.is_ready(p) and
                               not p["metadata"].get("deletionTimestamp")}
                worst.append(len({"n1", "n3", "n4"} - ready_nodes))
        watcher.add_handler(record, record, record)
        watcher.start()
        watcher.wait_for_sync(30)
        try:
            rest.patch(DAEMONSETS, ns, "agent", {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "busybox:2"}]}}}})
            eventually(lambda: one_each(rest, ns, ["n1", "n3", "n4"], image="busybox:2"),
                       timeout=60, message="every node runs busybox:2", logs=logs)
        finally:
            watcher.stop()
        assert max(worst) == 1, worst       # never two nodes down at once
        eventually(lambda: status_is(rest, ns, "agent", desiredNumberScheduled=3,
                                     updatedNumberScheduled=3, numberAvailable=3),
                   timeout=60, message="status updated 3/3", logs=logs)
    finally:
        rest.patch(NODES, None, "n2", {"metadata": {"labels": {"role": "worker"}}})
        extra.stop()
        rest.delete(NODES, None, "n4")


@pytest.mark.kubectl
def test_rollout_history_and_undo_with_kubectl(cluster, server):
    rest, nodes, logs = cluster
    ns = "ds-history"
    make_ds(rest, ns, "logs")
    eventually(lambda: len(rest.list(REVISIONS, ns)["items"]) == 1, timeout=60,
               message="the first revision", logs=logs)
    rest.patch(DAEMONSETS, ns, "logs", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})
    eventually(lambda: len(rest.list(REVISIONS, ns)["items"]) == 2, timeout=60,
               message="a second revision", logs=logs)
    out = server.kubectl("-n", ns, "rollout", "history", "daemonset/logs").stdout
    assert "REVISION" in out and "1" in out and "2" in out, out
    detail = server.kubectl("-n", ns, "rollout", "history", "daemonset/logs",
                            "--revision=1").stdout
    assert "busybox:1" in detail, detail
    table = server.kubectl("-n", ns, "get", "controllerrevisions").stdout
    assert "daemonset.apps/logs" in table, table

    server.kubectl("-n", ns, "rollout", "undo", "daemonset/logs")
    image = rest.get(DAEMONSETS, ns, "logs")["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "busybox:1"

    def renumbered():
        revisions = {r["revision"]: r for r in rest.list(REVISIONS, ns)["items"]}
        return sorted(revisions) == [2, 3] and \
            "busybox:1" in str(revisions[3]["data"])
    eventually(renumbered, timeout=60, message="revision 1 renumbered 3", logs=logs)


def taints(rest, name):
    return {t["key"] for t in (rest.get(NODES, None, name).get("spec") or {}).get("taints") or ()}


def test_daemon_pods_stay_on_a_dead_node(cluster, server):
    rest, nodes, logs = cluster
    ns = "ds-dead"
    make_ds(rest, ns, "keeper")

    def daemon_pod_on_n3():
        pods = [p for p in rest.list(PODS, ns, label_selector="app=keeper")["items"]
                if p["spec"].get("nodeName") == "n3"]
        return pods[0] if len(pods) == 1 and podutil.is_ready(pods[0]) else None
    daemon = eventually(daemon_pod_on_n3, timeout=60, message="a daemon pod on n3", logs=logs)
    # A witness: an ordinary pod on n3, which tolerates unreachable for 2 s only.
    rest.create(PODS, ns, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "witness"},
                           "spec": {"nodeName": "n3",
                                    "containers": [{"name": "c", "image": "busybox"}]}})
    eventually(lambda: podutil.is_ready(rest.get(PODS, ns, "witness")), timeout=60,
               message="the witness runs", logs=logs)
    nodes.stop_node("n3")
    try:
        eventually(lambda: "node.kubernetes.io/unreachable" in taints(rest, "n3"), timeout=60,
                   message="n3 tainted unreachable", logs=logs)
        eventually(lambda: rest.get(PODS, ns, "witness")["metadata"].get("deletionTimestamp"),
                   timeout=60, message="the witness evicted", logs=logs)
        # The daemon pod tolerates unreachable for ever, and the DaemonSet keeps it.
        still = rest.get(PODS, ns, daemon["metadata"]["name"])
        assert still["metadata"]["uid"] == daemon["metadata"]["uid"]
        assert not still["metadata"].get("deletionTimestamp")
    finally:
        nodes.start_node("n3")
        eventually(lambda: "node.kubernetes.io/unreachable" not in taints(rest, "n3"),
                   timeout=60, message="n3 untainted", logs=logs)
