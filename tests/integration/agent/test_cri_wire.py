"""CriClient against a real containerd: the hand-written proto speaks its CRI v1.

containerd runs from a minimal config of this test's own (root, state and socket in a
temporary directory). Only calls that need no network namespace and no image are
made, so no sandbox is ever created.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import textwrap
from pathlib import Path

import grpc
import pytest

from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri.client import CriClient, CriError

CONTAINERD = shutil.which("containerd")

pytestmark = [
    pytest.mark.skipif(CONTAINERD is None, reason="containerd is not installed (apt-get install containerd)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="containerd needs root"),
]


def write_config(base):
    """Write a containerd config keeping everything under ``base``; return its path."""
    cni_dir = base / "cni"
    cni_dir.mkdir()
    config = base / "config.toml"
    config.write_text(textwrap.dedent(f"""\
        version = 2
        root = "{base / 'root'}"
        state = "{base / 'state'}"

        [grpc]
          address = "{base / 'containerd.sock'}"

        [plugins."io.containerd.internal.v1.opt"]
          path = "{base / 'opt'}"

        [plugins."io.containerd.grpc.v1.cri"]
          sandbox_image = "steer.local/pause:3.9"
          restrict_oom_score_adj = true
          stream_server_address = "127.0.0.1"
          stream_server_port = "0"
          netns_mounts_under_state_dir = true

        [plugins."io.containerd.grpc.v1.cri".cni]
          bin_dir = "/usr/lib/cni"
          conf_dir = "{cni_dir}"
        """))
    return config


@pytest.fixture
def containerd():
    """A containerd of this test's own; yields its socket path, stopped by pid after."""
    # Short directory: the socket path must fit a unix socket name (107 bytes).
    base = Path(tempfile.mkdtemp(prefix="cri-wire-", dir="/tmp"))
    log = open(base / "containerd.log", "wb")
    process = subprocess.Popen(
        [CONTAINERD, "--config", str(write_config(base))],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield base / "containerd.sock"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def test_containerd_answers_the_cri_v1_calls(containerd):
    with CriClient(f"unix://{containerd}", timeout=10.0) as client:
        ready = client.wait_ready(60)
        version = client.check_version()
        images = client.list_images()
        fs_info = client.image_fs_info()
        status = client.status()
        absent = client.image_status("steer.local/absent:1")
        with pytest.raises(CriError) as missing:
            client.container_status("no-such-container")

    assert ready.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    assert version.runtime_version.startswith("1.")
    assert images == []
    assert fs_info.image_filesystems, "containerd reports its image filesystem"
    assert fs_info.image_filesystems[0].fs_id.mountpoint
    conditions = {c.type: c.status for c in status.status.conditions}
    assert conditions["RuntimeReady"] is True
    # No CNI config in the test's conf_dir: the runtime says so instead of failing.
    assert conditions["NetworkReady"] is False
    assert absent is None
    assert missing.value.code == grpc.StatusCode.NOT_FOUND


def test_list_filters_reach_containerd(containerd):
    with CriClient(str(containerd), timeout=10.0) as client:
        client.wait_ready(60)
        sandboxes = client.list_pod_sandbox(label_selector={"app": "none"},
                                            state=api.SANDBOX_READY)
        containers = client.list_containers(label_selector={"app": "none"})
        stats = client.list_container_stats()

    assert (sandboxes, containers, stats) == ([], [], [])
