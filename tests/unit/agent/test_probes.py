"""Probe scheduling and thresholds with Kubernetes' defaults."""

import pytest

from agent.probes import ProbeState, port_of


def test_defaults_and_initial_results():
    state = ProbeState("readiness", {"exec": {"command": ["true"]}}, 100.0)
    assert (state.period, state.timeout, state.success_threshold, state.failure_threshold) == \
        (10, 1, 1, 3)
    assert state.due(100.0) and state.result is False
    assert ProbeState("liveness", {}, 0).result is True
    assert ProbeState("startup", {}, 0).result is None


def test_initial_delay_and_period():
    state = ProbeState("liveness", {"initialDelaySeconds": 5, "periodSeconds": 2}, 100.0)
    assert not state.due(104.9) and state.due(105.0)
    state.record(True, 105.0)
    assert not state.due(106.9) and state.due(107.0)


def test_failure_threshold_needs_consecutive_failures():
    state = ProbeState("liveness", {"failureThreshold": 3}, 0.0)
    assert not state.record(False, 0) and not state.record(False, 10)
    assert state.result is True
    state.record(True, 20)                       # a success resets the count
    state.record(False, 30)
    state.record(False, 40)
    assert state.result is True
    assert state.record(False, 50) and state.result is False


def test_success_threshold_for_readiness():
    state = ProbeState("readiness", {"successThreshold": 2}, 0.0)
    assert not state.record(True, 0) and state.result is False
    assert state.record(True, 10) and state.result is True
    assert not state.record(False, 20) and state.result is True


def test_named_ports():
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert port_of("http", container) == 8080 and port_of(81, container) == 81
    assert port_of("82", container) == 82
    with pytest.raises(ValueError):
        port_of("nope", container)


class _Runtime:
    netns_path = None       # probes connect from this namespace

    def exec(self, container_id, command, timeout):
        return (0, "fine") if command == ["true"] else (1, "bad")


def _serve(status):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("status, ok", [(200, True), (302, True), (500, False)])
def test_http_and_tcp_probes_against_the_pod_ip(status, ok):
    from agent.probes import Prober
    from agent.runtime.base import Record
    server = _serve(status)
    try:
        port = server.server_address[1]
        container = {"name": "c", "ports": [{"name": "web", "containerPort": port}]}
        record = Record("id", "uid", "c", 0)
        prober = Prober(_Runtime())
        http_probe = ProbeState("readiness", {"httpGet": {"port": "web", "path": "/"}}, 0)
        assert prober.run(http_probe, record, container, "127.0.0.1")[0] is ok
        tcp = ProbeState("liveness", {"tcpSocket": {"port": port}}, 0)
        assert prober.run(tcp, record, container, "127.0.0.1") == (True, "")
        assert prober.run(ProbeState("liveness", {"exec": {"command": ["true"]}}, 0), record,
                          container, "127.0.0.1")[0]
    finally:
        server.shutdown()
        server.server_close()
