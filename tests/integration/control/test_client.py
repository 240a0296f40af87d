"""control/client against the real API app, served over HTTP on a loopback port.

The falcon app runs over ``FakeStore`` in a threaded wsgiref server, so the client
goes through real sockets, real streaming watches and real Status errors, and the
test can compact the store to force the informer's 410 relist.
"""

import socketserver
import threading
import time
import wsgiref.simple_server

import pytest

from control.api.app import create_app
from control.client import (
    AlreadyExists,
    ApiException,
    BadRequest,
    Conflict,
    Informer,
    Invalid,
    LeaderElector,
    NotFound,
    RestClient,
    namespace_index,
)
from control.objects.kinds import CONFIGMAPS, DEPLOYMENTS, LEASES, NAMESPACES
from tests.support.fake_store import FakeStore


class _Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True           # open watches must not hold up shutdown


class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    """Serve the API over a fresh FakeStore; yield (base URL, store)."""
    store = FakeStore()
    server = wsgiref.simple_server.make_server("127.0.0.1", 0, create_app(store),
                                               server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def rest(api):
    client = RestClient(api[0], timeout=10, retries=2, backoff_base=0.01)
    yield client
    client.close()


def eventually(predicate, timeout=10.0, message="condition"):
    """Wait for ``predicate()`` to be true, polling; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        time.sleep(0.01)


def cm(name, labels=None, data=None):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data or {}}


def deployment(name, replicas=1):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


# -- REST ------------------------------------------------------------------------------
def test_crud_round_trip_and_typed_errors(rest):
    created = rest.create(CONFIGMAPS, "default", cm("a", data={"k": "1"}))
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == "default"
    with pytest.raises(AlreadyExists) as taken:
        rest.create(CONFIGMAPS, "default", cm("a"))
    assert taken.value.status == 409 and taken.value.reason == "AlreadyExists"
    assert isinstance(taken.value, Conflict)

    got = rest.get(CONFIGMAPS, "default", "a")
    assert got["data"] == {"k": "1"}
    got["data"]["k"] = "2"
    updated = rest.update(CONFIGMAPS, "default", got)
    assert int(updated["metadata"]["resourceVersion"]) > int(got["metadata"]["resourceVersion"])
    with pytest.raises(Conflict) as stale:
        rest.update(CONFIGMAPS, "default", got)      # still the old resourceVersion
    assert stale.value.status == 409 and stale.value.body["kind"] == "Status"

    assert rest.patch(CONFIGMAPS, "default", "a", {"data": {"m": "x"}})["data"] == \
        {"k": "2", "m": "x"}
    assert rest.patch(CONFIGMAPS, "default", "a", [{"op": "remove", "path": "/data/k"}],
                      patch_type="json")["data"] == {"m": "x"}
    assert rest.patch(CONFIGMAPS, "default", "a", {"metadata": {"labels": {"s": "y"}}},
                      patch_type="strategic")["metadata"]["labels"] == {"s": "y"}

    with pytest.raises(Conflict):
        rest.delete(CONFIGMAPS, "default", "a", preconditions={"resourceVersion": "1"})
    rest.delete(CONFIGMAPS, "default", "a", grace_period_seconds=0,
                propagation_policy="Background")
    with pytest.raises(NotFound) as missing:
        rest.get(CONFIGMAPS, "default", "a")
    assert missing.value.status == 404 and missing.value.message == 'configmaps "a" not found'
    with pytest.raises(NotFound):
        rest.delete(CONFIGMAPS, "default", "a")
    with pytest.raises(Invalid) as invalid:
        rest.create(CONFIGMAPS, "default", cm("Bad_Name"))
    assert invalid.value.status == 422
    assert invalid.value.details["causes"][0]["field"] == "metadata.name"


def test_cluster_scoped_resources_and_status_and_scale(rest):
    rest.create(NAMESPACES, None, {"metadata": {"name": "team"}})
    names = {n["metadata"]["name"] for n in rest.list(NAMESPACES)["items"]}
    assert "team" in names and "default" in names
    with pytest.raises(ValueError):
        rest.get(NAMESPACES, "default", "team")

    created = rest.create(DEPLOYMENTS, "team", deployment("web", 2))
    created["status"] = {"replicas": 2}
    created["spec"]["replicas"] = 9                   # ignored by the status subresource
    status = rest.update_status(DEPLOYMENTS, "team", created)
    assert status["status"] == {"replicas": 2} and status["spec"]["replicas"] == 2

    scale = rest.get_scale(DEPLOYMENTS, "team", "web")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    scale["spec"]["replicas"] = 5
    assert rest.update_scale(DEPLOYMENTS, "team", "web", scale)["spec"]["replicas"] == 5
    assert rest.get(DEPLOYMENTS, "team", "web")["spec"]["replicas"] == 5
    with pytest.raises(Conflict):
        rest.update_scale(DEPLOYMENTS, "team", "web", scale)     # stale resourceVersion


def test_list_with_selectors_and_paging(rest):
    for i in range(7):
        rest.create(CONFIGMAPS, "default", cm(f"cm-{i}", {"tier": "web" if i % 2 else "db"}))
    web = rest.list(CONFIGMAPS, "default", label_selector="tier=web")
    assert [c["metadata"]["name"] for c in web["items"]] == ["cm-1", "cm-3", "cm-5"]
    one = rest.list(CONFIGMAPS, "default", field_selector="metadata.name=cm-4")
    assert [c["metadata"]["name"] for c in one["items"]] == ["cm-4"]

    first = rest.list(CONFIGMAPS, "default", limit=3)
    assert len(first["items"]) == 3 and first["metadata"]["continue"]
    rest.create(CONFIGMAPS, "default", cm("cm-late"))        # not in the paged snapshot
    second = rest.list(CONFIGMAPS, "default", limit=3, continue_=first["metadata"]["continue"])
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert [c["metadata"]["name"] for c in second["items"]] == ["cm-3", "cm-4", "cm-5"]

    items, rv = rest.list_all(CONFIGMAPS, "default", page_size=2)
    assert [c["metadata"]["name"] for c in items] == [f"cm-{i}" for i in range(7)] + ["cm-late"]
    assert int(rv) >= int(items[-1]["metadata"]["resourceVersion"])
    everywhere, _ = rest.list_all(CONFIGMAPS, label_selector="tier=db", page_size=2)
    assert {c["metadata"]["name"] for c in everywhere} == {"cm-0", "cm-2", "cm-4", "cm-6"}

    with pytest.raises(BadRequest):
        rest.list(CONFIGMAPS, "default", label_selector="tier=,")
    with pytest.raises(BadRequest):
        rest.list(CONFIGMAPS, "default", limit=2, continue_="garbage")


def test_list_all_falls_back_when_the_continue_token_expires(api, rest):
    _, store = api
    for i in range(4):
        rest.create(CONFIGMAPS, "default", cm(f"cm-{i}"))
    original = rest.list
    calls = []

    def list_then_compact(*args, **kwargs):
        calls.append(kwargs.get("continue_"))
        page = original(*args, **kwargs)
        if len(calls) == 1:
            rest.create(CONFIGMAPS, "default", cm("cm-new"))
            store.compact(store.machine.revision)           # the token's revision is gone
        return page

    rest.list = list_then_compact
    items, rv = rest.list_all(CONFIGMAPS, "default", page_size=2)
    assert [c["metadata"]["name"] for c in items] == [f"cm-{i}" for i in range(4)] + ["cm-new"]
    assert calls[-1] is None and len(calls) == 3        # first page, expired page, full list
    assert rv == str(store.machine.revision)


def test_binding_is_posted_to_the_pod_binding_subresource(rest):
    """The server may not serve pods/binding yet (405); once it does, a missing pod is 404.

    tests/unit/control/client/test_rest.py checks the URL and the Binding body.
    """
    with pytest.raises(ApiException) as refused:
        rest.create_binding("default", "nopod", "node-1")
    assert refused.value.status in (404, 405)


def test_watch_iterates_events_and_ends_at_the_server_timeout(rest):
    start = rest.list(CONFIGMAPS, "default")["metadata"]["resourceVersion"]
    rest.create(CONFIGMAPS, "default", cm("w", {"app": "x"}))
    rest.patch(CONFIGMAPS, "default", "w", {"data": {"a": "b"}})
    rest.create(CONFIGMAPS, "default", cm("other"))
    rest.delete(CONFIGMAPS, "default", "w")
    began = time.monotonic()
    events = [(kind, obj["metadata"]["name"]) for kind, obj in
              rest.watch(CONFIGMAPS, "default", resource_version=start, timeout_seconds=1,
                         label_selector="app=x")]
    assert events == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    assert time.monotonic() - began < 8


def test_watch_close_from_another_thread_ends_iteration(rest):
    start = rest.list(CONFIGMAPS, "default")["metadata"]["resourceVersion"]
    watch = rest.watch(CONFIGMAPS, "default", resource_version=start, timeout_seconds=60)
    seen, finished = [], threading.Event()

    def read():
        for kind, obj in watch:
            seen.append((kind, obj["metadata"]["name"]))
        finished.set()

    threading.Thread(target=read, daemon=True).start()
    rest.create(CONFIGMAPS, "default", cm("live"))
    eventually(lambda: seen == [("ADDED", "live")], message="the live event")
    watch.close()
    assert finished.wait(5), "closing the watch did not wake its reader"


def test_watch_closed_before_the_server_answers_ends_without_error(rest):
    """Our server sends no headers until the first event: close() must still work."""
    watch = rest.watch(CONFIGMAPS, "default", timeout_seconds=60)
    finished = threading.Event()
    threading.Thread(target=lambda: (list(watch), finished.set()), daemon=True).start()
    eventually(lambda: watch._sock is not None, message="the watch to connect")
    watch.close()
    assert finished.wait(5), "closing an unanswered watch did not wake its reader"


def test_watch_http_errors_raise_typed_exceptions(rest):
    with pytest.raises(BadRequest):
        list(rest.watch(CONFIGMAPS, "default", label_selector="tier=,", timeout_seconds=1))


def test_watch_from_a_compacted_version_yields_a_410_error_event(api, rest):
    _, store = api
    rest.create(CONFIGMAPS, "default", cm("a"))
    rest.create(CONFIGMAPS, "default", cm("b"))
    store.compact(store.machine.revision)
    events = list(rest.watch(CONFIGMAPS, "default", resource_version="2", timeout_seconds=1))
    assert events[0][0] == "ERROR" and events[0][1]["code"] == 410


# -- informer --------------------------------------------------------------------------
class Recorder:
    """Collect handler calls as (event, name, data) in the order they happen."""

    def __init__(self, informer):
        self.calls = []
        self.informer = informer
        self.cache_saw_event = True
        informer.add_handler(self.add, self.update, self.delete)

    def add(self, obj):
        self._check(obj, present=True)
        self.calls.append(("add", obj["metadata"]["name"], obj.get("data")))

    def update(self, old, new):
        self._check(new, present=True)
        self.calls.append(("update", new["metadata"]["name"], new.get("data")))

    def delete(self, obj):
        self._check(obj, present=False)
        self.calls.append(("delete", obj["metadata"]["name"], None))

    def _check(self, obj, present):
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        if (self.informer.store.get(key) is not None) != present:
            self.cache_saw_event = False


@pytest.fixture
def informers():
    started = []
    yield started
    for informer in started:
        informer.stop()


def test_informer_syncs_then_sees_changes_in_order_with_indexes(rest, informers):
    rest.create(CONFIGMAPS, "default", cm("before", {"tier": "web"}))
    rest.create(NAMESPACES, None, {"metadata": {"name": "other"}})
    rest.create(CONFIGMAPS, "other", cm("elsewhere", {"tier": "db"}))
    informer = Informer(rest, CONFIGMAPS, page_size=1, watch_timeout=30)
    informer.add_index("namespace", namespace_index)
    informer.add_index("tier", lambda o: o["metadata"].get("labels", {}).get("tier"))
    recorder = Recorder(informer)
    informers.append(informer.start())
    assert informer.wait_for_sync(10)
    assert sorted(recorder.calls) == [("add", "before", {}), ("add", "elsewhere", {})]
    assert informer.store.get("default/before")["metadata"]["labels"] == {"tier": "web"}
    assert [o["metadata"]["name"] for o in informer.store.by_index("namespace", "other")] == \
        ["elsewhere"]

    recorder.calls.clear()
    rest.create(CONFIGMAPS, "default", cm("new", {"tier": "web"}))
    rest.patch(CONFIGMAPS, "default", "new", {"data": {"v": "1"}})
    rest.patch(CONFIGMAPS, "default", "new", {"metadata": {"labels": {"tier": "db"}}})
    rest.delete(CONFIGMAPS, "default", "before")
    eventually(lambda: len(recorder.calls) == 4, message="four handler calls")
    assert recorder.calls == [("add", "new", {}), ("update", "new", {"v": "1"}),
                              ("update", "new", {"v": "1"}), ("delete", "before", None)]
    assert recorder.cache_saw_event
    assert informer.store.get("default/before") is None
    assert sorted(informer.store.keys()) == ["default/new", "other/elsewhere"]
    assert sorted(o["metadata"]["name"] for o in informer.store.by_index("tier", "db")) == \
        ["elsewhere", "new"]
    assert informer.store.by_index("tier", "web") == []

    late = []
    informer.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
    eventually(lambda: sorted(late) == ["elsewhere", "new"], message="replayed adds")


def test_informer_resumes_after_the_server_ends_the_watch(rest, informers):
    informer = Informer(rest, CONFIGMAPS, namespace="default", watch_timeout=1,
                        backoff_initial=0.01)
    recorder = Recorder(informer)
    informers.append(informer.start())
    assert informer.wait_for_sync(10)
    rest.create(CONFIGMAPS, "default", cm("one"))
    eventually(lambda: [c[1] for c in recorder.calls] == ["one"], message="the first add")
    watches = informer.watches
    eventually(lambda: informer.watches >= watches + 2, timeout=15,
               message="the watch to end and be resumed twice")
    rest.create(CONFIGMAPS, "default", cm("two"))
    rest.delete(CONFIGMAPS, "default", "one")
    eventually(lambda: len(recorder.calls) == 3, message="events after the resume")
    assert [c[:2] for c in recorder.calls] == [("add", "one"), ("add", "two"),
                                               ("delete", "one")]
    assert informer.lists == 1, "a clean end of the watch must resume, not relist"


def test_informer_relists_after_compaction_and_reports_what_changed(api, rest, informers):
    _, store = api
    rest.create(CONFIGMAPS, "default", cm("stays"))
    rest.create(CONFIGMAPS, "default", cm("changes"))
    rest.create(CONFIGMAPS, "default", cm("goes"))
    informer = Informer(rest, CONFIGMAPS, namespace="default", watch_timeout=1,
                        backoff_initial=0.01)
    recorder = Recorder(informer)
    # Hold the informer's watch back while the store moves on and compacts, so that
    # when it resumes its resourceVersion is gone and only a relist can catch up.
    original_watch = rest.watch
    gate = threading.Event()

    def gated_watch(*args, **kwargs):
        gate.wait(10)
        return original_watch(*args, **kwargs)

    rest.watch = gated_watch
    informers.append(informer.start())
    assert informer.wait_for_sync(10)
    assert sorted(c[1] for c in recorder.calls) == ["changes", "goes", "stays"]
    recorder.calls.clear()

    rest.patch(CONFIGMAPS, "default", "changes", {"data": {"n": "2"}})
    rest.delete(CONFIGMAPS, "default", "goes")
    rest.create(CONFIGMAPS, "default", cm("arrives"))
    store.compact(store.machine.revision)
    gate.set()
    eventually(lambda: informer.lists == 2, message="a relist after 410")
    eventually(lambda: len(recorder.calls) == 3, message="the relist's handler calls")
    assert sorted(recorder.calls) == [("add", "arrives", {}), ("delete", "goes", None),
                                      ("update", "changes", {"n": "2"})]
    assert sorted(informer.store.keys()) == ["default/arrives", "default/changes",
                                             "default/stays"]
    # And it keeps watching from the new list's version.
    rest.create(CONFIGMAPS, "default", cm("after"))
    eventually(lambda: informer.store.get("default/after") is not None, message="watch resumed")


def test_informer_stop_returns_promptly_with_a_long_watch(rest):
    informer = Informer(rest, CONFIGMAPS, watch_timeout=300).start()
    assert informer.wait_for_sync(10)
    eventually(lambda: informer.watches == 1, message="the watch to open")
    began = time.monotonic()
    informer.stop()
    assert time.monotonic() - began < 5
    assert not any(t.is_alive() for t in informer._threads)


# -- leader election ------------------------------------------------------------------
def test_two_electors_one_leads_and_stopping_it_hands_over(api):
    url, _ = api
    events, threads, electors = [], [], {}
    for identity in ("alpha", "beta"):
        client = RestClient(url, timeout=2, retries=0)
        electors[identity] = LeaderElector(
            client, "kube-system", "controller", identity, lease_duration=1.5,
            renew_deadline=1.0, retry_period=0.2,
            on_started_leading=lambda i=identity: events.append(("start", i)),
            on_stopped_leading=lambda i=identity: events.append(("stop", i)))
    for elector in electors.values():
        thread = threading.Thread(target=elector.run, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        eventually(lambda: any(e.is_leader() for e in electors.values()), message="a leader")
        # Let the leader renew a few times; the other must not lead meanwhile.
        renewals = set()
        reader = RestClient(url)

        def renewed_thrice():
            spec = reader.get(LEASES, "kube-system", "controller")["spec"]
            renewals.add(spec["renewTime"])
            assert sum(e.is_leader() for e in electors.values()) == 1
            return len(renewals) >= 3

        eventually(renewed_thrice, message="three renewals")
        leaders = [i for i, e in electors.items() if e.is_leader()]
        assert len(leaders) == 1 and events == [("start", leaders[0])]
        first = leaders[0]
        second = "beta" if first == "alpha" else "alpha"
        lease = RestClient(url).get(LEASES, "kube-system", "controller")
        assert lease["spec"]["holderIdentity"] == first
        assert lease["spec"]["renewTime"].endswith("Z") and "." in lease["spec"]["renewTime"]

        electors[first].stop()
        eventually(lambda: electors[second].is_leader(), message="the takeover")
        assert events == [("start", first), ("stop", first), ("start", second)]
        assert not electors[first].is_leader()
        lease = RestClient(url).get(LEASES, "kube-system", "controller")
        assert lease["spec"]["holderIdentity"] == second
        assert lease["spec"]["leaseTransitions"] >= 1
    finally:
        for elector in electors.values():
            elector.stop()
        for thread in threads:
            thread.join(5)
