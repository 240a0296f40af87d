"""The agent's streaming side: kubelet's paths and options, and asking CRI for the URL."""

import types

import pytest

from agent.streaming import StreamRefused, StreamServer, parse


@pytest.mark.parametrize("method, parts, query, expected", [
    ("POST", ["exec", "ns", "p", "c"], {"command": ["ls", "-l"], "output": ["1"]},
     ("exec", ("ns", "p", "c"), {"stdin": False, "stdout": True, "stderr": False,
                                 "tty": False, "cmd": ["ls", "-l"]})),
    ("GET", ["attach", "ns", "p", "c"], {"input": ["1"], "output": ["1"], "error": ["1"],
                                        "tty": ["1"]},
     ("attach", ("ns", "p", "c"), {"stdin": True, "stdout": True, "stderr": False,
                                   "tty": True})),
    ("POST", ["portForward", "ns", "p"], {}, ("portForward", ("ns", "p"), {"ports": []})),
    ("GET", ["portForward", "ns", "p"], {"port": ["80", "443"]},
     ("portForward", ("ns", "p"), {"ports": [80, 443]})),
])
def test_parse(method, parts, query, expected):
    assert parse(method, parts, query) == expected


@pytest.mark.parametrize("method, parts, query, code", [
    ("PUT", ["exec", "ns", "p", "c"], {"command": ["ls"]}, 405),
    ("POST", ["exec", "ns", "p"], {"command": ["ls"]}, 404),
    ("POST", ["portForward", "ns", "p", "c"], {}, 404),
    ("POST", ["exec", "ns", "p", "c"], {"output": ["1"]}, 400),
    ("POST", ["exec", "ns", "p", "c"], {"command": ["ls"]}, 400),     # no stream at all
    ("GET", ["portForward", "ns", "p"], {"port": ["http"]}, 400),
    ("GET", ["portForward", "ns", "p"], {"port": ["70000"]}, 400),
])
def test_parse_refusals(method, parts, query, code):
    with pytest.raises(StreamRefused) as caught:
        parse(method, parts, query)
    assert caught.value.code == code


class FakeCri:
    def __init__(self, error=None):
        self.error, self.calls = error, []

    def _answer(self, *call):
        self.calls.append(call)
        if self.error:
            raise self.error
        return "http://127.0.0.1:10010/x/token"

    def exec(self, cid, cmd, **flags):
        return self._answer("exec", cid, cmd, flags)

    def attach(self, cid, **flags):
        return self._answer("attach", cid, flags)

    def port_forward(self, sid, ports):
        return self._answer("portforward", sid, ports)


RECORD = types.SimpleNamespace(container_id="cid", sandbox_id="sid")


def test_stream_url_asks_cri_with_the_running_attempt():
    cri = FakeCri()
    server = StreamServer(lambda ns, pod, c: RECORD, cri)
    server.stream_url(*parse("POST", ["exec", "ns", "p", "c"],
                             {"command": ["id"], "input": ["1"], "output": ["1"]}))
    server.stream_url(*parse("POST", ["portForward", "ns", "p"], {}))
    assert cri.calls == [("exec", "cid", ["id"], {"stdin": True, "stdout": True,
                                                  "stderr": False, "tty": False}),
                         ("portforward", "sid", [])]


@pytest.mark.parametrize("find_error, cri_error, code", [
    (LookupError("container x is not valid for pod p"), None, 404),
    (ValueError('container "x" in pod "p" is not running'), None, 400),
    (None, RuntimeError("container is not running"), 500),
])
def test_stream_url_refusals(find_error, cri_error, code):
    def find(ns, pod, container):
        if find_error:
            raise find_error
        return RECORD
    server = StreamServer(find, FakeCri(cri_error))
    with pytest.raises(StreamRefused) as caught:
        server.stream_url(*parse("POST", ["attach", "ns", "p", "c"], {"output": ["1"]}))
    assert caught.value.code == code


def test_portforward_needs_a_sandbox():
    server = StreamServer(lambda *a: types.SimpleNamespace(container_id="c", sandbox_id=""),
                          FakeCri())
    with pytest.raises(StreamRefused, match="no sandbox"):
        server.stream_url(*parse("POST", ["portForward", "ns", "p"], {}))


def test_pod_manager_finds_the_running_attempt(tmp_path):
    from agent.kubelet import PodManager
    from control.client import RestClient
    from tests.unit.agent.fakes import Harness, make_pod

    h = Harness(make_pod(name="web"), tmp_path)
    pods = PodManager(RestClient("http://127.0.0.1:1"), h.ctx)
    pods.workers["default/web"] = h.worker
    with pytest.raises(ValueError, match='container "c" in pod "web" is not running'):
        pods.find_container("default", "web", "c")
    h.step()
    record = pods.find_container("default", "web", "c")
    assert record.running and record.container_id
    with pytest.raises(ValueError, match="no running container to forward ports to"):
        pods.find_container("default", "web", None)      # the fake runtime has no sandbox
    record.sandbox_id = "sandbox-1"
    assert pods.find_container("default", "web", None) is record
    with pytest.raises(LookupError, match="container nope is not valid for pod web"):
        pods.find_container("default", "web", "nope")
    with pytest.raises(LookupError, match="not on this node"):
        pods.find_container("default", "other", "c")
