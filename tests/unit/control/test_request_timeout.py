"""The request timeout (timeouts.py): 504 Status for a request that outlives it."""

import falcon.testing
import gevent
import pytest

from control.api import timeouts
from control.api.app import create_app
from tests.support.fake_store import FakeStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class StallingStore(FakeStore):
    """A store whose reads of keys ending in ``/slow`` stall (a gevent sleep) for a minute."""

    def get(self, key, *args, **kwargs):
        if key.endswith(b"/slow"):
            gevent.sleep(60)
        return super().get(key, *args, **kwargs)


@pytest.fixture
def client(monkeypatch):
    # The worker's gevent is found at start; in this process nothing is monkey-patched.
    monkeypatch.setattr(timeouts, "_gevent_timeout", lambda: gevent.Timeout)
    return falcon.testing.TestClient(create_app(StallingStore(), request_timeout=0.3))


def test_a_stalled_request_gets_504_status_and_the_next_is_served(client):
    answer = client.simulate_get(f"{CONFIGMAPS}/slow")
    assert answer.status_code == 504
    assert answer.json["kind"] == "Status"
    assert answer.json["reason"] == "Timeout"
    assert answer.json["code"] == 504
    assert answer.json["message"] == "Timeout: request did not complete within the allotted timeout"
    assert client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "a"}}).status_code == 201
    assert client.simulate_get(f"{CONFIGMAPS}/a").status_code == 200
    # The timer of an answered request is disarmed: nothing fires later.
    gevent.sleep(0.5)
    assert client.simulate_get(f"{CONFIGMAPS}/a").status_code == 200


def test_timeout_parameter_shortens_and_never_lengthens(client, monkeypatch):
    middleware = timeouts.RequestTimeout(30, timer_class=gevent.Timeout)
    seconds = lambda query: middleware.seconds_for(  # noqa: E731
        falcon.testing.create_req(path=CONFIGMAPS, query_string=query))
    assert seconds("") == 30
    assert seconds("timeout=5s") == 5
    assert seconds("timeout=1m30s") == 30
    assert seconds("timeout=250ms") == 0.25
    assert seconds("watch=true&timeout=5s") is None
    assert middleware.seconds_for(falcon.testing.create_req(
        path="/api/v1/namespaces/default/pods/p/log")) is None
    answer = client.simulate_get(f"{CONFIGMAPS}/slow", params={"timeout": "100ms"})
    assert answer.status_code == 504


@pytest.mark.parametrize("value", ["5", "abc", "1x", "-1s", "s", "1s2"])
def test_malformed_timeout_is_a_400(client, value):
    answer = client.simulate_get(CONFIGMAPS, params={"timeout": value})
    assert answer.status_code == 400
    assert "invalid timeout specified in the request URL" in answer.json["message"]
    assert client.simulate_get(CONFIGMAPS).status_code == 200


def test_parse_duration():
    assert timeouts.parse_duration("0") == 0
    assert timeouts.parse_duration("1h2m3s") == 3723
    assert timeouts.parse_duration("1.5s") == 1.5
    with pytest.raises(ValueError):
        timeouts.parse_duration("")


def test_without_gevent_the_timeout_is_not_enforced():
    middleware = timeouts.RequestTimeout(1, timer_class=None)
    assert not middleware.enforced
    req = falcon.testing.create_req(path=CONFIGMAPS)
    middleware.process_request(req, None)
    assert req.context.get("request_timer") is None
