"""persistentVolumeClaim volumes: claim -> bound PV -> a host directory, made when missing."""

import os
import stat

import pytest

from agent import volumes
from agent.env import ConfigError
from agent.runtime.base import Mount


def objects(tmp_path, phase="Bound", uid="claim-uid", source=None):
    claim = {"metadata": {"name": "data", "namespace": "db", "uid": "claim-uid"},
             "spec": {"volumeName": "pv1"}, "status": {"phase": phase}}
    pv = {"metadata": {"name": "pv1"}, "spec": source or {
        "hostPath": {"path": str(tmp_path / "storage" / "pvc-1_db_data"),
                     "type": "DirectoryOrCreate"},
        "claimRef": {"namespace": "db", "name": "data", "uid": uid}}}
    if source:
        pv["spec"]["claimRef"] = {"uid": uid}
    table = {("PersistentVolumeClaim", "db", "data"): claim, ("PersistentVolume", None, "pv1"): pv}
    return lambda kind, namespace, name: table.get((kind, namespace, name))


def pod_with_claim(name="data"):
    return {"metadata": {"name": "p", "namespace": "db", "uid": "u1"},
            "spec": {"volumes": [{"name": "store", "persistentVolumeClaim": {"claimName": name}}],
                     "containers": [{"name": "c", "volumeMounts": [
                         {"name": "store", "mountPath": "/var/data"}]}]}}


def test_a_bound_claim_is_its_volumes_directory_made_for_containers(tmp_path):
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    paths = volumes.materialise(pod_with_claim(), str(pod_dir), objects(tmp_path),
                                for_containers=True)
    host = str(tmp_path / "storage" / "pvc-1_db_data")
    assert paths == {"store": host}
    assert stat.S_IMODE(os.stat(host).st_mode) == 0o777
    mounts = volumes.container_mounts(pod_with_claim()["spec"]["containers"][0], paths)
    assert mounts == [Mount("/var/data", host, False)]


def test_the_directory_outlives_the_pods_directory_and_keeps_data(tmp_path):
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    paths = volumes.materialise(pod_with_claim(), str(pod_dir), objects(tmp_path))
    with open(os.path.join(paths["store"], "file"), "w") as f:
        f.write("kept")
    again = volumes.materialise(pod_with_claim(), str(pod_dir), objects(tmp_path))
    assert open(os.path.join(again["store"], "file")).read() == "kept"
    assert not volumes.paths.is_within(again["store"], str(pod_dir))


@pytest.mark.parametrize("get, message", [
    (lambda tmp: objects(tmp, phase="Pending"), 'persistentvolumeclaim "data" is not bound'),
    (lambda tmp: objects(tmp, uid="someone-else"), "is not bound to claim"),
    (lambda tmp: (lambda *a: None), 'persistentvolumeclaim "data" not found'),
    (lambda tmp: objects(tmp, source={"nfs": {"server": "x", "path": "/"}}),
     "no volume source this node can mount"),
    (lambda tmp: objects(tmp, source={"hostPath": {"path": "/srv/../etc"}}),
     "must be an absolute path without '..'"),
])
def test_a_claim_that_cannot_be_mounted_is_a_mount_failure(tmp_path, get, message):
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    with pytest.raises(ConfigError, match=message):
        volumes.materialise(pod_with_claim(), str(pod_dir), get(tmp_path))
