"""The request timeout on a real server: a request stuck on a stalled store gets 504.

The store's three members are stopped (SIGSTOP) so that a read waits on them; the
API server answers 504 with a Timeout Status after --request-timeout (or the
client's shorter ?timeout=), and once the store runs again the next request is
served by the same worker.
"""

import os
import signal
import time

SERVER_ARGS = ["--request-timeout", "3s"]
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _signal_store(server, sig):
    for node in server.store.nodes:
        if node.pid:
            os.kill(node.pid, sig)


def _wait_served(raw, path, deadline=60):
    end = time.monotonic() + deadline
    while True:
        answer = raw.request("GET", path)
        if answer.status == 200 or time.monotonic() > end:
            return answer


def test_request_on_stalled_store_gets_504_then_the_next_is_served(server, raw):
    assert raw.request("POST", CONFIGMAPS, {"metadata": {"name": "timed"}}).status == 201
    _signal_store(server, signal.SIGSTOP)
    try:
        answer = raw.request("GET", f"{CONFIGMAPS}/timed")
        assert answer.status == 504, answer
        assert answer.json["kind"] == "Status" and answer.json["reason"] == "Timeout"
        assert answer.json["message"] == \
            "Timeout: request did not complete within the allotted timeout"
        shorter = raw.request("GET", f"{CONFIGMAPS}/timed?timeout=500ms")
        assert shorter.status == 504, shorter
        assert shorter.json["reason"] == "Timeout"
    finally:
        _signal_store(server, signal.SIGCONT)
    assert _wait_served(raw, f"{CONFIGMAPS}/timed").status == 200


def test_malformed_timeout_parameter_is_400(server, raw):
    answer = raw.request("GET", f"{CONFIGMAPS}?timeout=forever")
    assert answer.status == 400
    assert "invalid timeout specified in the request URL" in answer.json["message"]
    assert raw.request("GET", CONFIGMAPS).status == 200


def test_watch_outlives_the_request_timeout(server, raw):
    # A watch is long-running: it ends at its own timeoutSeconds, after the 3 s.
    answer = raw.request("GET", f"{CONFIGMAPS}?watch=true&timeoutSeconds=5")
    assert answer.status == 200
    assert b"Timeout" not in answer.body
