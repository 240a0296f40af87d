"""Find and remove what a stopped containerd leaves behind: pods, shims, mounts, cgroups.

Processes are found by what identifies them as this containerd's (a shim's
``-address`` names our socket; containers descend from our shims) and signalled by
pid, never by name, so other containerds on the machine are left alone.
"""

import ctypes
import ctypes.util
import hashlib
import logging
import os
import re
import signal
import time

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
CNI_RESULTS = "/var/lib/cni/results"
SHIM_SOCKETS = "/run/containerd/s"
MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def remove_pods(client, endpoint):
    """Stop and remove every pod sandbox (and so its containers) through CRI."""
    from agent.runtime.cri.client import CriClient, CriError

    own = client is None
    client = client or CriClient(endpoint, timeout=30)
    try:
        sandboxes = client.list_pod_sandbox()
    except CriError as exc:
        log.warning("msg=cannot list pod sandboxes, skipping their removal endpoint=%s "
                    "error=%s", endpoint, exc)
        sandboxes = []
    try:
        for sandbox in sandboxes:
            try:
                client.stop_pod_sandbox(sandbox.id)
                client.remove_pod_sandbox(sandbox.id)
            except CriError as exc:
                log.warning("msg=cannot remove pod sandbox id=%s error=%s", sandbox.id, exc)
    finally:
        if own:
            client.close()


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [arg.decode(errors="replace") for arg in f.read().split(b"\0") if arg]
    except OSError:
        return []


def _pids():
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def shim_pids(socket_path):
    """Pids of the containerd shims started by the containerd serving ``socket_path``."""
    found = set()
    for pid in _pids():
        argv = _cmdline(pid)
        if not argv or not os.path.basename(argv[0]).startswith("containerd-shim"):
            continue
        for flag, value in zip(argv, argv[1:]):
            if flag in ("-address", "--address") and value == socket_path:
                found.add(pid)
    return found


def _state_and_parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None, None


def descendants(roots):
    """Every live process below the pids ``roots`` (not the roots themselves)."""
    children = {}
    for pid in _pids():
        state, parent = _state_and_parent(pid)
        if parent is not None and state != "Z":
            children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def gone(pid):
    """True if ``pid`` has exited (a zombie counts: it runs no more)."""
    state, _ = _state_and_parent(pid)
    return state is None or state == "Z"


def wait_gone(pids, timeout, reap=None):
    """Wait up to ``timeout`` s for every pid to exit; True if they all did."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids:
            if reap is not None:
                reap(pid)
        if all(gone(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _kill(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_shims(shims, timeout=10.0):
    """SIGKILL the shims ``shims`` and every process below them (their containers)."""
    shims = {pid for pid in shims if not gone(pid)}
    if not shims:
        return
    containers = descendants(shims)
    log.warning("msg=killing leftover shims and their containers shims=%s containers=%s",
                sorted(shims), sorted(containers))
    _kill(containers, signal.SIGKILL)
    wait_gone(containers, timeout)
    _kill(shims, signal.SIGKILL)
    if not wait_gone(shims, timeout):
        log.warning("msg=shims still running after SIGKILL pids=%s", sorted(shims))


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts():
    """(mount point, filesystem type) of every mount this process sees."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            found.append((_unescape(fields[4]), fstype))
    return found


def unmount_under(*directories):
    """Lazily unmount everything mounted at or below ``directories``, deepest first.

    Pod network namespaces (bind mounts of nsfs), container rootfs (overlay) and shm
    mounts stay mounted when containerd dies with pods still running.
    """
    prefixes = [os.path.abspath(d) for d in directories]
    points = [point for point, _ in mounts()
              if any(point == p or point.startswith(p + "/") for p in prefixes)]
    for point in sorted(set(points), key=len, reverse=True):
        if _libc.umount2(os.fsencode(point), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            log.warning("msg=cannot unmount path=%s error=%s", point, os.strerror(err))
        elif os.path.isfile(point):
            _remove_file(point)     # a pod netns file: empty once unmounted


def _remove_file(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def cgroup_hierarchies(root=CGROUP_ROOT):
    """Mount points of the cgroup (v1 and v2) hierarchies under ``root``."""
    return sorted({point for point, fstype in mounts()
                   if fstype in ("cgroup", "cgroup2") and point.startswith(root)})


def remove_cgroups(parent, root=CGROUP_ROOT):
    """rmdir the empty cgroup directories at and below ``parent`` in every hierarchy.

    runc leaves pod and container cgroups behind on cgroupfs. A directory that still
    has processes is kept and reported. The parent's own parent ("/steer") goes too
    once empty.
    """
    relative = parent.strip("/")
    for hierarchy in cgroup_hierarchies(root):
        top = os.path.join(hierarchy, relative)
        if not os.path.isdir(top):
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda e: len(e[0]), reverse=True):
            _rmdir_cgroup(directory)
        _rmdir_cgroup(os.path.dirname(top), quiet=True)


def _rmdir_cgroup(directory, quiet=False):
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError as exc:
        if not quiet:
            log.warning("msg=cgroup not removed path=%s error=%s procs=%s", directory,
                        exc.strerror, _cgroup_procs(directory))


def _cgroup_procs(directory):
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return f.read().split()
    except OSError:
        return []


def task_ids(state_dir, root_dir):
    """(namespace, id) of every task and pod sandbox containerd still has on disk.

    A containerd that stopped cleanly removed them; after a crash they name what its
    shims and CNI left outside the node's directory.
    """
    found = set()
    tasks = os.path.join(state_dir, "io.containerd.runtime.v2.task")
    for namespace in _listdir(tasks):
        found.update((namespace, task) for task in _listdir(os.path.join(tasks, namespace)))
    for base in (state_dir, root_dir):
        sandboxes = os.path.join(base, "io.containerd.grpc.v1.cri", "sandboxes")
        found.update(("k8s.io", sandbox) for sandbox in _listdir(sandboxes))
    return found


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def remove_shim_sockets(socket_path, ids, socket_dir=SHIM_SOCKETS):
    """Delete the sockets of dead shims: /run/containerd/s/<sha256(address/ns/id)>.

    containerd 1.6 puts them there whatever its state dir; a killed shim leaves its own.
    """
    for namespace, task in ids:
        name = hashlib.sha256(f"{socket_path}/{namespace}/{task}".encode()).hexdigest()
        _remove_file(os.path.join(socket_dir, name))


def remove_cni_cache(ids, results_dir=CNI_RESULTS):
    """Delete libcni's cached results for the sandboxes ``ids`` (entries named
    "<network>-<sandbox id>-<ifname>", kept in /var/lib/cni whatever the config says)."""
    sandboxes = {task for _, task in ids}
    for name in _listdir(results_dir):
        parts = name.split("-")
        if any(part in sandboxes for part in parts):
            _remove_file(os.path.join(results_dir, name))


def release_addresses(ipam_dir, ids):
    """Free host-local's reservations held by the sandboxes ``ids`` (a file per IP whose
    first line is the sandbox id), so a restarted node does not leak pod IPs."""
    sandboxes = {task for _, task in ids}
    for network in _listdir(ipam_dir):
        directory = os.path.join(ipam_dir, network)
        for name in _listdir(directory):
            path = os.path.join(directory, name)
            try:
                with open(path) as f:
                    owner = f.readline().strip()
            except (OSError, UnicodeDecodeError):
                continue
            if owner in sandboxes:
                _remove_file(path)
