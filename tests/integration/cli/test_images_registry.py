"""The cluster registry addon with the real docker-registry and skopeo: images built here
are pushed and served; in a network namespace only that namespace reaches it."""

import json
import os
import shutil
import subprocess
import uuid

import pytest

from cli import local_images, registry
from cli.local_cluster import alive
from cli.local_store import free_port
from cli.oci_layout import machine_architecture

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("docker-registry", "skopeo")),
    reason="docker-registry and skopeo are needed (apt-get install docker-registry skopeo)")


@pytest.fixture(scope="module")
def busybox(tmp_path_factory):
    try:
        local_images.find_static_busybox()
    except local_images.ImageError as exc:
        pytest.skip(str(exc))
    return local_images.build_busybox(str(tmp_path_factory.mktemp("images")))


def inspect(reference, netns=None):
    argv = registry.in_netns(["skopeo", "inspect", "--tls-verify=false",
                              f"docker://{reference}"], netns)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_push_then_inspect_then_stop_leaves_nothing(tmp_path, busybox):
    addr = f"127.0.0.1:{free_port()}"
    reg = registry.Registry(str(tmp_path / "registry"), addr)
    try:
        pid = reg.start()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert f.read().split(b"\0")[0] == b"docker-registry"
        assert registry.push(busybox, addr, "busybox:1.35") == f"{addr}/busybox:1.35"
        assert registry.push(busybox.path, addr, "busybox:from-archive")
        shown = inspect(f"{addr}/busybox:1.35")
        assert shown.returncode == 0, shown.stderr
        info = json.loads(shown.stdout)
        assert info["Digest"] == busybox.digest
        assert set(info["RepoTags"]) == {"1.35", "from-archive"}
        assert info["Architecture"] == machine_architecture()
    finally:
        reg.stop()
    assert not alive(pid)
    assert inspect(f"{addr}/busybox:1.35").returncode != 0


def test_a_second_registry_on_a_taken_port_fails_clearly(tmp_path):
    addr = f"127.0.0.1:{free_port()}"
    with registry.Registry(str(tmp_path / "one"), addr):
        with pytest.raises(local_images.ImageError, match="exited at start"):
            registry.Registry(str(tmp_path / "two"), addr).start()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                    reason="network namespaces need root and iproute2")
def test_registry_inside_a_netns_is_reached_only_from_it(tmp_path, busybox):
    netns = f"steer-reg-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    # A port free in the root namespace too, so nothing there can answer in its place.
    addr = f"127.0.0.1:{free_port()}"
    reg = registry.Registry(str(tmp_path / "registry"), addr, netns=netns)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        pid = reg.start()
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        registry.push(busybox, reg.addr, "busybox:1.35", netns=netns)
        assert inspect(f"{addr}/busybox:1.35", netns).returncode == 0
        assert inspect(f"{addr}/busybox:1.35").returncode != 0
    finally:
        reg.stop()
        subprocess.run(["ip", "netns", "del", netns], check=False)
    assert not alive(pid)
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True).stdout

