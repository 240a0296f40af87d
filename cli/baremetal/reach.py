"""Reach the hosts: directly, or from inside a network namespace (`--via-netns PATH`).

Real hosts are dialled from this machine's own namespace. The simulated test hosts
(tests/support/hosts.py) sit on a LAN that exists only inside a network namespace,
and this machine's namespace gets no address or route there; so with ``netns_path``
every socket to a host is made inside that namespace (``setns(2)`` on a short-lived
thread: it moves only that thread, and the socket stays bound to the namespace it
was made in). SSH gets such a socket (paramiko's ``sock=``); clients that dial by
address themselves (the store client, HTTPS to an API server) get a forwarder in
this process: a listening socket on 127.0.0.1 relaying each connection to the host.
Certificates of the store members and API servers carry 127.0.0.1 for that reason.
"""

import ctypes
import ctypes.util
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
CHUNK = 64 * 1024


def _setns(netns_path):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot enter the network namespace {netns_path}: "
                               f"{os.strerror(err)} (--via-netns needs root)")
    finally:
        os.close(fd)


def connect_in(netns_path, address, timeout):
    """A TCP socket connected to ``address`` from inside ``netns_path`` (None: here)."""
    if netns_path is None:
        return socket.create_connection(address, timeout=timeout)
    if not os.path.exists(netns_path):
        raise FileNotFoundError(f"--via-netns {netns_path}: no such network namespace")
    outcome = {}

    def body():
        try:
            _setns(netns_path)
            outcome["sock"] = socket.create_connection(address, timeout=timeout)
        except BaseException as exc:        # handed to the caller's thread
            outcome["error"] = exc

    # A fresh thread per socket: it ends inside the namespace, so none is reused.
    thread = threading.Thread(target=body, name="netns-connect", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["sock"]


class Reach:
    """How this process reaches host addresses; ``close()`` ends its forwarders."""

    def __init__(self, netns_path=None, timeout=10.0):
        self.netns_path = netns_path
        self.timeout = timeout
        self._forwarders = {}
        self._lock = threading.Lock()

    def ssh_sock(self, host, port=22):
        """A socket for paramiko, or None to let it dial itself."""
        if self.netns_path is None:
            return None
        return connect_in(self.netns_path, (host, port), self.timeout)

    def address(self, host, port):
        """(host, port) to dial for ``host:port``: itself, or a local forwarder to it."""
        if self.netns_path is None:
            return host, port
        with self._lock:
            if (host, port) not in self._forwarders:
                self._forwarders[(host, port)] = _Forwarder(self.netns_path, (host, port),
                                                            self.timeout)
            return "127.0.0.1", self._forwarders[(host, port)].port

    def endpoint(self, host, port):
        """``address`` as the "host:port" text the store client takes."""
        return "%s:%d" % self.address(host, port)

    def close(self):
        with self._lock:
            for forwarder in self._forwarders.values():
                forwarder.close()
            self._forwarders.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Forwarder:
    """Listen on 127.0.0.1:<free>; relay each connection to ``target`` inside a namespace."""

    def __init__(self, netns_path, target, timeout):
        self.netns_path, self.target, self.timeout = netns_path, target, timeout
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, name=f"forward-{target[0]}:{target[1]}",
                         daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client):
        try:
            upstream = connect_in(self.netns_path, self.target, self.timeout)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        for sock in (client, upstream):
            sock.close()

    def close(self):
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()


def _pump(source, sink):
    """Copy until ``source`` ends, then pass the end on (half-close)."""
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:         # one side reset: end the other direction too
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
