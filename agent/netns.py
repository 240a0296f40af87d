"""Open sockets inside another network namespace (a node of the local cluster).

The agent runs in the root namespace but pod IPs and containerd's streaming server
exist only inside its node's namespace. ``setns(2)`` moves only the calling thread, so
each call here runs on a short-lived thread that enters the namespace, creates the
socket and ends; a socket stays bound to the namespace it was created in and can then
be used from any thread. Python 3.11 has no ``os.setns``, hence ctypes.
"""

import ctypes
import ctypes.util
import os
import socket
import subprocess
import sys
import threading

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.setns.argtypes = (ctypes.c_int, ctypes.c_int)
_libc.setns.restype = ctypes.c_int


def path_for(name):
    """The file of a namespace made with ``ip netns add NAME``."""
    return os.path.join("/run/netns", name)


def _enter(netns_path):
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter network namespace {netns_path}: "
                               f"{os.strerror(err)} (entering one needs root)")
    finally:
        os.close(fd)


def _green_threads():
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


def run_in(netns_path, fn):
    """Call ``fn()`` inside the network namespace at ``netns_path`` and return its result.

    ``None`` means the caller's own namespace. Exceptions from ``fn`` are re-raised here.
    Whatever ``fn`` creates (sockets) stays in that namespace; ``fn`` must not block
    for long, since the calling thread waits for it.
    """
    if netns_path is None:
        return fn()
    if not os.path.exists(netns_path):
        raise FileNotFoundError(f"network namespace {netns_path} does not exist "
                                "(is the node running?)")
    if _green_threads():
        # There a "thread" is a greenlet on the calling OS thread: setns would move it.
        raise RuntimeError("agent.netns cannot enter a namespace under gevent's monkey "
                           "patching (its threads are greenlets); use real threads")
    outcome = {}

    def body():
        try:
            _enter(netns_path)
            outcome["value"] = fn()
        except BaseException as exc:    # handed to the caller's thread
            outcome["error"] = exc

    # A fresh thread for every call: it dies in the namespace it entered, so no
    # pooled thread can be reused in the wrong one.
    thread = threading.Thread(target=body, name="netns-enter", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def connect(netns_path, address, timeout=None):
    """Return a TCP socket connected to ``address`` (host, port) from inside the namespace."""
    if timeout is None:
        return run_in(netns_path, lambda: socket.create_connection(address))
    return run_in(netns_path, lambda: socket.create_connection(address, timeout=timeout))


def listen(netns_path, address, backlog=16):
    """Return a TCP socket listening on ``address`` (host, port) inside the namespace."""
    def make():
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock
    return run_in(netns_path, make)


def add(name):
    """Create the namespace ``name`` with its loopback up; return its path.

    A new namespace starts with ``lo`` down, so even 127.0.0.1 would be unreachable.
    """
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True,
                       capture_output=True)
    except subprocess.CalledProcessError:
        delete(name)
        raise
    return path_for(name)


def delete(name):
    """Remove the namespace ``name``; a namespace already gone is not an error."""
    if os.path.exists(path_for(name)):
        subprocess.run(["ip", "netns", "delete", name], check=False, capture_output=True)
