"""In-flight limits after body reads, watches under their own limit, namespace lifecycle."""

import falcon
import falcon.testing
import pytest

from control import errors
from control.api import limits, systemnamespaces
from control.api.app import create_app
from tests.support.fake_store import FakeStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class FakeReq:
    def __init__(self, method, path, watch=None):
        self.method, self.path, self._watch = method, path, watch

    def get_param(self, name):
        return self._watch if name == "watch" else None


@pytest.mark.parametrize("method,path,watch,kind", [
    ("GET", CONFIGMAPS, "true", limits.WATCH),
    ("GET", CONFIGMAPS, None, limits.READ_ONLY),
    ("POST", CONFIGMAPS, "true", limits.MUTATING_KIND),
    ("DELETE", CONFIGMAPS, "1", limits.MUTATING_KIND),
    ("GET", "/api/v1/namespaces/a/pods/p/log", None, limits.LONG_RUNNING),
])
def test_request_kinds(method, path, watch, kind):
    assert limits.request_kind(FakeReq(method, path, watch)) == kind


def test_watches_have_their_own_limit_released_on_close():
    inflight = limits.InflightLimits(max_inflight=1, max_watches=1)
    req = falcon.testing.create_req(path=CONFIGMAPS, query_string="watch=true")
    resp = falcon.Response()
    resp.stream = iter([b""])
    inflight.process_request(req, resp)
    inflight.process_response(req, resp, None, True)
    # Still open: a second watch is refused; a plain read is not affected.
    with pytest.raises(errors.TooManyRequests):
        inflight.process_request(falcon.testing.create_req(path=CONFIGMAPS,
                                                           query_string="watch=true"), resp)
    assert inflight.inflight() == {limits.READ_ONLY: 0, limits.MUTATING_KIND: 0,
                                   limits.WATCH: 1, limits.LONG_RUNNING: 0}
    resp.stream.close()
    assert inflight.inflight()[limits.WATCH] == 0


def test_open_watch_holds_its_slot():
    inflight = limits.InflightLimits(max_watches=1)
    released = []
    stream = limits.ReleasingStream(iter([b"a"]), lambda: released.append(1))
    assert list(stream) == [b"a"] and not released
    stream.close()
    stream.close()
    assert released == [1]
    assert inflight.inflight()[limits.WATCH] == 0


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_immortal_namespaces(name):
    client = falcon.testing.TestClient(create_app(FakeStore()))
    result = client.simulate_delete(f"/api/v1/namespaces/{name}")
    assert result.status_code == 403
    assert result.json["message"] == (f'namespaces "{name}" is forbidden: this namespace may '
                                      "not be deleted")


def test_system_namespace_loop_recreates_kube_node_lease():
    store = FakeStore()
    client = falcon.testing.TestClient(create_app(store))
    path = "/api/v1/namespaces/kube-node-lease"
    assert client.simulate_delete(path).status_code == 202
    ns = client.simulate_get(path).json
    ns["spec"]["finalizers"] = []
    assert client.simulate_put(path + "/finalize", json=ns).status_code == 200
    assert client.simulate_get(path).status_code == 404

    class Service:
        def ensure_system_namespaces(self):
            from control.api.service import for_store
            for_store(store).ensure_system_namespaces()

    systemnamespaces.run(Service(), 1, sleep=lambda seconds: None, rounds=1)
    assert client.simulate_get(path).json["status"]["phase"] == "Active"
