"""`steer port-forward POD [LOCAL:]REMOTE...`: local TCP ports that reach ports of a pod.

Each accepted connection opens its own WebSocket to the pod's portforward subresource
(``?ports=REMOTE``, channel protocol v4, cli/channels.py): channel 0 carries the data,
channel 1 an error message; the first message on each channel starts with the port
(two bytes, little endian), which is dropped. Ends on Ctrl-C.
"""

import select
import socket
import sys
import threading

from cli import channels
from cli.errors import CommandError
from cli.exec_cmd import refusal_message
from cli.kube import Session, add_connection_flags

DATA, ERROR = 0, 1
CHUNK = 32 * 1024


def register(groups):
    p = groups.add_parser("port-forward", help="forward local ports to a pod's ports")
    add_connection_flags(p)
    p.add_argument("pod", metavar="POD")
    p.add_argument("ports", nargs="+", metavar="[LOCAL:]REMOTE",
                   help="LOCAL 0 or empty picks a free port")
    p.add_argument("--address", default="127.0.0.1", help="local address to listen on")
    p.set_defaults(func=cmd_port_forward)


def parse_port(text):
    """(local, remote) from LOCAL:REMOTE, :REMOTE or REMOTE (local = remote)."""
    local, sep, remote = text.rpartition(":")
    if not sep:
        local = remote
    for value in (local or "0", remote):
        if not value.isdigit() or int(value) > 65535:
            raise CommandError(f"invalid port {text!r}: want [LOCAL:]REMOTE, ports 1-65535")
    if int(remote) == 0:
        raise CommandError(f"invalid port {text!r}: the pod's port cannot be 0")
    return int(local or 0), int(remote)


def forward(stream, conn, remote, out=sys.stderr):
    """Copy one local connection to and from its WebSocket until either side ends.

    One loop for both directions: no two threads use the TLS socket at once.
    """
    seen = set()
    try:
        while True:
            ready = [stream.sock] if stream.buffered() else \
                select.select([conn, stream.sock], [], [])[0]
            if conn in ready:
                data = conn.recv(CHUNK)
                if not data:
                    return
                stream.send(DATA, data)
            if stream.sock in ready:
                message = stream.receive()
                if message is None:
                    return
                channel, data = message
                if channel not in seen:             # the port prefix of the channel
                    seen.add(channel)
                    data = data[2:]
                if channel == DATA and data:
                    conn.sendall(data)
                elif channel == ERROR and data:
                    print(f"error forwarding port {remote}: "
                          f"{data.decode('utf-8', 'replace')}", file=out)
    except (OSError, channels.ChannelError):
        pass
    finally:
        conn.close()
        stream.close()


def cmd_port_forward(args):
    pairs = [parse_port(text) for text in args.ports]
    session = Session(args)
    pods = session.resolve("pods")
    session.rest.get(pods, session.namespace, args.pod)         # a clear 404 first
    path = session.rest.path(pods, session.namespace, args.pod, "portforward")
    listeners = []
    for local, remote in pairs:
        try:
            listener = socket.create_server((args.address, local))
        except OSError as exc:
            raise CommandError(f"cannot listen on {args.address}:{local}: {exc}") from None
        listeners.append((listener, remote))
        print(f"Forwarding from {args.address}:{listener.getsockname()[1]} -> {remote}",
              flush=True)
    for listener, remote in listeners:
        threading.Thread(target=_accept, args=(session.rest, path, listener, remote),
                         daemon=True).start()
    try:
        threading.Event().wait()
    finally:
        for listener, _ in listeners:
            listener.close()


def _accept(rest, path, listener, remote):
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            stream = channels.connect(rest, f"{path}?ports={remote}")
        except (OSError, channels.ChannelError) as exc:
            text = refusal_message(exc) if isinstance(exc, channels.ChannelError) else exc
            print(f"error: cannot forward to port {remote}: {text}", file=sys.stderr)
            conn.close()
            continue
        threading.Thread(target=forward, args=(stream, conn, remote), daemon=True).start()
