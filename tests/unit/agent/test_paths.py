"""Hostile pods never make the agent create or remove anything outside the pod's directory."""

import base64
import os
import stat

import pytest

from agent import paths, volumes
from agent.env import ConfigError
from tests.unit.agent.fakes import Harness, make_pod


def _snapshot(top):
    """Every path under ``top`` (links not followed), for before/after comparisons."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), top))
    return found


@pytest.fixture
def world(tmp_path):
    """A data dir inside ``tmp_path`` next to a victim directory the pod must not reach."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    data = tmp_path / "data"
    data.mkdir()
    return tmp_path, data, victim


def _outside(tmp_path, data):
    return {p for p in _snapshot(tmp_path) if not p.startswith("data")}


# -- the helpers ---------------------------------------------------------------------


@pytest.mark.parametrize("relative", ["..", "../x", "a/../../x", "a\\..\\..\\x", "/", ""])
def test_join_under_refuses_backsteps_and_the_base_itself(tmp_path, relative):
    with pytest.raises(paths.UnsafePath):
        paths.join_under(str(tmp_path), relative)


def test_join_under_refuses_a_symlink_that_leads_out(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    os.symlink("/etc", base / "out")
    with pytest.raises(paths.UnsafePath, match="outside"):
        paths.join_under(str(base), "out/passwd")
    assert paths.join_under(str(base), "/a/b") == str(base / "a" / "b")


@pytest.mark.parametrize("uid", ["../../", "..", "a/b", "", ".hidden", None, "x" * 200])
def test_hostile_uids_are_refused(uid):
    with pytest.raises(paths.UnsafePath):
        paths.check_uid(uid)


def test_uuid_uids_are_accepted():
    assert paths.check_uid("0b3f9a52-7c1e-4a7b-9f1e-2d3c4b5a6978")


def test_remove_entry_unlinks_links_and_never_follows_them(world):
    tmp_path, data, victim = world
    os.symlink(victim, data / "link")
    paths.remove_entry(str(data / "link"), str(data))
    assert (victim / "precious").exists() and not os.path.lexists(data / "link")
    with pytest.raises(paths.UnsafePath):
        paths.remove_entry(str(victim / "precious"), str(data))
    assert (victim / "precious").exists()


# -- volumes and container roots ------------------------------------------------------


def _pod(volumes_=(), containers=None):
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1"},
            "spec": {"volumes": list(volumes_),
                     "containers": containers or [{"name": "c", "command": ["true"]}]}}


@pytest.mark.parametrize("name", ["../x", "a/b", "..", "/etc", "UPPER"])
def test_hostile_volume_names_are_refused(world, name):
    tmp_path, data, victim = world
    before = _outside(tmp_path, data)
    with pytest.raises(ConfigError):
        volumes.materialise(_pod([{"name": name, "emptyDir": {}}]), str(data / "pod"),
                            lambda *a: None)
    assert _outside(tmp_path, data) == before


@pytest.mark.parametrize("item_path", ["../../victim/evil", "/abs/evil", "a/../../../evil"])
def test_hostile_item_paths_write_nothing_outside(world, item_path):
    tmp_path, data, victim = world
    before = _outside(tmp_path, data)
    pod = _pod([{"name": "v", "configMap": {"name": "cm", "items": [
        {"key": "k", "path": item_path}]}}])
    get = lambda kind, ns, name: {"data": {"k": "boom"}}     # noqa: E731
    try:
        volumes.materialise(pod, str(data / "pod"), get)
    except ConfigError:
        pass
    assert _outside(tmp_path, data) == before


def test_an_item_through_a_planted_symlink_is_refused(world):
    tmp_path, data, victim = world
    pod_dir = data / "pod"
    target = pod_dir / "volumes" / "v"
    target.mkdir(parents=True)
    os.symlink(victim, target / "sub")      # a container planted it in its own volume
    pod = _pod([{"name": "v", "configMap": {"name": "cm", "items": [
        {"key": "k", "path": "sub/evil"}]}}])
    with pytest.raises(ConfigError, match="outside"):
        volumes.materialise(pod, str(pod_dir), lambda *a: {"data": {"k": "boom"}})
    assert sorted(os.listdir(victim)) == ["precious"]


@pytest.mark.parametrize("mount", [
    {"name": "v", "mountPath": ".."},
    {"name": "v", "mountPath": "/../../../victim"},
    {"name": "v", "mountPath": "/"},
    {"name": "v", "mountPath": "/x", "subPath": "../../etc"},
    {"name": "v", "mountPath": "/x", "subPath": "/../../victim"},
])
def test_hostile_mounts_are_refused(world, mount):
    tmp_path, data, victim = world
    pod_dir = str(data / "pod")
    vols = volumes.materialise(_pod([{"name": "v", "emptyDir": {}}]), pod_dir, lambda *a: None)
    before = _outside(tmp_path, data)
    container = {"name": "c", "volumeMounts": [mount]}
    with pytest.raises(ConfigError):
        volumes.container_root(pod_dir, container, vols)
    assert _outside(tmp_path, data) == before and (victim / "precious").exists()


def test_a_mount_nested_in_a_host_path_is_refused(world):
    tmp_path, data, victim = world
    pod_dir = str(data / "pod")
    pod = _pod([{"name": "host", "hostPath": {"path": str(victim)}},
                {"name": "v", "emptyDir": {}}])
    vols = volumes.materialise(pod, pod_dir, lambda *a: None)
    container = {"name": "c", "volumeMounts": [{"name": "host", "mountPath": "/h"},
                                               {"name": "v", "mountPath": "/h/precious"},
                                               {"name": "v", "mountPath": "/h/new/dir"}]}
    with pytest.raises(ConfigError, match="outside"):
        volumes.container_root(pod_dir, container, vols)
    assert (victim / "precious").read_text() == "keep me"
    assert sorted(os.listdir(victim)) == ["precious"]


def test_a_subpath_through_a_symlink_in_the_volume_is_refused(world):
    tmp_path, data, victim = world
    pod_dir = str(data / "pod")
    vols = volumes.materialise(_pod([{"name": "v", "emptyDir": {}}]), pod_dir, lambda *a: None)
    os.symlink(victim, os.path.join(vols["v"], "escape"))
    container = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/x",
                                                "subPath": "escape"}]}
    with pytest.raises(ConfigError, match="outside"):
        volumes.container_root(pod_dir, container, vols)


@pytest.mark.parametrize("workdir", ["../../victim", "/../../x"])
def test_a_hostile_working_dir_is_refused(world, workdir):
    tmp_path, data, victim = world
    before = _outside(tmp_path, data)
    with pytest.raises(ConfigError):
        volumes.container_root(str(data / "pod"), {"name": "c", "workingDir": workdir}, {})
    assert _outside(tmp_path, data) == before


def test_nested_mounts_and_workdirs_inside_volumes_still_work(world):
    tmp_path, data, victim = world
    pod_dir = str(data / "pod")
    vols = volumes.materialise(_pod([{"name": "a", "emptyDir": {}},
                                     {"name": "b", "emptyDir": {}}]), pod_dir, lambda *a: None)
    container = {"name": "c", "workingDir": "/data/work",
                 "volumeMounts": [{"name": "a", "mountPath": "/data"},
                                  {"name": "b", "mountPath": "/data/b"}]}
    root, workdir = volumes.container_root(pod_dir, container, vols)
    assert os.path.isdir(workdir) and os.path.realpath(workdir).startswith(
        os.path.realpath(vols["a"]))


def test_secret_volumes_honour_modes_in_a_private_tmpfs_dir(world):
    tmp_path, data, victim = world
    secret_dir = tmp_path / "shm" / "u1"
    pod = _pod([{"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400,
                                         "items": [{"key": "a", "path": "a"},
                                                   {"key": "b", "path": "d/b", "mode": 0o640}]}},
                {"name": "plain", "secret": {"secretName": "s"}}])
    secret = {"data": {"a": base64.b64encode(b"A").decode(), "b": base64.b64encode(b"B").decode()}}
    vols = volumes.materialise(pod, str(data / "pod"), lambda *a: secret, secret_dir=str(secret_dir))
    assert vols["s"].startswith(str(secret_dir))
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)      # noqa: E731
    assert mode(os.path.join(vols["s"], "a")) == 0o400
    assert mode(os.path.join(vols["s"], "d/b")) == 0o640
    assert mode(os.path.join(vols["plain"], "a")) == 0o644     # Kubernetes' default
    assert mode(secret_dir) == 0o700 and mode(data / "pod" / "volumes") == 0o700


def test_a_host_path_is_never_created_through_backsteps(world):
    tmp_path, data, victim = world
    pod = _pod([{"name": "h", "hostPath": {"path": str(victim) + "/../evil",
                                            "type": "DirectoryOrCreate"}}])
    with pytest.raises(ConfigError):
        volumes.materialise(pod, str(data / "pod"), lambda *a: None)
    assert not (tmp_path / "evil").exists()


# -- the pod worker ---------------------------------------------------------------------


def _delete(h):
    h.pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    h.pod["metadata"]["deletionGracePeriodSeconds"] = 0
    h.worker.update(h.pod)
    for _ in range(5):
        if h.step(1) is None:
            return


def test_a_hostile_uid_runs_nothing_and_removes_nothing(world):
    tmp_path, data, victim = world
    pod = make_pod()
    pod["metadata"]["uid"] = "../../victim"
    h = Harness(pod, data)
    before = _snapshot(tmp_path)
    h.step()
    assert h.runtime.started == []
    assert h.state() == "waiting" and "not a valid uid" in h.status()["state"]["waiting"]["message"]
    _delete(h)
    assert _snapshot(tmp_path) == before and (victim / "precious").exists()


def test_a_hostile_container_name_is_refused_with_an_event(world):
    tmp_path, data, victim = world
    pod = make_pod([{"name": "../../../victim", "command": ["sleep"]}])
    h = Harness(pod, data)
    h.step()
    assert h.runtime.started == []
    assert any("container name" in message for _, _, message in h.recorder.events)
    assert sorted(os.listdir(victim)) == ["precious"]


def test_a_pod_with_a_host_path_is_removed_without_its_host_path(world):
    tmp_path, data, victim = world
    container = {"name": "c", "command": ["sleep"],
                 "volumeMounts": [{"name": "h", "mountPath": "/h"}]}
    h = Harness(make_pod([container], volumes=[{"name": "h", "hostPath": {"path": str(victim)}}]),
                data)
    h.step()
    assert h.runtime.started
    pod_dir = data / "pods" / h.uid
    assert stat.S_IMODE(os.stat(pod_dir).st_mode) == 0o700
    _delete(h)
    assert not pod_dir.exists()
    assert (victim / "precious").read_text() == "keep me"


# -- file modes -------------------------------------------------------------------------


def test_container_logs_and_runtime_state_are_private(tmp_path):
    from agent import logs
    from agent.runtime.shim import write_atomically

    writer = logs.LogWriter(str(tmp_path / "logs" / "c" / "0.log"), max_bytes=10, max_files=2)
    writer.write("stdout", b"a secret printed by mistake")
    writer.write("stdout", b"again, rotated")
    writer.close()
    for name in os.listdir(tmp_path / "logs" / "c"):
        assert stat.S_IMODE(os.stat(tmp_path / "logs" / "c" / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / "c").st_mode) == 0o700
    write_atomically(str(tmp_path / "config.json"), "{}")
    assert stat.S_IMODE(os.stat(tmp_path / "config.json").st_mode) == 0o600


def test_components_start_with_a_private_umask():
    from control.client import component

    old = component.restrict_umask()
    try:
        assert os.umask(0o077) == 0o077
    finally:
        os.umask(old)


def test_the_tmpfs_dir_is_recorded_and_removed_when_empty(tmp_path):
    shm, data = tmp_path / "shm", tmp_path / "data"
    shm.mkdir()
    data.mkdir()
    path = paths.tmpfs_dir(str(data), shm=str(shm))
    assert (data / paths.TMPFS_RECORD).read_text().strip() == path
    (tmp_path / "shm" / os.path.basename(path) / "pod").mkdir()
    paths.remove_tmpfs_dir_if_empty(path)
    assert os.path.isdir(path)                 # a pod's secrets are still there
    os.rmdir(os.path.join(path, "pod"))
    paths.remove_tmpfs_dir_if_empty(path)
    assert not os.path.exists(path)
