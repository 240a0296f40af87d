"""PV controller: matching, binding both ways, provisioning, protection and reclaim."""

import pytest

from agent import volumes
from cli import local_storage
from control.controllers.persistentvolume import binder, localpath
from control.controllers.persistentvolume.controller import PersistentVolumeController
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest


def claim(name="data", size="1Gi", cls="local-path", modes=("ReadWriteOnce",), volume=None,
          selector=None, annotations=None, finalizers=(binder.PVC_PROTECTION,), phase="Pending",
          deleting=False):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    if selector:
        spec["selector"] = selector
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "5",
            "annotations": dict(annotations or {}), "finalizers": list(finalizers)}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec,
            "status": {"phase": phase}}


def volume(name, size="1Gi", cls="local-path", modes=("ReadWriteOnce",), ref=None, phase=None,
           labels=None, policy="Delete", local=False, deleting=False):
    spec = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
            "persistentVolumeReclaimPolicy": policy, "hostPath": {"path": f"/srv/{name}"}}
    meta = {"name": name, "resourceVersion": "3", "labels": labels or {},
            "finalizers": [binder.PV_PROTECTION], "annotations": {}}
    if ref is not None:
        spec["claimRef"] = ref
    if local:
        meta["annotations"][binder.PROVISIONED_BY] = localpath.PROVISIONER
        spec["hostPath"] = {"path": f"/var/lib/steersman/storage/{name}_default_data",
                            "type": "DirectoryOrCreate"}
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": spec,
            "status": {"phase": phase} if phase else {}}


def storage_class(name="local-path", mode="WaitForFirstConsumer", default=True,
                  provisioner=localpath.PROVISIONER):
    sc = localpath.default_storage_class()
    sc["metadata"] = {"name": name, "annotations": {binder.DEFAULT_CLASS: "true"} if default
                      else {}, "creationTimestamp": "2026-01-01T00:00:00Z"}
    sc.update(volumeBindingMode=mode, provisioner=provisioner)
    return sc


def node(name, ready=True, root=None):
    meta = {"name": name, "annotations": {localpath.ROOT_ANNOTATION: root} if root else {}}
    return {"kind": "Node", "metadata": meta,
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, kind, reason, message):
        self.events.append((kind, reason, message))


class Harness:
    def __init__(self, claims=(), volumes=(), classes=(), pods=(), nodes=()):
        self.rest = FakeRest()
        self.recorder = Recorder()
        self.claim_inf, self.volume_inf = FakeInformer(claims), FakeInformer(volumes)
        self.pod_inf = FakeInformer(pods)
        self.ctl = PersistentVolumeController(
            self.rest, self.claim_inf, self.volume_inf, FakeInformer(classes), self.pod_inf,
            FakeInformer(nodes), recorder=self.recorder)

    def sync(self, key):
        self.rest.actions.clear()
        self.ctl.sync(key)
        return self.rest.actions

    def patches(self, key):
        return [(a[1], a[4]) for a in self.sync(key) if a[0] == "patch"]


# -- matching (pure) ---------------------------------------------------------------------
def test_smallest_volume_that_fits_wins():
    volumes = [volume("big", "10Gi"), volume("small", "2Gi"), volume("tiny", "500Mi")]
    assert binder.find_best_match(claim(size="1Gi"), volumes)["metadata"]["name"] == "small"


@pytest.mark.parametrize("candidate, reason", [
    (volume("v", cls="other"), "storage class differs"),
    (volume("v", modes=("ReadOnlyMany",)), "access modes do not include the claim's"),
    (volume("v", size="100Mi"), "capacity too small"),
    (volume("v", ref={"namespace": "default", "name": "someone", "uid": "x"}),
     "pre-bound to another claim"),
])
def test_mismatches_say_why(candidate, reason):
    assert binder.mismatch(candidate, claim()) == reason
    assert binder.find_best_match(claim(), [candidate]) is None


def test_selector_and_prebinding_decide():
    wanted = claim(selector={"matchLabels": {"tier": "db"}})
    volumes = [volume("a", labels={"tier": "web"}), volume("b", "5Gi", labels={"tier": "db"})]
    assert binder.find_best_match(wanted, volumes)["metadata"]["name"] == "b"
    prebound = volume("p", "9Gi", ref={"namespace": "default", "name": "data"})
    assert binder.find_best_match(claim(), [volume("s"), prebound])["metadata"]["name"] == "p"


def test_released_or_deleting_volumes_are_not_offered():
    assert binder.find_best_match(claim(), [volume("r", phase="Released"),
                                            volume("d", deleting=True)]) is None


def test_the_newest_default_class_is_the_default():
    old, new = storage_class("old"), storage_class("new")
    new["metadata"]["creationTimestamp"] = "2026-02-01T00:00:00Z"
    assert binder.default_class([old, new, storage_class("x", default=False)]) is new
    assert binder.default_class([storage_class("x", default=False)]) is None


# -- the controller ----------------------------------------------------------------------
def test_a_claim_without_class_gets_the_default_and_a_finalizer():
    h = Harness([claim(cls=None, finalizers=())], classes=[storage_class()])
    assert h.patches("claim:default/data")[0][1]["metadata"]["finalizers"] == [
        binder.PVC_PROTECTION]
    h.claim_inf.put(claim(cls=None))
    assert h.patches("claim:default/data") == [
        ("persistentvolumeclaims", {"spec": {"storageClassName": "local-path"}})]


def test_binding_writes_the_volume_then_the_claim():
    h = Harness([claim(cls="manual")], [volume("pv1", cls="manual", phase="Available")])
    patches = h.patches("claim:default/data")
    pv_patch = patches[0][1]
    assert pv_patch["spec"]["claimRef"]["uid"] == "uid-data"
    assert pv_patch["metadata"]["annotations"] == {binder.BOUND_BY_CONTROLLER: "yes"}
    assert patches[1] == ("persistentvolumes", {"status": {"phase": "Bound", "message": None}})
    claim_patch = patches[2][1]
    assert claim_patch["spec"] == {"volumeName": "pv1"}
    assert claim_patch["metadata"]["annotations"][binder.BIND_COMPLETED] == "yes"


def test_a_bound_pair_reports_bound_and_a_lost_volume_lost():
    ref = binder.claim_ref(claim())
    h = Harness([claim(volume="pv1")], [volume("pv1", ref=ref, phase="Bound")])
    status = h.patches("claim:default/data")[0][1]["status"]
    assert status["phase"] == "Bound" and status["capacity"] == {"storage": "1Gi"}
    h = Harness([claim(volume="gone", phase="Bound")])
    assert h.patches("claim:default/data")[0][1] == {"status": {"phase": "Lost"}}
    assert h.recorder.events[0][1] == "ClaimLost"


def test_wait_for_first_consumer_waits_for_the_selected_node():
    h = Harness([claim()], classes=[storage_class()], nodes=[node("n1")])
    h.sync("claim:default/data")
    assert not h.rest.of("create")
    assert h.recorder.events[-1][1] == "WaitForFirstConsumer"
    h.claim_inf.put(claim(annotations={binder.SELECTED_NODE: "n1"}))
    actions = h.sync("claim:default/data")
    created = [a[3] for a in actions if a[0] == "create"]
    assert created[0]["metadata"]["name"] == "pvc-uid-data"
    assert created[0]["spec"]["hostPath"] == {
        "path": "/var/lib/steersman/storage/pvc-uid-data_default_data",
        "type": "DirectoryOrCreate"}
    assert localpath.volume_node(created[0]) == "n1"
    assert created[0]["spec"]["claimRef"]["uid"] == "uid-data"
    annotations = [a[4] for a in actions if a[0] == "patch"][0]["metadata"]["annotations"]
    assert annotations[binder.STORAGE_PROVISIONER] == localpath.PROVISIONER


def test_immediate_provisions_on_the_ready_node_with_fewest_volumes_under_its_root():
    busy = volume("other", local=True, phase="Bound",
                  ref={"namespace": "default", "name": "x", "uid": "x"})
    h = Harness([claim()], [busy], classes=[storage_class(mode="Immediate")],
                nodes=[node("n1"), node("n2", root="/data/n2"), node("n3", ready=False)])
    created = [a[3] for a in h.sync("claim:default/data") if a[0] == "create"]
    assert localpath.volume_node(created[0]) == "n2"
    assert created[0]["spec"]["hostPath"]["path"].startswith("/data/n2/pvc-uid-data_")


def test_a_claim_in_use_keeps_its_finalizer_until_the_pod_is_gone():
    user = {"kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]},
            "status": {"phase": "Running"}}
    h = Harness([claim(deleting=True)], pods=[user])
    assert h.patches("claim:default/data") == []
    h.pod_inf.remove(user)
    assert h.patches("claim:default/data")[0][1]["metadata"]["finalizers"] == []


def test_a_volume_whose_claim_is_gone_is_released_and_retain_keeps_it():
    ref = {"namespace": "default", "name": "data", "uid": "uid-data"}
    h = Harness(volumes=[volume("pv1", ref=ref, phase="Bound", policy="Retain")])
    assert h.patches("volume:pv1") == [
        ("persistentvolumes", {"status": {"phase": "Released", "message": None}})]
    h.volume_inf.put(volume("pv1", ref=ref, phase="Released", policy="Retain"))
    assert h.sync("volume:pv1") == []


def test_delete_runs_the_helper_pod_then_deletes_the_volume():
    ref = {"namespace": "default", "name": "data", "uid": "uid-data"}
    released = volume("pvc-uid-data", ref=ref, phase="Released", local=True)
    h = Harness(volumes=[released])
    pod = [a[3] for a in h.sync("volume:pvc-uid-data") if a[0] == "create"][0]
    assert pod["metadata"]["namespace"] == "kube-system" and pod["spec"]["nodeName"] == "n1"
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/var/lib/steersman/storage"
    assert pod["spec"]["containers"][0]["command"][-1] == \
        'rm -rf -- "${STEER_ROOT:-}/storage-root/pvc-uid-data_default_data"'
    h.pod_inf.put({**pod, "status": {"phase": "Running"}})
    assert h.sync("volume:pvc-uid-data") == []
    h.pod_inf.put({**pod, "status": {"phase": "Succeeded"}})
    deletes = [(a[1], a[3]) for a in h.sync("volume:pvc-uid-data") if a[0] == "delete"]
    assert deletes == [("persistentvolumes", "pvc-uid-data"),
                       ("pods", "helper-pod-delete-pvc-uid-data")]


def test_delete_of_a_volume_no_provisioner_owns_fails():
    ref = {"namespace": "default", "name": "data", "uid": "uid-data"}
    h = Harness(volumes=[volume("pv1", ref=ref, phase="Released")])
    status = h.patches("volume:pv1")[0][1]["status"]
    assert status["phase"] == "Failed" and "no deletable volume plugin" in status["message"]


def test_a_hostile_path_gets_no_helper_pod():
    bad = volume("pvc-x", local=True)
    bad["spec"]["hostPath"]["path"] = "/var/lib/steersman/storage/../../etc"
    assert localpath.helper_pod(bad) is None
    bad["spec"]["hostPath"]["path"] = "/etc"
    assert localpath.helper_pod(bad) is None
    assert localpath.node_root(node("n", root="/a/../b")) == localpath.DEFAULT_ROOT
    elsewhere = volume("pvc-x", local=True)
    elsewhere["spec"]["hostPath"]["path"] = "/etc/pvc-x_default_data"
    assert localpath.helper_pod(elsewhere, root="/var/lib/steersman/storage") is None
    ref = {"namespace": "default", "name": "data", "uid": "uid-data"}
    elsewhere.update(status={"phase": "Released"})
    elsewhere["spec"]["claimRef"] = ref
    h = Harness(volumes=[elsewhere], nodes=[node("n1")])
    status = h.patches("volume:pvc-x")[0][1]["status"]
    assert status["phase"] == "Failed" and "not a volume directory" in status["message"]
    assert not h.rest.of("create")


def test_pv_protection_lets_an_unbound_deleted_volume_go_but_not_a_bound_one():
    h = Harness(volumes=[volume("pv1", phase="Bound", deleting=True)])
    assert h.patches("volume:pv1") == []
    h.volume_inf.put(volume("pv1", phase="Available", deleting=True))
    assert h.patches("volume:pv1")[0][1]["metadata"]["finalizers"] == []


def test_a_selected_node_that_is_gone_is_dropped_for_the_scheduler_to_choose_again():
    h = Harness([claim(annotations={binder.SELECTED_NODE: "gone"})], classes=[storage_class()])
    (patch,) = h.patches("claim:default/data")
    assert patch[1] == {"metadata": {"annotations": {binder.SELECTED_NODE: None}}}
    assert not h.rest.of("create")


def test_steer_up_creates_the_class_the_provisioner_serves():
    assert local_storage.storage_class() == localpath.default_storage_class()
    assert local_storage.PROVISIONER == localpath.PROVISIONER
    assert (volumes.STORAGE_ROOT_ANNOTATION, volumes.STORAGE_ROOT) == (
        localpath.ROOT_ANNOTATION, localpath.DEFAULT_ROOT)


def test_a_claim_naming_a_volume_pre_bound_to_it_completes_the_binding():
    prebound = volume("pv1", cls="manual", ref={"namespace": "default", "name": "data"},
                      phase="Available")
    h = Harness([claim(cls="manual", volume="pv1")], [prebound])
    patches = h.patches("claim:default/data")
    assert patches[0][1]["spec"]["claimRef"]["uid"] == "uid-data"
    assert patches[-1][1]["metadata"]["annotations"][binder.BIND_COMPLETED] == "yes"
    taken = volume("pv1", cls="manual", ref={"namespace": "default", "name": "x", "uid": "x"},
                   phase="Bound")
    h = Harness([claim(cls="manual", volume="pv1")], [taken])
    assert h.patches("claim:default/data") == []           # stays Pending


def test_a_class_of_another_provisioner_waits_for_it():
    other = storage_class("ebs", mode="Immediate", provisioner="ebs.csi.aws.com")
    h = Harness([claim(cls="ebs")], classes=[other], nodes=[node("n1")])
    patches = h.patches("claim:default/data")
    assert patches == [("persistentvolumeclaims", {"metadata": {"annotations": {
        binder.STORAGE_PROVISIONER: "ebs.csi.aws.com",
        binder.BETA_STORAGE_PROVISIONER: "ebs.csi.aws.com"}}})]
    assert h.recorder.events[-1][1] == "ExternalProvisioning"
    assert not h.rest.of("create")
    h = Harness([claim(cls="missing")])
    h.sync("claim:default/data")
    assert h.recorder.events[-1][1:] == (
        "ProvisioningFailed", 'storageclass.storage.k8s.io "missing" not found')
