"""agent/netns_door.py --listen-netns: a listener inside a namespace, the target out here."""

import asyncio
import os
import secrets
import shutil

import pytest

from agent import netns, netns_door

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="creating a network namespace needs root and iproute2 (`ip`)")


@pytest.fixture
def namespace():
    name = f"steer-t-{os.getpid()}-{secrets.token_hex(3)}"
    path = netns.add(name)
    try:
        yield path
    finally:
        netns.delete(name)
        assert not os.path.exists(path)


def test_a_client_inside_the_namespace_reaches_a_server_out_here(namespace):
    async def scenario():
        async def echo(reader, writer):
            writer.write(b"up:" + await reader.read(5))
            await writer.drain()
            writer.close()

        target = await asyncio.start_server(echo, "127.0.0.1", 0)
        target_port = target.sockets[0].getsockname()[1]
        door = await netns_door.serve(("127.0.0.1", 0), None, ("127.0.0.1", target_port),
                                      listen_netns=namespace)
        door_port = door.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(None, netns.connect, namespace,
                                          ("127.0.0.1", door_port), 5)
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"hello")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 5)
        writer.close()
        door.close()
        target.close()
        return answer, door_port

    answer, door_port = asyncio.run(scenario())
    assert answer == b"up:hello"


def test_the_door_does_not_listen_in_this_namespace(namespace):
    async def scenario():
        door = await netns_door.serve(("127.0.0.1", 0), None, ("127.0.0.1", 9),
                                      listen_netns=namespace)
        port = door.sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        except ConnectionRefusedError:
            return "refused"
        finally:
            door.close()
        return "connected"

    assert asyncio.run(scenario()) == "refused"


def test_the_command_line_wants_a_namespace():
    with pytest.raises(SystemExit):
        netns_door.main(["--listen", "127.0.0.1:1", "--to", "127.0.0.1:2"])
