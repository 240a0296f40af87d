"""A node's containerd as agent/provision runs it: pods get their own IPs inside the node's
network namespace only, hostPorts work there, and stopping leaves nothing behind.

Nothing here sends a packet outside namespaces the test creates: that a pod is not
reachable from the root namespace is shown by the root namespace's routes, not by
trying (a SYN to a pod IP from there would follow the default route off the machine).
"""

import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import time
import urllib.parse

import pytest

from agent import netns
from agent.provision import cleanup
from agent.provision import containerd as provision
from agent.runtime.cri import api_pb2 as api
from cli import local_images
from tests.support.apiproc import eventually
from tests.support.containerd import STREAM_PORT, missing_requirements, running_containerd

pytestmark = pytest.mark.skipif(missing_requirements() is not None,
                                reason=str(missing_requirements()))

HTTP_PORT = 8080
HOST_PORT = 30080


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    with running_containerd(tmp_path_factory.mktemp("ctd")) as handle:
        yield handle


def sandbox_config(node, name, log_dir, host_port=None):
    uid = f"{name}-{os.urandom(4).hex()}"
    mappings = []
    if host_port is not None:
        mappings.append(api.PortMapping(protocol=api.TCP, container_port=HTTP_PORT,
                                        host_port=host_port))
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, namespace="default", uid=uid, attempt=0),
        hostname=name, log_directory=str(log_dir), port_mappings=mappings,
        linux=api.LinuxPodSandboxConfig(
            cgroup_parent=provision.pod_cgroup_parent(node.node_name, uid)))


def run_web_pod(node, name, log_dir, host_port=None):
    """A pause sandbox plus busybox httpd on HTTP_PORT; return (sandbox id, pod IP)."""
    config = sandbox_config(node, name, log_dir, host_port)
    sandbox_id = node.client.run_pod_sandbox(config)
    container = api.ContainerConfig(
        metadata=api.ContainerMetadata(name="web"),
        image=api.ImageSpec(image=local_images.BUSYBOX_IMAGE),
        command=["sh", "-c", f"mkdir -p /www && echo hello-{name} > /www/index.html && "
                             f"exec httpd -f -p {HTTP_PORT} -h /www"],
        log_path="web.log")
    container_id = node.client.create_container(sandbox_id, container, config)
    node.client.start_container(container_id)
    ip = node.client.pod_sandbox_status(sandbox_id).status.network.ip
    return sandbox_id, ip


def http_get(netns_path, address):
    """GET / from ``address`` opened inside ``netns_path``; the body, or None if refused."""
    try:
        with netns.connect(netns_path, address, timeout=3) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    return data.partition(b"\r\n\r\n")[2].decode()


def root_routes_to(ip):
    """How the root namespace would route a packet to ``ip`` (ip -j route get)."""
    out = subprocess.run(["ip", "-j", "route", "get", ip], capture_output=True, text=True)
    return json.loads(out.stdout or "[]")


def test_pod_gets_an_ip_reachable_only_inside_the_node(node, tmp_path):
    sandbox_id, ip = run_web_pod(node, "web", tmp_path / "logs")
    try:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(node.pod_cidr)
        body = eventually(lambda: http_get(node.netns_path, (ip, HTTP_PORT)), 20,
                          "busybox httpd answering on the pod IP from the node namespace")
        assert body.strip() == "hello-web"
        # The root namespace has no bridge and no route to the pod: it would only
        # send the packet down its default route (which is why we do not try).
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert " cni0:" not in links
        for route in root_routes_to(ip):
            assert route.get("dev") != "cni0"
            assert route.get("prefsrc") != str(ipaddress.ip_network(node.pod_cidr)[1])
        # The node's own routing table does hold the pod CIDR, on its bridge.
        node_routes = node.run(["ip", "-j", "route", "get", ip]).stdout
        assert json.loads(node_routes)[0]["dev"] == "cni0"
    finally:
        node.client.stop_pod_sandbox(sandbox_id)
        node.client.remove_pod_sandbox(sandbox_id)


def test_host_port_reaches_the_container_from_the_node(node, tmp_path):
    sandbox_id, ip = run_web_pod(node, "hp", tmp_path / "logs", host_port=HOST_PORT)
    try:
        gateway = str(ipaddress.ip_network(node.pod_cidr)[1])      # the node's cni0 address
        for host in (gateway, "127.0.0.1"):
            body = eventually(lambda h=host: http_get(node.netns_path, (h, HOST_PORT)), 20,
                              f"hostPort {HOST_PORT} on {host} inside the node")
            assert body.strip() == "hello-hp"
    finally:
        node.client.stop_pod_sandbox(sandbox_id)
        node.client.remove_pod_sandbox(sandbox_id)
    assert eventually(lambda: http_get(node.netns_path, (gateway, HOST_PORT)) is None, 10,
                      "the hostPort to close with its pod")


def test_streaming_server_listens_inside_the_node(node, tmp_path):
    sandbox_id, _ = run_web_pod(node, "exec", tmp_path / "logs")
    try:
        container_id = node.client.list_containers(sandbox_id=sandbox_id)[0].id
        url = urllib.parse.urlsplit(node.client.exec(container_id, ["true"]))
        assert (url.hostname, url.port) == ("127.0.0.1", STREAM_PORT)
        with node.connect((url.hostname, url.port)):
            pass
    finally:
        node.client.stop_pod_sandbox(sandbox_id)
        node.client.remove_pod_sandbox(sandbox_id)


def test_check_runtime_names_containerd(node, tmp_path):
    assert provision.check_runtime(node.endpoint).startswith("containerd://1.")
    missing = f"unix://{tmp_path}/none.sock"
    with pytest.raises(provision.ContainerdError, match="containerd is not running at"):
        provision.check_runtime(missing)


def root_network_state():
    """The root namespace's IPv4 addresses and main routing table."""
    def ip(*argv):
        return subprocess.run(["ip", *argv], capture_output=True, text=True,
                              check=True).stdout
    return ip("-o", "-4", "addr", "show"), ip("-4", "route", "show")


def leftovers(handle, pod_pids, task_ids):
    """What of ``handle``'s containerd still exists (empty when it is all gone).

    ``task_ids`` are the pod's sandbox and container ids: the shim sockets and CNI
    cache entries outside the node's directory are named after them.
    """
    found = []
    if not cleanup.gone(handle.pid):
        found.append(f"containerd {handle.pid}")
    found += [f"shim {pid}" for pid in cleanup.shim_pids(handle.socket)]
    found += [f"container process {pid}" for pid in pod_pids if not cleanup.gone(pid)]
    found += [f"mount {point}" for point, _ in cleanup.mounts()
              if point.startswith(handle.paths.node_dir + "/")]
    found += [f"cgroup {h}{handle.paths.cgroup_parent}" for h in cleanup.cgroup_hierarchies()
              if os.path.exists(h + handle.paths.cgroup_parent)]
    if os.path.exists(handle.netns_path):
        found.append(f"netns {handle.netns}")
    ipam = os.path.join(handle.paths.ipam_dir, handle.paths.network_name)
    found += [f"pod IP reservation {name}" for name in _listdir(ipam) if _is_ip(name)]
    for task in task_ids:
        digest = hashlib.sha256(f"{handle.socket}/k8s.io/{task}".encode()).hexdigest()
        if os.path.exists(os.path.join(cleanup.SHIM_SOCKETS, digest)):
            found.append(f"shim socket of {task}")
        found += [f"CNI cache {name}" for name in _listdir(cleanup.CNI_RESULTS) if task in name]
    return found


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _listdir(path):
    return os.listdir(path) if os.path.isdir(path) else []


def pod_processes(handle):
    """Pids of every process below this containerd's shims (the containers)."""
    return cleanup.descendants(cleanup.shim_pids(handle.socket))


@pytest.mark.parametrize("containerd_dies_first", [False, True],
                         ids=["graceful", "containerd-sigkilled"])
def test_stop_leaves_nothing_behind(tmp_path, containerd_dies_first):
    before = root_network_state()
    with running_containerd(tmp_path, pod_cidr="10.244.8.0/24") as handle:
        sandbox_id, ip = run_web_pod(handle, "gone", tmp_path / "logs", host_port=HOST_PORT)
        eventually(lambda: http_get(handle.netns_path, (ip, HTTP_PORT)), 20, "the pod serving")
        pids = pod_processes(handle)
        task_ids = {sandbox_id, *(c.id for c in handle.client.list_containers())}
        assert pids, "the pod's processes run below this containerd's shim"
        if containerd_dies_first:
            # As after a crash: the shim, pod, mounts and cgroups outlive containerd.
            os.kill(handle.pid, signal.SIGKILL)
            eventually(lambda: cleanup.gone(handle.pid), 10, "containerd to die")
            assert cleanup.shim_pids(handle.socket)
    deadline = time.monotonic() + 10    # a zombie waits for init; it counts as gone
    while leftovers(handle, pids, task_ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(handle, pids, task_ids) == []
    assert handle.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                              text=True).stdout
    assert root_network_state() == before


def test_a_containerd_that_cannot_start_says_where_its_log_is(tmp_path):
    paths = provision.write_config(tmp_path / "bad", pod_cidr="10.244.7.0/24",
                                   stream_port=STREAM_PORT, sandbox_image="p")
    with open(paths.config, "w") as f:
        f.write("version = [broken\n")
    pid = None
    try:
        with pytest.raises(provision.ContainerdError, match=paths.log_path):
            pid = provision.start_containerd(paths)
            provision.wait_ready(paths.endpoint, timeout=30, pid=pid, log_path=paths.log_path)
    finally:
        if pid is not None:
            provision.stop_containerd(paths, pid)
