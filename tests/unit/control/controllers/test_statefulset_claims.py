"""StatefulSet volumeClaimTemplates: claims before pods, pods use them, retention policy."""

from control.client import AlreadyExists
from control.controllers import statefulset_claims as claims
from tests.unit.control.controllers.test_statefulset import Harness, make_sts, pod


def with_templates(sts, when_deleted=None, when_scaled=None):
    sts["spec"]["volumeClaimTemplates"] = [{
        "metadata": {"name": "data", "labels": {"tier": "db"}},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}]
    policy = {k: v for k, v in (("whenDeleted", when_deleted), ("whenScaled", when_scaled)) if v}
    if policy:
        sts["spec"]["persistentVolumeClaimRetentionPolicy"] = policy
    return sts


def created(rest, plural):
    return [a[3] for a in rest.of("create") if a[1] == plural]


def test_the_claim_is_created_before_its_pod_which_uses_it():
    h = Harness(with_templates(make_sts(1)))
    rest = h.sync()
    order = [a[1] for a in rest.of("create")]
    assert order.index("persistentvolumeclaims") < order.index("pods")
    (claim,) = created(rest, "persistentvolumeclaims")
    assert claim["metadata"]["name"] == "data-web-0"
    assert claim["metadata"]["labels"] == {"tier": "db", "app": "web"}
    assert "ownerReferences" not in claim["metadata"]           # Retain: nobody owns it
    (made,) = created(rest, "pods")
    assert made["spec"]["volumes"] == [{"name": "data",
                                        "persistentVolumeClaim": {"claimName": "data-web-0"}}]
    assert ("Normal", "SuccessfulCreate", "create Claim data-web-0 Pod web-0 in StatefulSet "
            "web success") in h.recorder.events


def test_an_existing_claim_is_reused_and_a_failing_one_holds_the_pod_back():
    taken = Harness(with_templates(make_sts(1)),
                    fail={"create": lambda body: AlreadyExists(409, "AlreadyExists", "x")
                          if body["kind"] == "PersistentVolumeClaim" else None})
    assert [p["metadata"]["name"] for p in created(taken.sync(), "pods")] == ["web-0"]
    broken = Harness(with_templates(make_sts(1)),
                     fail={"create": lambda body: RuntimeError("quota")
                           if body["kind"] == "PersistentVolumeClaim" else None})
    try:
        broken.sync()
    except RuntimeError:
        pass
    assert created(broken.rest, "pods") == []
    assert any(e[1] == "FailedCreate" and "create Claim data-web-0" in e[2]
               for e in broken.recorder.events)


def test_when_deleted_delete_makes_the_set_own_its_claims():
    (claim,) = claims.new_claims(with_templates(make_sts(1), when_deleted="Delete"), 0)
    (owner,) = claim["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("StatefulSet", "sts-uid", True)


def test_when_scaled_delete_hands_the_claim_to_the_condemned_pod_before_deleting_it():
    sts = with_templates(make_sts(1), when_scaled="Delete")
    h = Harness(sts, [pod(0), pod(1)])
    h.rest.objects[("PersistentVolumeClaim", "default/data-web-1")] = {
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data-web-1", "namespace": "default", "resourceVersion": "9"}}
    rest = h.sync()
    verbs = [(a[0], a[1], a[3]) for a in rest.actions if a[0] in ("patch", "delete")]
    assert verbs == [("patch", "persistentvolumeclaims", "data-web-1"),
                     ("delete", "pods", "web-1")]
    refs = rest.of("patch")[0][4]["metadata"]["ownerReferences"]
    assert refs == [{"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "uid-1",
                     "blockOwnerDeletion": True}]


def test_retain_scaling_leaves_claims_alone():
    h = Harness(with_templates(make_sts(1)), [pod(0), pod(1)])
    rest = h.sync()
    assert [a[1] for a in rest.actions if a[0] in ("patch", "delete")] == ["pods"]
