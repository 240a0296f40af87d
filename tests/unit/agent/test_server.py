"""The agent's HTTP port: auth, 404s, and the log options the API server forwards."""

import threading
import urllib.error
import urllib.request

import pytest

from agent.logs import LogWriter
from agent.server import AgentServer


@pytest.fixture
def served(tmp_path):
    writer = LogWriter(str(tmp_path / "0.log"), clock_ns=lambda: 1_700_000_000 * 10**9)
    for n in range(3):
        writer.write("stdout", f"line{n}".encode())
    running = threading.Event()

    def find(namespace, pod, container, previous):
        if (namespace, pod, container) != ("default", "web", "c"):
            raise LookupError("no such container")
        return writer.path, running.is_set
    server = AgentServer("127.0.0.1", 0, find, token="s3cret").start()
    yield server, writer, running
    server.stop()


def get(server, path, token="s3cret"):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def test_healthz_needs_no_token(served):
    assert get(served[0], "/healthz", token=None).strip() == "ok"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_logs_need_the_token(served, token):
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served[0], "/containerLogs/default/web/c", token=token)
    assert err.value.code == 401


def test_unknown_container_and_bad_options(served):
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served[0], "/containerLogs/default/web/nope")
    assert err.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as err:
        get(served[0], "/containerLogs/default/web/c?tailLines=abc")
    assert err.value.code == 400


@pytest.mark.parametrize("query, expected", [
    ("", "line0\nline1\nline2\n"),
    ("?tailLines=1", "line2\n"),
    ("?limitBytes=3", "lin"),
    ("?tailLines=1&timestamps=true", "2023-11-14T22:13:20.000000000Z line2\n")])
def test_log_options(served, query, expected):
    assert get(served[0], "/containerLogs/default/web/c" + query) == expected


def test_follow_streams_until_the_container_exits(served):
    server, writer, running = served
    running.set()
    url = f"http://127.0.0.1:{server.port}/containerLogs/default/web/c?follow=true&tailLines=0"
    request = urllib.request.Request(url, headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(request, timeout=10) as response:
        writer.write("stdout", b"live")
        assert response.read1(100) == b"live\n"
        running.clear()
        assert response.read() == b""


def test_metrics(tmp_path):
    server = AgentServer("127.0.0.1", 0, lambda *a: None,
                         metrics=lambda: "steer_agent_pods 3\n").start()
    try:
        assert get(server, "/metrics", token=None) == "steer_agent_pods 3\n"
    finally:
        server.stop()
