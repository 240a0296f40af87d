"""agent/provision/cleanup.py: what a crashed containerd left outside its directory."""

import hashlib
import os

from agent.provision import cleanup

SANDBOX = "a" * 64
OTHER = "b" * 64


def touch(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_task_ids_come_from_the_task_and_sandbox_directories(tmp_path):
    state, root = tmp_path / "state", tmp_path / "root"
    os.makedirs(state / "io.containerd.runtime.v2.task" / "k8s.io" / SANDBOX)
    os.makedirs(state / "io.containerd.runtime.v2.task" / "k8s.io" / "c1")
    os.makedirs(root / "io.containerd.grpc.v1.cri" / "sandboxes" / SANDBOX)
    assert cleanup.task_ids(str(state), str(root)) == {("k8s.io", SANDBOX), ("k8s.io", "c1")}
    assert cleanup.task_ids(str(tmp_path / "none"), str(tmp_path / "none")) == set()


def test_only_our_sandboxes_cache_entries_and_sockets_go(tmp_path):
    results, sockets = tmp_path / "results", tmp_path / "s"
    ours = [f"steer-n1-{SANDBOX}-eth0", f"cni-loopback-{SANDBOX}-lo"]
    theirs = [f"steer-n1-{OTHER}-eth0", f"cni-loopback-{OTHER}-lo"]
    for name in ours + theirs:
        touch(str(results / name), "{}")
    address = "/run/x/containerd.sock"
    mine = hashlib.sha256(f"{address}/k8s.io/{SANDBOX}".encode()).hexdigest()
    touch(str(sockets / mine))
    touch(str(sockets / ("0" * 64)))
    ids = {("k8s.io", SANDBOX)}
    cleanup.remove_cni_cache(ids, results_dir=str(results))
    cleanup.remove_shim_sockets(address, ids, socket_dir=str(sockets))
    assert sorted(os.listdir(results)) == sorted(theirs)
    assert os.listdir(sockets) == ["0" * 64]


def test_released_addresses_are_those_our_sandboxes_held(tmp_path):
    network = tmp_path / "ipam" / "steer-n1"
    touch(str(network / "10.244.1.2"), f"{SANDBOX}\r\neth0")
    touch(str(network / "10.244.1.3"), f"{OTHER}\r\neth0")
    touch(str(network / "last_reserved_ip.0"), "10.244.1.3")
    cleanup.release_addresses(str(tmp_path / "ipam"), {("k8s.io", SANDBOX)})
    assert sorted(os.listdir(network)) == ["10.244.1.3", "last_reserved_ip.0"]


def test_remove_cgroups_keeps_a_group_with_processes(tmp_path, monkeypatch):
    hierarchy = tmp_path / "cg" / "memory"
    empty = hierarchy / "steer" / "n1" / "podu1" / "c1"
    busy = hierarchy / "steer" / "n2" / "podu2"
    os.makedirs(empty)
    os.makedirs(busy)
    touch(str(busy / "cgroup.procs"), "123\n")    # a plain directory: rmdir fails
    monkeypatch.setattr(cleanup, "cgroup_hierarchies", lambda root: [str(hierarchy)])
    cleanup.remove_cgroups("/steer/n1")
    assert not os.path.exists(hierarchy / "steer" / "n1")
    assert os.path.exists(busy)     # another node's groups, and "/steer" with them, stay
