"""Run one node's containerd (optionally inside the node's network namespace) and stop it.

containerd does not stop containers when it stops, and its shims, pod network
namespaces and cgroups outlive it, so stopping is a sequence: remove every pod through
CRI, stop containerd, kill what is left of this containerd (found by its socket, killed
by pid), then unmount and rmdir what the kernel still holds.
"""

import logging
import os
import shutil
import signal
import subprocess
import time

from agent.provision import cleanup
from agent.provision.containerd_config import (
    ContainerdPaths,
    node_cgroup_parent,
    write_config,
    write_registry_host,
)

__all__ = ["ContainerdError", "ContainerdPaths", "check_runtime", "node_cgroup_parent",
           "pod_cgroup_parent", "running_containers", "start_containerd", "stop_containerd",
           "wait_ready", "write_config", "write_registry_host"]

log = logging.getLogger(__name__)

INSTALL_HINT = "install the Debian packages containerd, runc and containernetworking-plugins"
_children = {}      # pid -> Popen of the containerds this process started (to reap them)


class ContainerdError(RuntimeError):
    """containerd is missing, would not start, or does not answer on its socket."""


def pod_cgroup_parent(node_name, pod_uid):
    """The cgroup_parent (cgroupfs path) of a pod's sandbox on ``node_name``."""
    if not pod_uid or "/" in pod_uid:
        raise ValueError(f"pod uid {pod_uid!r} cannot name a cgroup directory")
    return f"{node_cgroup_parent(node_name)}/pod{pod_uid}"


def containerd_binary():
    """The containerd executable, or a ContainerdError saying what to install."""
    path = shutil.which("containerd") or shutil.which("containerd", path="/usr/bin:/usr/sbin")
    if path is None:
        raise ContainerdError(f"containerd is not installed: {INSTALL_HINT}")
    return path


def start_containerd(paths, netns_path=None, log_path=None):
    """Start containerd with ``paths.config``, in the namespace at ``netns_path``; return its pid.

    ``nsenter --net`` execs containerd in place (no fork), so the pid is containerd's
    own and the mount namespace stays the host's: pod namespaces and rootfs mounts
    survive a containerd restart, as on a real host.
    """
    binary = containerd_binary()
    argv = [binary, "--config", paths.config]
    if netns_path is not None:
        if not os.path.exists(netns_path):
            raise ContainerdError(f"network namespace {netns_path} does not exist")
        argv = [shutil.which("nsenter") or "nsenter", f"--net={netns_path}", "--", *argv]
    log_path = log_path or paths.log_path
    env = dict(os.environ)
    # runc, the shim, the CNI plugins and iptables must be found from here.
    env["PATH"] = ":".join(dict.fromkeys(
        part for part in [*env.get("PATH", "").split(":"), "/usr/local/sbin",
                          "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] if part))
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                env=env, start_new_session=True, close_fds=True)
    finally:
        os.close(fd)
    _children[proc.pid] = proc
    deadline = time.monotonic() + 10
    while not _is_containerd(proc.pid, binary):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.returncode is None:     # stuck before exec: do not leave it behind
                proc.kill()
                proc.wait()
            _children.pop(proc.pid, None)
            raise ContainerdError(f"containerd did not start (exit {proc.returncode}): "
                                  f"{' '.join(argv)}; see {log_path}")
        time.sleep(0.01)
    log.info("msg=containerd started pid=%s socket=%s netns=%s", proc.pid, paths.socket,
             netns_path)
    return proc.pid


def wait_ready(endpoint, timeout=30.0, pid=None, log_path=None):
    """Wait until CRI Version answers at ``endpoint``; return the VersionResponse.

    With ``pid``, give up as soon as that containerd has exited, pointing at its log.
    """
    from agent.runtime.cri.client import CriClient, CriError

    deadline = time.monotonic() + timeout
    with CriClient(endpoint, timeout=2) as client:
        while True:
            if pid is not None and not _alive(pid):
                raise ContainerdError(f"containerd (pid {pid}) exited before it served "
                                      f"{endpoint}; see {log_path or 'its log'}")
            try:
                return client.wait_ready(timeout=min(1.0, max(0.05, deadline - time.monotonic())))
            except CriError as exc:
                if time.monotonic() >= deadline:
                    raise ContainerdError(f"containerd at {endpoint} did not answer CRI "
                                          f"within {timeout:g}s: {exc.details}") from None


def running_containers(endpoint):
    """How many containers run in the containerd at ``endpoint`` (None: it does not answer)."""
    from agent.runtime.cri import api_pb2
    from agent.runtime.cri.client import CriClient, CriError

    try:
        with CriClient(endpoint, timeout=2) as client:
            return len(client.list_containers(state=api_pb2.CONTAINER_RUNNING))
    except CriError:
        return None


def check_runtime(endpoint):
    """Return "containerd://1.6.20" for the CRI runtime at ``endpoint``, or say what is wrong."""
    from agent.runtime.cri.client import CriClient, CriError

    socket_path = endpoint[len("unix://"):] if endpoint.startswith("unix://") else None
    hint = (f"start it (containerd --config CONFIG, or `steer up` for a local cluster), "
            f"or {INSTALL_HINT}")
    if socket_path is not None and not os.path.exists(socket_path):
        raise ContainerdError(f"containerd is not running at {endpoint}: {hint}")
    try:
        with CriClient(endpoint, timeout=5) as client:
            response = client.check_version()
    except CriError as exc:
        raise ContainerdError(f"containerd is not answering at {endpoint} ({exc}): "
                              f"{hint}") from None
    version = response.runtime_version.removeprefix("v")
    return f"{response.runtime_name}://{version}"


def stop_containerd(paths, pid, client=None, timeout=10.0):
    """Stop the node's pods, its containerd (by ``pid``), its shims, and clean up after them.

    ``client`` (a CriClient) is used when given; otherwise one is made for the socket.
    Every step runs even when an earlier one failed: this is what a test teardown and
    `steer down` rely on to leave nothing behind.
    """
    steps = []
    if pid is not None and _alive(pid) and os.path.exists(paths.socket):
        steps.append(lambda: cleanup.remove_pods(client, paths.endpoint))
    if pid is not None:
        steps.append(lambda: _terminate(pid, timeout))
    # Shims outlive containerd; kill_shims takes their containers first, since a shim
    # killed before them would leave them running, re-parented.
    steps.append(lambda: cleanup.kill_shims(cleanup.shim_pids(paths.socket), timeout))
    steps.append(lambda: cleanup.unmount_under(paths.state, paths.root, paths.runc_root))
    steps.append(lambda: cleanup.remove_cgroups(paths.cgroup_parent))
    steps.append(lambda: _forget_tasks(paths))
    errors = []
    for step in steps:
        try:
            step()
        except Exception as exc:        # the next steps still clean up what they can
            log.exception("msg=containerd cleanup step failed socket=%s", paths.socket)
            errors.append(exc)
    if errors:
        raise ContainerdError(f"stopping containerd at {paths.endpoint} left something "
                              f"behind: {errors[0]}") from errors[0]


def _forget_tasks(paths):
    """Remove what a crashed containerd's tasks left outside its directory."""
    leftover = cleanup.task_ids(paths.state, paths.root)
    cleanup.remove_shim_sockets(paths.socket, leftover)
    cleanup.remove_cni_cache(leftover)
    cleanup.release_addresses(paths.ipam_dir, leftover)


def _terminate(pid, timeout):
    if not _is_containerd(pid):     # already gone: never signal a recycled pid
        _reap(pid)
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not cleanup.wait_gone([pid], timeout, reap=_reap):
        log.warning("msg=containerd ignored SIGTERM, killing it pid=%s", pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        cleanup.wait_gone([pid], timeout, reap=_reap)


def _reap(pid):
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _children.pop(pid, None)


def _alive(pid):
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _is_containerd(pid, binary=None):
    """True if ``pid`` is a containerd process (never signal a recycled pid)."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    if binary is not None:
        return exe == os.path.realpath(binary)
    return os.path.basename(exe) == "containerd"
