"""A door into a network namespace: forward a port of this namespace to an address in another.

    python -m agent.netns_door --listen 127.0.0.1:5000 --netns /run/netns/st-ab12cd-lan \
        --to 172.31.250.254:5000

A local cluster's registry listens inside the cluster's LAN namespace, where the
nodes reach it; this door lets the user's own tools (skopeo, docker push) reach it
on 127.0.0.1 without any address or route of the cluster appearing in this
machine's namespace. Each accepted connection gets an upstream socket made inside
the namespace (agent/netns.py) and bytes are copied both ways until each side has
closed its half.

The other way round (``--listen-netns``): the socket listens inside a namespace
and each connection goes to an address of this one. A local cluster's pods reach
the API server so: it stays on this machine's 127.0.0.1, and the door listens on
the LAN's gateway address (172.31.250.254:6443), the endpoint of the
``default/kubernetes`` Service. Bytes are copied untouched (TLS end to end).

    python -m agent.netns_door --listen-netns /run/netns/st-ab12cd-lan \
        --listen 172.31.250.254:6443 --to 127.0.0.1:34567
"""

import argparse
import asyncio
import logging
import signal

from agent import netns

log = logging.getLogger("steer.door")
CHUNK = 64 * 1024


def parse_address(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


async def _pipe(reader, writer):
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def serve(listen, netns_path, target, connect_timeout=5.0, listen_netns=None):
    """Accept on ``listen`` (host, port); return the asyncio server.

    ``netns_path`` is where ``target`` is connected from and ``listen_netns`` where
    ``listen`` is bound (None: this process's namespace, for either).
    """
    loop = asyncio.get_running_loop()

    async def handle(reader, writer):
        try:
            sock = await loop.run_in_executor(None, netns.connect, netns_path, target,
                                              connect_timeout)
        except OSError as exc:
            log.info("target=%s:%d msg=cannot connect inside the namespace: %s", *target, exc)
            writer.close()
            return
        sock.setblocking(False)
        up_reader, up_writer = await asyncio.open_connection(sock=sock)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    if listen_netns is None:
        return await asyncio.start_server(handle, *listen, reuse_address=True)
    sock = await loop.run_in_executor(None, netns.listen, listen_netns, listen, 128)
    sock.setblocking(False)
    return await asyncio.start_server(handle, sock=sock)


async def _main(args):
    server = await serve(args.listen, args.netns, args.to, listen_netns=args.listen_netns)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listen=%s:%d listen_netns=%s netns=%s to=%s:%d msg=door open", *args.listen,
             args.listen_netns, args.netns, *args.to)
    await stop.wait()
    server.close()


def main(argv=None):
    p = argparse.ArgumentParser(prog="steer-door", description=__doc__.split("\n")[0])
    p.add_argument("--listen", type=parse_address, required=True, help="HOST:PORT here")
    p.add_argument("--netns", help="the namespace --to is reached in (/run/netns/NAME; "
                   "default: this one)")
    p.add_argument("--listen-netns", help="the namespace --listen is bound in (default: this one)")
    p.add_argument("--to", type=parse_address, required=True,
                   help="HOST:PORT to connect to")
    args = p.parse_args(argv)
    if not (args.netns or args.listen_netns):
        p.error("give --netns (connect inside a namespace) or --listen-netns (listen inside one)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
