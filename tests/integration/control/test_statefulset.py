"""The StatefulSet controller with a real store, API server, scheduler and hollow nodes."""

import json
import threading

import pytest

from control.client import Informer
from control.controllers import pods as podutil
from control.objects import kinds
from control.objects.kinds import NAMESPACES, PODS, STATEFULSETS
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane

REVISIONS = kinds.CONTROLLERREVISIONS


@pytest.fixture(scope="module")
def cluster(server, rest, tmp_path_factory):
    """3 hollow nodes (pods Ready 0.3 s after they run), a scheduler, the controller."""
    with ControlPlane(server, tmp_path_factory.mktemp("sts"), "statefulset",
                      nodes=["n1", "n2", "n3"], ready_after=0.3, renew_interval=1.0) as plane:
        yield rest, lambda: plane.logs() + server.logs()


def make_sts(rest, ns, name, replicas, image="busybox:1"):
    rest.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": ns}})
    return rest.create(STATEFULSETS, ns, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"replicas": replicas, "serviceName": name,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image}]}}}})


class Recorder:
    """Watch a namespace's pods: the order of creations, and who was Ready at each."""

    def __init__(self, server, ns):
        self.rest = server.rest_client(timeout=10)
        self.informer = Informer(self.rest, PODS, namespace=ns)
        self.lock = threading.Lock()
        self.created = []          # (pod name, names of the pods Ready at that moment)
        self.ready = set()
        self.states = []           # the live pod names after every change, in watch order
        self.informer.add_handler(self._added, lambda old, new: self._updated(new),
                                  self._deleted)

    def _added(self, pod):
        with self.lock:
            self.created.append((pod["metadata"]["name"], frozenset(self.ready)))
        self._updated(pod)

    def _updated(self, pod):
        with self.lock:
            if podutil.is_ready(pod) and not pod["metadata"].get("deletionTimestamp"):
                self.ready.add(pod["metadata"]["name"])
            else:
                self.ready.discard(pod["metadata"]["name"])
            self._note_state()

    def _deleted(self, pod):
        with self.lock:
            self.ready.discard(pod["metadata"]["name"])
            self._note_state()

    def _note_state(self):
        # Handlers run after the cache is updated, so this is the state after the event.
        live = tuple(self.live())
        if not self.states or self.states[-1] != live:
            self.states.append(live)

    def live(self):
        return sorted(p["metadata"]["name"] for p in self.informer.store.list()
                      if not p["metadata"].get("deletionTimestamp"))

    def __enter__(self):
        self.informer.start()
        self.informer.wait_for_sync(30)
        return self

    def __exit__(self, *exc):
        self.informer.stop()
        self.rest.close()


def test_ordered_creation_recreation_and_scale_down(cluster, server):
    rest, logs = cluster
    ns = "sts-order"
    with Recorder(server, ns) as rec:
        make_sts(rest, ns, "web", 3)
        eventually(lambda: rec.ready >= {"web-0", "web-1", "web-2"}, timeout=60,
                   message="web-0..2 Ready", logs=logs)
        names = [name for name, _ in rec.created]
        assert names == ["web-0", "web-1", "web-2"]
        for k, (name, ready_then) in enumerate(rec.created):
            # web-k appeared only once web-0..web-(k-1) were all Ready.
            assert {f"web-{i}" for i in range(k)} <= ready_then, (name, ready_then)
        pod = rest.get(PODS, ns, "web-1")
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == "web-1"
        assert labels["apps.kubernetes.io/pod-index"] == "1"
        assert labels["controller-revision-hash"].startswith("web-")
        assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("web-1", "web")

        def settled():
            status = rest.get(STATEFULSETS, ns, "web").get("status") or {}
            return status.get("readyReplicas") == 3 and status.get("currentReplicas") == 3 \
                and status.get("currentRevision") == status.get("updateRevision") \
                == labels["controller-revision-hash"]
        eventually(settled, timeout=60, message="status 3 ready, current", logs=logs)

        # A deleted pod comes back under the same name.
        old_uid = pod["metadata"]["uid"]
        rest.delete(PODS, ns, "web-1")
        eventually(lambda: rest.get(PODS, ns, "web-1")["metadata"]["uid"] != old_uid
                   if "web-1" in rec.live() else False, timeout=60,
                   message="web-1 recreated", logs=logs)
        eventually(lambda: rec.ready >= {"web-0", "web-1", "web-2"}, timeout=60,
                   message="web-1 Ready again", logs=logs)

        # Scale down to 1: web-2 goes first, then web-1.
        before = len(rec.states)
        rest.patch(STATEFULSETS, ns, "web", {"spec": {"replicas": 1}})
        eventually(lambda: rec.live() == ["web-0"], timeout=60, message="only web-0 left",
                   logs=logs)
        with rec.lock:
            seen = rec.states[before - 1:]
        assert seen == [("web-0", "web-1", "web-2"), ("web-0", "web-1"), ("web-0",)], seen


def roll_to_busybox_2(rest, logs, ns):
    """A 2-replica StatefulSet ``db`` in ``ns``, rolled from busybox:1 to busybox:2."""
    make_sts(rest, ns, "db", 2)
    eventually(lambda: (rest.get(STATEFULSETS, ns, "db").get("status") or {})
               .get("readyReplicas") == 2, timeout=60, message="2 ready", logs=logs)
    rest.patch(STATEFULSETS, ns, "db", {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})

    def rolled():
        status = rest.get(STATEFULSETS, ns, "db").get("status") or {}
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
                  for p in rest.list(PODS, ns)["items"]}
        return images == {"db-0": "busybox:2", "db-1": "busybox:2"} and \
            status.get("updatedReplicas") == 2 and status.get("readyReplicas") == 2 and \
            status.get("currentRevision") == status.get("updateRevision")
    eventually(rolled, timeout=60, message="both pods on busybox:2", logs=logs)


def test_rolling_update_and_rollout_history(cluster, server):
    rest, logs = cluster
    ns = "sts-roll"
    roll_to_busybox_2(rest, logs, ns)
    out = server.steer("-n", ns, "rollout", "history", "statefulset/db").stdout
    assert "REVISION" in out and "2" in out, out
    # Revision 1's template is kept, in the ControllerRevision that `rollout undo` reads.
    first = [r for r in rest.list(REVISIONS, ns)["items"] if r.get("revision") == 1]
    assert len(first) == 1 and "busybox:1" in json.dumps(first[0]["data"]), first


@pytest.mark.kubectl
def test_kubectl_rollout_history_and_undo(cluster, server):
    rest, logs = cluster
    ns = "sts-undo"
    roll_to_busybox_2(rest, logs, ns)
    detail = server.kubectl("-n", ns, "rollout", "history", "statefulset/db",
                            "--revision=1").stdout
    assert "busybox:1" in detail, detail
    # kubectl rolls a StatefulSet back client-side, from its ControllerRevisions.
    server.kubectl("-n", ns, "rollout", "undo", "statefulset/db")
    eventually(lambda: {p["spec"]["containers"][0]["image"]
                        for p in rest.list(PODS, ns)["items"]} == {"busybox:1"} and
               len(rest.list(PODS, ns)["items"]) == 2, timeout=60,
               message="rolled back to busybox:1", logs=logs)
