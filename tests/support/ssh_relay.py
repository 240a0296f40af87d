"""Relay stdin/stdout to a TCP address inside a network namespace: an ssh ProxyCommand.

    ProxyCommand=python -m tests.support.ssh_relay /run/netns/sth-<bed>-lan %h %p

lets OpenSSH (and so Ansible) reach the simulated hosts, whose LAN has no address in
the root namespace. Ends when either side closes.
"""

import os
import selectors
import socket
import sys

from agent import netns


def relay(sock, stdin_fd=0, stdout_fd=1, chunk=65536):
    """Copy bytes both ways until the socket or stdin ends."""
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(stdin_fd, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                data = sock.recv(chunk)
                if not data:
                    return
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout_fd, view):]
            else:
                data = os.read(stdin_fd, chunk)
                if not data:
                    sock.shutdown(socket.SHUT_WR)
                    selector.unregister(stdin_fd)
                    continue
                sock.sendall(data)


def main(argv=None):
    netns_path, host, port = (argv or sys.argv[1:])[:3]
    try:
        sock = netns.connect(netns_path, (host, int(port)), timeout=10)
    except OSError as exc:
        sys.exit(f"ssh_relay: cannot reach {host}:{port} in {netns_path}: {exc}")
    sock.settimeout(None)
    with sock:
        relay(sock)


if __name__ == "__main__":
    main()
