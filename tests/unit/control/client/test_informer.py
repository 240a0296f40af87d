"""Informer and Store logic against a scripted fake REST client (no HTTP)."""

import ast
import pathlib
import sys
import threading
import time

import pytest

from control.client import errors
from control.client.cache import Store, namespace_index
from control.client.informer import Informer
from control.objects import kinds

CONFIGMAPS = kinds.lookup("", "v1", "configmaps")


def cm(name, rv, ns="default", **labels):
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv),
                         "labels": labels}}


class ScriptedWatch:
    def __init__(self, events, then=None):
        self.events, self.then = events, then
        self.closed = threading.Event()

    def __iter__(self):
        yield from self.events
        if self.then == "hang":
            self.closed.wait(10)
        elif self.then is not None:
            raise self.then

    def close(self):
        self.closed.set()


class FakeRest:
    """Lists and watches from scripts; records the resourceVersions watches start at."""

    def __init__(self, lists, watches):
        self.lists, self.watches = list(lists), list(watches)
        self.watched_from = []

    def list_all(self, resource, namespace, label_selector, field_selector, page_size):
        return self.lists.pop(0)

    def watch(self, resource, namespace, resource_version, timeout_seconds, label_selector,
              field_selector):
        self.watched_from.append(resource_version)
        action = self.watches.pop(0) if self.watches else ScriptedWatch([], "hang")
        if isinstance(action, Exception):
            raise action
        return action


def eventually(predicate, timeout=5.0, message="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {message}")
        time.sleep(0.002)


def run(rest, **kwargs):
    informer = Informer(rest, CONFIGMAPS, backoff_initial=0.001, **kwargs)
    calls = []
    informer.add_handler(lambda o: calls.append(("add", o["metadata"]["name"])),
                         lambda old, new: calls.append(("update", new["metadata"]["name"])),
                         lambda o: calls.append(("delete", o["metadata"]["name"])))
    return informer, calls


def test_dropped_stream_resumes_from_the_last_version_and_bookmarks_advance_it():
    rest = FakeRest(
        lists=[([cm("a", 5)], "10")],
        watches=[ScriptedWatch([("ADDED", cm("b", 11)), ("BOOKMARK", cm("", 15))],
                               errors.ConnectionFailed("reset")),
                 errors.ServerError(503, "ServiceUnavailable", "busy"),
                 ScriptedWatch([("MODIFIED", cm("a", 16)), ("DELETED", cm("b", 17))])])
    informer, calls = run(rest)
    informer.start()
    try:
        eventually(lambda: len(calls) == 4, message="four events")
        eventually(lambda: len(rest.watched_from) == 4, message="the fourth watch")
        assert calls == [("add", "a"), ("add", "b"), ("update", "a"), ("delete", "b")]
        assert rest.watched_from == ["10", "15", "15", "17"]
        assert informer.lists == 1
        assert informer.store.keys() == ["default/a"]
    finally:
        informer.stop()


@pytest.mark.parametrize("expiry", [
    ScriptedWatch([("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"})]),
    errors.Gone(410, "Expired", "too old"),
])
def test_expired_version_relists_and_diffs_against_the_cache(expiry):
    rest = FakeRest(
        lists=[([cm("keep", 1), cm("change", 2), cm("go", 3)], "10"),
               ([cm("keep", 1), cm("change", 12), cm("new", 13)], "20")],
        watches=[expiry])
    informer, calls = run(rest)
    informer.start()
    try:
        eventually(lambda: len(calls) == 6, message="initial adds and the relist's diff")
        assert sorted(calls[:3]) == [("add", "change"), ("add", "go"), ("add", "keep")]
        assert sorted(calls[3:]) == [("add", "new"), ("delete", "go"), ("update", "change")]
        eventually(lambda: rest.watched_from[-1:] == ["20"], message="watch from the relist")
        assert informer.lists == 2
    finally:
        informer.stop()


def test_other_watch_errors_relist_after_backoff():
    rest = FakeRest(lists=[([], "1"), ([cm("x", 4)], "5")],
                    watches=[errors.BadRequest(400, "BadRequest", "bad")])
    informer, calls = run(rest)
    informer.start()
    try:
        eventually(lambda: calls == [("add", "x")], message="the relisted object")
    finally:
        informer.stop()


def test_list_failures_are_retried_and_sync_waits_for_the_first_list():
    gate = threading.Event()

    class SlowRest(FakeRest):
        def list_all(self, *args, **kwargs):
            gate.wait(5)
            if not getattr(self, "failed", False):
                self.failed = True
                raise errors.ConnectionFailed("refused")
            return super().list_all(*args, **kwargs)

    informer, calls = run(SlowRest(lists=[([cm("a", 1)], "2")], watches=[]))
    informer.start()
    try:
        assert not informer.wait_for_sync(0.05) and not informer.has_synced()
        gate.set()
        assert informer.wait_for_sync(5)
        assert calls == [("add", "a")], "handlers have run by the time it reports synced"
    finally:
        informer.stop()


def test_a_failing_handler_does_not_stop_the_others():
    rest = FakeRest(lists=[([cm("a", 1), cm("b", 2)], "2")], watches=[])
    informer, calls = run(rest)
    informer.add_handler(on_add=lambda o: 1 / 0)
    informer.start()
    try:
        eventually(lambda: len(calls) == 2, message="both adds despite the failing handler")
    finally:
        informer.stop()


def test_resync_redelivers_cached_objects_as_updates():
    rest = FakeRest(lists=[([cm("a", 1)], "2")], watches=[])
    informer, calls = run(rest, resync=0.01)
    informer.start()
    try:
        eventually(lambda: calls.count(("update", "a")) >= 2, message="two resyncs")
    finally:
        informer.stop()


def test_indexes_follow_updates_and_deletes():
    store = Store()
    store.add_index("namespace", namespace_index)
    store.add_index("tiers", lambda o: o["metadata"]["labels"].get("tiers", "").split(",")
                    if o["metadata"]["labels"].get("tiers") else None)
    store._put("a/x", cm("x", 1, "a", tiers="web,db"))
    store._put("b/y", cm("y", 1, "b", tiers="db"))
    assert [o["metadata"]["name"] for o in store.by_index("tiers", "db")] == ["x", "y"]
    store._put("a/x", cm("x", 2, "a", tiers="cache"))
    assert [o["metadata"]["name"] for o in store.by_index("tiers", "db")] == ["y"]
    assert [o["metadata"]["name"] for o in store.by_index("tiers", "cache")] == ["x"]
    store._delete("b/y")
    assert store.by_index("tiers", "db") == [] and store.by_index("namespace", "b") == []
    store._replace({"c/z": cm("z", 3, "c")})
    assert store.keys() == ["c/z"] and store.by_index("namespace", "a") == []
    assert [o["metadata"]["name"] for o in store.by_index("namespace", "c")] == ["z"]
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_indexes_cannot_be_added_after_start():
    informer = Informer(FakeRest([([], "1")], []), CONFIGMAPS).start()
    try:
        with pytest.raises(RuntimeError):
            informer.add_index("late", namespace_index)
    finally:
        informer.stop()


def test_control_client_imports_only_the_standard_library_and_control_objects():
    root = pathlib.Path(__file__).resolve().parents[4] / "control" / "client"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or \
                    name.startswith(("control.client", "control.objects")), \
                    f"{path.name} imports {name}"


def test_an_index_added_to_a_filled_store_covers_what_it_holds():
    store = Store()
    store._put("a/x", {"metadata": {"namespace": "a", "name": "x", "labels": {"k": "1"}}})
    store._put("b/y", {"metadata": {"namespace": "b", "name": "y", "labels": {"k": "1"}}})
    store.add_index("k", lambda obj: obj["metadata"]["labels"]["k"])
    assert store.has_index("k") and not store.has_index("other")
    assert [o["metadata"]["name"] for o in store.by_index("k", "1")] == ["x", "y"]
    store._delete("a/x")
    assert [o["metadata"]["name"] for o in store.by_index("k", "1")] == ["y"]
