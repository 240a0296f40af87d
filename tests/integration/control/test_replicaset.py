"""steer-controller-manager against a real store and API server: ReplicaSets, handover."""


import pytest

from control.client import Conflict, NotFound
from control.objects.kinds import LEASES, PODS, REPLICASETS
from tests.support.apiproc import eventually
from tests.support.controlplane import create_namespace


def make_rs(rest, ns, name, replicas, app):
    return rest.create(REPLICASETS, ns, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})


def make_pod(rest, ns, name, labels):
    return rest.create(PODS, ns, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})


def scale(rest, ns, name, replicas):
    rest.patch(REPLICASETS, ns, name, {"spec": {"replicas": replicas}})


def pods(rest, ns):
    """Live pods by name -> uid of their controller (None for orphans)."""
    out = {}
    for pod in rest.list(PODS, ns)["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        owners = [r["uid"] for r in pod["metadata"].get("ownerReferences") or ()
                  if r.get("controller")]
        out[pod["metadata"]["name"]] = owners[0] if owners else None
    return out


def owned(rest, ns, rs):
    uid = rs["metadata"]["uid"]
    return sorted(name for name, owner in pods(rest, ns).items() if owner == uid)


def lease_holder(rest):
    try:
        return rest.get(LEASES, "kube-system", "steer-controller-manager")["spec"] \
            .get("holderIdentity")
    except NotFound:
        return None


def set_holder(rest, holder, duration):
    """Write the Lease's holder; False if a renewal got in between (a Conflict)."""
    lease = rest.get(LEASES, "kube-system", "steer-controller-manager")
    lease["spec"].update(holderIdentity=holder, leaseDurationSeconds=duration)
    try:
        rest.update(LEASES, "kube-system", lease)
    except Conflict:
        return False
    return True


def test_replicaset_scales_and_replaces_pods(rest, managers):
    ns = create_namespace(rest, "scaling")
    managers.start("cm")
    rs = make_rs(rest, ns, "web", 5, "web")
    five = eventually(lambda: len(owned(rest, ns, rs)) == 5 and owned(rest, ns, rs),
                      message="5 owned pods", logs=managers.logs)
    assert all(name.startswith("web-") for name in five)

    def status(**want):
        got = rest.get(REPLICASETS, ns, "web").get("status") or {}
        return all(got.get(k, 0) == v for k, v in want.items())

    eventually(lambda: status(replicas=5, observedGeneration=1), message="status of 5",
               logs=managers.logs)
    scale(rest, ns, "web", 2)
    two = eventually(lambda: len(pods(rest, ns)) == 2 and owned(rest, ns, rs),
                     message="3 pods deleted", logs=managers.logs)
    assert set(two) <= set(five)
    eventually(lambda: status(replicas=2, observedGeneration=2), message="status of 2",
               logs=managers.logs)

    rest.delete(PODS, ns, two[0])
    replaced = eventually(lambda: len(pods(rest, ns)) == 2 and two[0] not in pods(rest, ns)
                          and owned(rest, ns, rs), message="a deleted pod replaced",
                          logs=managers.logs)
    assert two[1] in replaced and len(owned(rest, ns, rs)) == 2


def test_matching_orphans_are_adopted_strays_released_others_left_alone(rest, managers):
    ns = create_namespace(rest, "adoption")
    make_pod(rest, ns, "orphan", {"app": "api"})
    make_pod(rest, ns, "stranger", {"app": "db"})
    managers.start("cm-adopt")
    rs = make_rs(rest, ns, "api", 2, "api")
    eventually(lambda: len(owned(rest, ns, rs)) == 2, message="2 owned pods",
               logs=managers.logs)
    names = owned(rest, ns, rs)
    assert "orphan" in names                       # adopted, so only one pod was created
    assert pods(rest, ns)["stranger"] is None
    assert len(pods(rest, ns)) == 3
    # An owned pod relabelled out of the selector is released and replaced.
    stray = [name for name in names if name != "orphan"][0]
    rest.patch(PODS, ns, stray, {"metadata": {"labels": {"app": "debug"}}})
    eventually(lambda: pods(rest, ns).get(stray, "gone") is None
               and len(owned(rest, ns, rs)) == 2 and stray not in owned(rest, ns, rs),
               message="the stray released and replaced", logs=managers.logs)
    assert len(pods(rest, ns)) == 4


@pytest.mark.fault
def test_killing_the_leader_hands_over(rest, managers):
    ns = create_namespace(rest, "handover")
    managers.start("first")
    eventually(lambda: lease_holder(rest) == "first", message="first leads",
               logs=managers.logs)
    managers.start("second")
    rs = make_rs(rest, ns, "web", 2, "web")
    eventually(lambda: len(owned(rest, ns, rs)) == 2, message="2 pods by the first leader",
               logs=managers.logs)
    managers.kill("first")
    scale(rest, ns, "web", 4)
    eventually(lambda: len(owned(rest, ns, rs)) == 4, message="scaled after the handover",
               logs=managers.logs)
    assert lease_holder(rest) == "second"
    assert managers.procs["second"].poll() is None


@pytest.mark.fault
def test_losing_the_lease_exits_non_zero(rest, managers):
    proc = managers.start("loser")
    eventually(lambda: lease_holder(rest) == "loser", message="loser leads",
               logs=managers.logs)
    # Someone else takes the Lease (as after a long pause): the manager must exit.
    eventually(lambda: set_holder(rest, "intruder", 3600), message="the Lease taken")
    eventually(lambda: proc.poll() is not None, message="the manager exits",
               logs=managers.logs)
    assert proc.returncode == 1
    # Let later tests elect at once.
    eventually(lambda: set_holder(rest, "", 1), message="the Lease released")
