"""agent/provision: the files written for one node's containerd (no containerd needed)."""

import json
import os
import stat
import tomllib

import pytest

from agent.provision import containerd as provision
from agent.provision import toml_writer

CRI = "io.containerd.grpc.v1.cri"


@pytest.fixture
def paths(tmp_path):
    return provision.write_config(
        tmp_path / "node-a", pod_cidr="10.244.3.0/24", stream_port=10011,
        sandbox_image="steer.local/pause:3.9",
        registry_mirrors={"steer.local": "http://10.1.0.1:5000",
                          "127.0.0.1:5001": "http://127.0.0.1:5001"})


def load_toml(path):
    with open(path, "rb") as f:
        return tomllib.load(f)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_config_toml_has_the_keys_containerd_needs(paths, tmp_path):
    config = load_toml(paths.config)
    node = str(tmp_path / "node-a")
    assert config["version"] == 2
    assert config["root"] == paths.root and paths.root.startswith(node + "/")
    assert config["state"] == paths.state and paths.state.startswith(node + "/")
    assert config["grpc"]["address"] == paths.socket
    assert paths.endpoint == "unix://" + paths.socket
    cri = config["plugins"][CRI]
    assert cri["sandbox_image"] == "steer.local/pause:3.9"
    assert cri["restrict_oom_score_adj"] is True
    assert (cri["stream_server_address"], cri["stream_server_port"]) == ("127.0.0.1", "10011")
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["containerd"]["default_runtime_name"] == "runc"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": False, "BinaryName": "/usr/sbin/runc",
                               "Root": paths.runc_root}
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": paths.cni_conf_dir,
                          "max_conf_num": 1}
    assert cri["registry"] == {"config_path": paths.certs_dir}


def test_cni_conflist_is_a_bridge_with_host_local_and_portmap(paths):
    with open(paths.cni_conf) as f:
        conflist = json.load(f)
    assert os.path.dirname(paths.cni_conf) == paths.cni_conf_dir
    assert conflist["name"] == "steer-node-a"
    bridge, portmap = conflist["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0"
    assert bridge["isGateway"] and bridge["hairpinMode"]
    assert bridge["ipMasq"] is False      # the agent's own rule spares pod-to-pod traffic
    ipam = bridge["ipam"]
    assert ipam["type"] == "host-local"
    assert ipam["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}]
    assert ipam["dataDir"] == paths.ipam_dir
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


def test_registry_mirrors_become_plain_http_hosts(paths):
    hosts = load_toml(os.path.join(paths.certs_dir, "steer.local", "hosts.toml"))
    assert hosts == {"server": "http://10.1.0.1:5000",
                     "host": {"http://10.1.0.1:5000": {"capabilities": ["pull", "resolve"]}}}
    assert os.path.exists(os.path.join(paths.certs_dir, "127.0.0.1:5001", "hosts.toml"))


def test_files_are_private(paths):
    for path in (paths.config, paths.cni_conf,
                 os.path.join(paths.certs_dir, "steer.local", "hosts.toml")):
        assert mode(path) == 0o600, path
    for path in (paths.node_dir, paths.root, paths.state, paths.certs_dir, paths.ipam_dir,
                 os.path.dirname(paths.socket)):
        assert mode(path) == 0o700, path


def test_rewriting_is_idempotent(paths, tmp_path):
    again = provision.write_config(
        tmp_path / "node-a", pod_cidr="10.244.3.0/24", stream_port=10011,
        sandbox_image="steer.local/pause:3.9")
    assert again == paths
    assert not [name for name in os.listdir(paths.node_dir) if name.endswith(".tmp")]


def test_bad_input_is_refused_with_what_is_wrong(tmp_path):
    common = {"stream_port": 1, "sandbox_image": "p"}
    with pytest.raises(ValueError):
        provision.write_config(tmp_path / "n", pod_cidr="10.244.3.1/24", **common)
    with pytest.raises(ValueError, match="too long for a unix socket"):
        provision.write_config(tmp_path / ("d" * 120), pod_cidr="10.244.3.0/24", **common)
    with pytest.raises(ValueError, match="http:// or https://"):
        provision.write_config(tmp_path / "n", pod_cidr="10.244.3.0/24",
                               registry_mirrors={"steer.local": "10.0.0.1:5000"}, **common)


def test_a_short_socket_outside_a_deep_node_directory(tmp_path):
    deep = tmp_path / ("d" * 120)
    paths = provision.write_config(deep, pod_cidr="10.244.3.0/24", stream_port=1,
                                   sandbox_image="p", socket=tmp_path / "c.sock")
    assert load_toml(paths.config)["grpc"]["address"] == str(tmp_path / "c.sock")


def test_pod_cgroup_parent_is_a_cgroupfs_path_under_the_node():
    assert provision.pod_cgroup_parent("node-1", "0a-1b") == "/steer/node-1/pod0a-1b"
    assert provision.node_cgroup_parent("node-1") == "/steer/node-1"
    with pytest.raises(ValueError):
        provision.pod_cgroup_parent("a/b", "uid")
    with pytest.raises(ValueError):
        provision.pod_cgroup_parent("node-1", "")


def test_toml_writer_round_trips_through_tomllib():
    document = {"a": 1, "b": True, "s": 'quote " back\\slash\nnew é', "l": ["x", "y"],
                "t": {"dotted.key": {"k": "v"}, "plain": 2}, "empty": {}}
    assert tomllib.loads(toml_writer.dumps(document)) == document
    with pytest.raises(TypeError):
        toml_writer.dumps({"f": 1.5})
