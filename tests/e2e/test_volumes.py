"""Persistent volumes on a real `steer up` cluster (process runtime, 2 nodes).

The default StorageClass local-path (WaitForFirstConsumer, reclaim Delete) gives
each claim a directory under its node's storage root. A StatefulSet's pod that
is deleted comes back on the same node and reads what its predecessor wrote; a
claim deleted after its pod (reclaim Delete) takes its volume and directory with
it; with reclaim Retain the volume is Released and the directory stays.
The tests run in order on one cluster (see conftest.py).
"""

import json
import os
import time

import pytest

from control.client import NotFound
from control.objects import conditions, kinds
from tests.e2e.conftest import running_cluster
from tests.support.apiproc import eventually

PVCS = kinds.lookup("", "v1", "persistentvolumeclaims")
PVS = kinds.lookup("", "v1", "persistentvolumes")
TIMEOUT = 90

#: Append this pod's uid to data/log after saving what earlier pods wrote there.
RECORDER = ('cat data/log > "data/seen.$POD_UID" 2>/dev/null; echo "$POD_UID" >> data/log; '
            "exec sleep 3600")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    started = time.monotonic()
    with running_cluster(tmp_path_factory, nodes=2) as c:
        yield c
    print(f"\ntest_volumes: cluster up to down in {time.monotonic() - started:.1f}s")


def container(command=RECORDER):
    return {"name": "app", "image": "busybox", "command": ["sh", "-c", command],
            "env": [{"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}


def apply(cluster, *objects):
    cluster.steer("apply", "-f", "-", input="\n---\n".join(json.dumps(o) for o in objects))


def running(cluster, name):
    def check():
        try:
            pod = cluster.pod(name)
        except NotFound:            # not created yet
            return None
        return pod if (pod.get("status") or {}).get("phase") == "Running" and \
            conditions.is_ready(pod) else None
    return eventually(check, timeout=TIMEOUT, message=f"pod {name} to run",
                      logs=cluster.logs)


def bound_volume(cluster, claim):
    def check():
        obj = cluster.rest.get(PVCS, "default", claim)
        if (obj.get("status") or {}).get("phase") != "Bound":
            return None
        return cluster.rest.get(PVS, None, obj["spec"]["volumeName"])
    return eventually(check, timeout=TIMEOUT, message=f"claim {claim} to be Bound",
                      logs=cluster.logs)


def gone(cluster, resource, namespace, name):
    def check():
        try:
            cluster.rest.get(resource, namespace, name)
        except NotFound:
            return True
        return False
    eventually(check, timeout=TIMEOUT, message=f"{resource.plural}/{name} to be deleted",
               logs=cluster.logs)


def volume_node(volume):
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    return terms[0]["matchExpressions"][0]["values"][0]


def read(path):
    with open(path) as f:
        return f.read()


def test_a_stateful_pod_reads_its_predecessors_data_on_the_same_node(cluster):
    apply(cluster, {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"replicas": 2, "serviceName": "db", "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [container()]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "16Mi"}}}}]}})
    first = running(cluster, "db-0")
    running(cluster, "db-1")
    volume = bound_volume(cluster, "data-db-0")
    assert volume["spec"]["storageClassName"] == "local-path"
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == \
        "steersman.io/local-path"
    assert volume_node(volume) == first["spec"]["nodeName"]
    directory = volume["spec"]["hostPath"]["path"]
    assert directory.startswith(cluster.home) and "/storage/pvc-" in directory
    old_uid = first["metadata"]["uid"]
    eventually(lambda: os.path.exists(os.path.join(directory, "log")), timeout=TIMEOUT,
               message="db-0 to write its log")
    assert read(os.path.join(directory, "log")) == old_uid + "\n"
    assert bound_volume(cluster, "data-db-1")["metadata"]["name"] != volume["metadata"]["name"]

    cluster.rest.delete(kinds.PODS, "default", "db-0", grace_period_seconds=0)
    eventually(lambda: _uid(cluster, "db-0") not in (None, old_uid), timeout=TIMEOUT,
               message="db-0 to be recreated")
    second = running(cluster, "db-0")
    assert second["spec"]["nodeName"] == first["spec"]["nodeName"]
    new_uid = second["metadata"]["uid"]
    seen = os.path.join(directory, f"seen.{new_uid}")
    eventually(lambda: os.path.exists(seen) and os.path.exists(os.path.join(directory, "log"))
               and new_uid in read(os.path.join(directory, "log")), timeout=TIMEOUT,
               message="the new db-0 to read the old data")
    assert read(seen) == old_uid + "\n"


def _uid(cluster, name):
    try:
        return cluster.pod(name)["metadata"]["uid"]
    except NotFound:
        return None


def claim_and_pod(cluster, name, storage_class=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    apply(cluster, {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": name}, "spec": spec},
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [container()], "terminationGracePeriodSeconds": 1,
                    "volumes": [{"name": "data",
                                 "persistentVolumeClaim": {"claimName": name}}]}})
    running(cluster, name)
    volume = bound_volume(cluster, name)
    directory = volume["spec"]["hostPath"]["path"]
    eventually(lambda: os.path.exists(os.path.join(directory, "log")), timeout=TIMEOUT,
               message=f"{name} to write its log")
    return volume, directory


def test_reclaim_delete_removes_the_directory_and_the_volume_once_the_pod_is_gone(cluster):
    volume, directory = claim_and_pod(cluster, "scratch")
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    cluster.rest.delete(PVCS, "default", "scratch")
    # pvc-protection: the claim waits for its pod.
    claim = cluster.rest.get(PVCS, "default", "scratch")
    assert claim["metadata"].get("deletionTimestamp")
    assert "kubernetes.io/pvc-protection" in claim["metadata"]["finalizers"]
    assert os.path.isdir(directory)
    cluster.rest.delete(kinds.PODS, "default", "scratch")
    gone(cluster, PVCS, "default", "scratch")
    gone(cluster, PVS, None, volume["metadata"]["name"])
    assert not os.path.exists(directory)


def test_reclaim_retain_keeps_the_directory_and_releases_the_volume(cluster):
    cluster.rest.create(kinds.lookup("storage.k8s.io", "v1", "storageclasses"), None, {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "keep"}, "provisioner": "steersman.io/local-path",
        "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"})
    volume, directory = claim_and_pod(cluster, "kept", storage_class="keep")
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    cluster.rest.delete(kinds.PODS, "default", "kept")
    cluster.rest.delete(PVCS, "default", "kept")
    gone(cluster, PVCS, "default", "kept")
    eventually(lambda: (cluster.rest.get(PVS, None, volume["metadata"]["name"]).get("status")
                        or {}).get("phase") == "Released", timeout=TIMEOUT,
               message="the volume to be Released", logs=cluster.logs)
    assert os.path.isfile(os.path.join(directory, "log"))


@pytest.mark.kubectl
def test_kubectl_shows_classes_claims_and_volumes(cluster):
    classes = cluster.kubectl("get", "storageclass").stdout
    assert "local-path (default)" in classes and "WaitForFirstConsumer" in classes
    claims = cluster.kubectl("get", "pvc", "data-db-0").stdout.split("\n")[1].split()
    assert claims[:2] == ["data-db-0", "Bound"] and claims[4:6] == ["RWO", "local-path"]
    volumes = cluster.kubectl("get", "pv").stdout
    assert "default/kept" in volumes and "Released" in volumes
