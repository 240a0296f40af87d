"""In-flight limits (429 with Retry-After) and the Prometheus /metrics page."""

import json
import threading
import time

import falcon.testing
import pytest

from control.api.app import create_app
from tests.support.fake_store import FakeStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class BlockingStore(FakeStore):
    """A store whose reads and writes of keys ending in ``blocker`` wait for ``release``."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def _hold(self, key):
        if key.endswith(b"/blocker"):
            self.entered.release()
            assert self.release.wait(10)

    def get(self, key, *args, **kwargs):
        self._hold(key)
        return super().get(key, *args, **kwargs)

    def txn(self, compare=(), success=(), failure=(), timeout=None):
        for op in success:
            self._hold(op["key"])
        return super().txn(compare, success, failure, timeout)


@pytest.fixture
def store():
    blocking = BlockingStore()
    yield blocking
    blocking.release.set()


def start_blocked(client, method, url, store, **kwargs):
    """Run a request that waits inside the store; return its thread once it is there."""
    results = []
    thread = threading.Thread(target=lambda: results.append(
        client.simulate_request(method, url, **kwargs)))
    thread.start()
    assert store.entered.acquire(timeout=10)
    return thread, results


def test_read_only_limit_answers_429_with_retry_after(store):
    client = falcon.testing.TestClient(create_app(store, max_requests_inflight=1))
    thread, results = start_blocked(client, "GET", f"{CONFIGMAPS}/blocker", store)
    refused = client.simulate_get(CONFIGMAPS)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json["reason"] == "TooManyRequests"
    assert refused.json["details"] == {"retryAfterSeconds": 1}
    # Mutating requests have their own budget; watches are not counted at all.
    assert client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "a"}}).status_code == 201
    watched = client.simulate_get(CONFIGMAPS, params={"watch": "true", "timeoutSeconds": "1"})
    assert watched.status_code == 200
    store.release.set()
    thread.join(10)
    assert results[0].status_code == 404
    assert client.simulate_get(CONFIGMAPS).status_code == 200


def test_mutating_limit(store):
    client = falcon.testing.TestClient(create_app(store, max_mutating_requests_inflight=1))
    thread, results = start_blocked(client, "POST", CONFIGMAPS, store,
                                    json={"metadata": {"name": "blocker"}})
    refused = client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "other"}})
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert client.simulate_get(CONFIGMAPS).status_code == 200
    metrics = client.simulate_get("/metrics").text
    assert 'apiserver_current_inflight_requests{request_kind="mutating"} 1' in metrics
    store.release.set()
    thread.join(10)
    assert results[0].status_code == 201
    assert client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "other"}}).status_code \
        == 201


def samples(text):
    """Parse Prometheus text into {series: value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def test_metrics_count_requests_durations_and_watchers():
    app = create_app(FakeStore())
    client = falcon.testing.TestClient(app)
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "a"}})
    client.simulate_get(CONFIGMAPS)
    client.simulate_get(f"{CONFIGMAPS}/a")
    client.simulate_get(f"{CONFIGMAPS}/missing")
    client.simulate_delete(f"{CONFIGMAPS}/a")
    client.simulate_get("/api/v1/namespaces/default/status")
    # An open watch, read one event at a time from the WSGI iterable.
    rv = client.simulate_get(CONFIGMAPS).json["metadata"]["resourceVersion"]
    environ = falcon.testing.create_environ(
        CONFIGMAPS, query_string=f"watch=true&timeoutSeconds=5&resourceVersion={rv}")
    body = app(environ, lambda status, headers: None)
    events = (chunk for chunk in body if chunk)
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "b"}})
    assert json.loads(next(events))["type"] == "ADDED"
    response = client.simulate_get("/metrics")
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    base = 'group="",resource="configmaps",subresource=""'
    assert found[f'apiserver_request_total{{verb="POST",{base},code="201"}}'] == 2
    assert found[f'apiserver_request_total{{verb="LIST",{base},code="200"}}'] == 2
    assert found[f'apiserver_request_total{{verb="GET",{base},code="200"}}'] == 1
    assert found[f'apiserver_request_total{{verb="GET",{base},code="404"}}'] == 1
    assert found[f'apiserver_request_total{{verb="DELETE",{base},code="200"}}'] == 1
    assert found[f'apiserver_request_total{{verb="WATCH",{base},code="200"}}'] == 1
    assert found['apiserver_request_total{verb="GET",group="",resource="namespaces",'
                 'subresource="status",code="200"}'] == 1
    count = f'apiserver_request_duration_seconds_count{{verb="POST",{base}}}'
    inf = f'apiserver_request_duration_seconds_bucket{{verb="POST",{base},le="+Inf"}}'
    assert found[count] == found[inf] == 2
    assert f'apiserver_request_duration_seconds_count{{verb="WATCH",{base}}}' not in found
    assert found['apiserver_registered_watchers{group="",resource="configmaps"}'] == 1
    assert found['apiserver_current_inflight_requests{request_kind="readOnly"}'] == 1
    body.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = samples(client.simulate_get("/metrics").text)
        if found['apiserver_registered_watchers{group="",resource="configmaps"}'] == 0:
            break
        time.sleep(0.05)
    assert found['apiserver_registered_watchers{group="",resource="configmaps"}'] == 0
