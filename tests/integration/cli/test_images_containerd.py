"""Images built here, loaded into a real containerd (our own, in tmp_path): `ctr images
import` names them from the archive, unpacks them, and CRI's ImageStatus sees them; an
image pushed to the registry addon is pulled through CRI over plain HTTP."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from cli import local_images, registry
from cli.local_cluster import LocalCluster, alive, proc_start_time
from cli.local_store import free_port
from cli.main import main

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("containerd", "ctr", "skopeo", "gcc")),
    reason="containerd, ctr, skopeo and gcc are needed "
           "(apt-get install containerd skopeo gcc libc6-dev busybox-static)")

# A containerd of our own: root, state, socket and CNI directory in tmp_path, never the
# system's. restrict_oom_score_adj is required on these machines (see the notes).
CONFIG = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
[grpc]
  address = "{dir}/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "{stream_port}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "{dir}/cni"
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("images"))
    try:
        return {"pause": local_images.build_pause(cache),
                "busybox": local_images.build_busybox(cache)}
    except local_images.ImageError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def containerd(tmp_path):
    """Start containerd on its own socket; stop it by pid and check it is gone."""
    from agent.runtime.cri.client import CriClient

    base = tmp_path / "ctrd"
    base.mkdir()
    (base / "cni").mkdir()
    config = base / "config.toml"
    config.write_text(CONFIG.format(dir=base, pause=local_images.PAUSE_IMAGE,
                                    stream_port=free_port()))
    socket_path = str(base / "containerd.sock")
    with open(base / "containerd.log", "ab") as log:
        proc = subprocess.Popen(["containerd", "--config", str(config)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    start = proc_start_time(proc.pid)
    client = CriClient(f"unix://{socket_path}")
    try:
        client.wait_ready(timeout=30)
        yield socket_path, client
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        assert not alive(proc.pid, start)


def test_import_names_unpacks_and_cri_sees_the_images(containerd, images):
    socket_path, client = containerd
    for name in ("pause", "busybox"):
        added = local_images.import_archive(socket_path, images[name])
        assert added == [images[name].name]
    listed = dict(local_images.list_images(socket_path))
    assert {local_images.PAUSE_IMAGE, local_images.BUSYBOX_IMAGE} <= set(listed)
    check = subprocess.run(["ctr", "--address", socket_path, "--namespace", "k8s.io",
                            "images", "check"], capture_output=True, text=True, check=True)
    for line in check.stdout.splitlines():
        if line.startswith("steer.local/"):
            assert "complete" in line and line.split()[-1] == "true", line   # unpacked
    for name in ("pause", "busybox"):
        status = client.image_status(images[name].name)
        assert status is not None, name
        assert status.id == images[name].image_id
        assert images[name].name in status.repo_tags
    pause = client.image_status(local_images.PAUSE_IMAGE)
    assert pause.uid.value == 65535


def test_importing_again_is_harmless_and_a_bad_file_is_refused(containerd, images, tmp_path):
    socket_path, client = containerd
    local_images.import_archive(socket_path, images["busybox"])
    local_images.import_archive(socket_path, images["busybox"])
    assert client.image_status(local_images.BUSYBOX_IMAGE) is not None
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    with pytest.raises(local_images.ImageError, match="could not import"):
        local_images.import_archive(socket_path, junk)


@pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry is needed")
def test_cri_pulls_from_the_registry_addon(containerd, images, tmp_path):
    socket_path, client = containerd
    addr = f"127.0.0.1:{free_port()}"
    with registry.Registry(str(tmp_path / "registry"), addr):
        registry.push(images["busybox"], addr, "steer/busybox:1.35")
        ref = client.pull_image(f"{addr}/steer/busybox:1.35")
        assert ref == images["busybox"].image_id
        status = client.image_status(f"{addr}/steer/busybox:1.35")
        assert status is not None and status.id == images["busybox"].image_id


def test_steer_image_import_and_ls_on_a_recorded_cluster(containerd, images, tmp_path,
                                                        monkeypatch, capsys):
    socket_path, client = containerd
    monkeypatch.setenv("STEER_HOME", str(tmp_path / "home"))
    cluster = LocalCluster(str(tmp_path / "home"))
    cluster.state["containerd"] = {"node-1": {"socket": socket_path}}
    cluster.save()
    assert main(["image", "import", images["busybox"].path]) == 0
    assert capsys.readouterr().out == f"node-1: imported {local_images.BUSYBOX_IMAGE}\n"
    assert client.image_status(local_images.BUSYBOX_IMAGE) is not None
    assert main(["image", "ls"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["NODE", "NAME", "SIZE"]
    assert ["node-1", local_images.BUSYBOX_IMAGE] in [row[:2] for row in rows[1:]]


def test_no_process_of_ours_is_left(tmp_path):
    """Runs last in this module: no containerd or registry started from a tmp dir lives on."""
    deadline = time.monotonic() + 10
    while True:
        ours = [pid for pid in os.listdir("/proc") if pid.isdigit() and _is_test_process(pid)]
        if not ours or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not ours


def _is_test_process(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return (argv[0] in (b"containerd", b"docker-registry") and
            any(marker in arg for arg in argv
                for marker in (b"test_cri_pulls", b"test_import", b"test_steer_image")))
