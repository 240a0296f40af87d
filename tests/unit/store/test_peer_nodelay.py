"""Peer links turn Nagle's algorithm off on both ends.

Without TCP_NODELAY on the accepting side, a follower's forwarded command that
follows its ack waited for the leader's delayed ACK (~40 ms per forwarded write:
found by the store benchmark, 23 puts/s through a follower instead of ~450).
"""

import asyncio
import socket

from store.peer_transport import PeerLink, set_nodelay


def nodelay(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class StubNetwork:
    """What a PeerLink asks of its network while it connects."""

    def __init__(self):
        self.links = []

    def clock(self):
        return 0.0

    def link_made(self, link):
        self.links.append(link)


def test_a_link_the_peer_port_accepts_has_nodelay():
    async def scenario():
        network = StubNetwork()
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        server = await asyncio.get_running_loop().create_server(
            lambda: PeerLink(network), sock=listener)
        client = socket.create_connection(listener.getsockname())
        try:
            for _ in range(500):
                if network.links:
                    break
                await asyncio.sleep(0.01)
            return [nodelay(link.transport.get_extra_info("socket")) for link in network.links]
        finally:
            client.close()
            for link in network.links:
                link.transport.abort()
            server.close()

    assert asyncio.run(scenario()) == [1]


def test_set_nodelay_ignores_non_tcp_transports():
    class Transport:
        def get_extra_info(self, name):
            return None

    set_nodelay(Transport())
