"""VolumeBinding: bound volumes pin pods, Immediate claims must be bound, WFFC waits."""

import pytest

from control.client import object_key
from control.scheduler import volumebinding as vb
from control.scheduler.loop import Scheduler
from control.scheduler.placement import schedule
from tests.unit.control.scheduler.test_loop import FakeRest, put
from tests.unit.control.scheduler.test_placement import node, pod, snap


def claim(name="data", volume=None, cls="local-path", selected=None, deleting=False):
    meta = {"name": name, "namespace": "default", "annotations": {}}
    if selected:
        meta["annotations"][vb.SELECTED_NODE] = selected
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec = {"storageClassName": cls}
    if volume:
        spec["volumeName"] = volume
    return {"kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def local_volume(name, node_name):
    return {"kind": "PersistentVolume", "metadata": {"name": name}, "spec": {
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}}}}


CLASSES = {"local-path": {"metadata": {"name": "local-path"},
                          "volumeBindingMode": "WaitForFirstConsumer"},
           "fast": {"metadata": {"name": "fast"}, "volumeBindingMode": "Immediate"}}


def user(*claims):
    return pod("db", volumes=[{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                              for i, c in enumerate(claims)])


def facts(pod_obj, claims=(), volumes=()):
    by_claim = {c["metadata"]["name"]: c for c in claims}
    by_volume = {v["metadata"]["name"]: v for v in volumes}
    return vb.volume_facts(pod_obj, lambda ns, name: by_claim.get(name), by_volume.get,
                           CLASSES.get)


def hostname(name):
    return node(name, labels={"kubernetes.io/hostname": name})


def test_a_pod_whose_claim_is_bound_to_a_local_volume_fits_only_its_node():
    f = facts(user("data"), [claim(volume="pv1")], [local_volume("pv1", "b")])
    placement = schedule(snap(hostname("a"), hostname("b"), hostname("c")), user("data"),
                         volumes=f)
    assert placement.node_name == "b"
    assert placement.reasons["a"] == (vb.NODE_CONFLICT,)


@pytest.mark.parametrize("claims, volumes, message", [
    ([claim(cls="fast")], [], "0/2 nodes are available: 2 pod has unbound immediate "
                              "PersistentVolumeClaims."),
    ([], [], '0/2 nodes are available: 2 persistentvolumeclaim "data" not found.'),
    ([claim(deleting=True)], [], '0/2 nodes are available: 2 persistentvolumeclaim "data" is '
                                 "being deleted."),
    ([claim(volume="gone")], [], f"0/2 nodes are available: 2 {vb.PV_MISSING}."),
])
def test_claims_no_node_can_serve_say_why_as_kubernetes(claims, volumes, message):
    placement = schedule(snap(hostname("a"), hostname("b")), user("data"),
                         volumes=facts(user("data"), claims, volumes))
    assert not placement.scheduled and placement.message == message


def test_an_unbound_wait_for_first_consumer_claim_is_pending_and_keeps_its_node():
    f = facts(user("data"), [claim()])
    assert f.pending == (("default", "data", None),) and f.problem is None
    chosen = facts(user("data"), [claim(selected="b")])
    assert schedule(snap(hostname("a"), hostname("b")), user("data"),
                    volumes=chosen).node_name == "b"


def test_pods_without_claims_have_no_volume_facts():
    assert facts(pod("plain")) is vb.NO_VOLUMES


def test_the_loop_selects_the_node_on_the_claim_and_binds_only_once_it_is_bound():
    sched = Scheduler(FakeRest(), backoff=(0.001, 0.01))
    try:
        put(sched.nodes, hostname("a"))
        put(sched.classes, CLASSES["local-path"])
        put(sched.claims, claim())
        put(sched.pods, user("data"))
        sched.schedule_keys(["default/db"])
        assert sched.rest.bindings == []
        assert sched.rest.patches == [("data", {"metadata": {"annotations": {
            vb.SELECTED_NODE: "a"}}})]
        assert "default/db" in sched._unschedulable
        put(sched.claims, claim(volume="pv1", selected="a"))
        put(sched.volumes, local_volume("pv1", "a"))
        sched.schedule_keys([object_key(user("data"))])
        assert sched.rest.bindings == [("default", "db", "a")]
    finally:
        sched._pool.shutdown()
