"""The watch cache: one store watch per resource, replay from a window, fan-out."""

import pytest

from control.api import watchcache
from control.objects import kinds
from control.registry import Registry
from tests.support.fake_store import FakeStore

CONFIGMAPS = kinds.lookup("", "v1", "configmaps")


class CountingStore(FakeStore):
    """Count the store watches opened, to prove they are shared."""

    def __init__(self):
        super().__init__()
        self.watches = 0

    def watch(self, *args, **kwargs):
        self.watches += 1
        return super().watch(*args, **kwargs)


def configmap(name, namespace="default"):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace}}


def drain(subscription, count, timeout=5.0):
    names = []
    while len(names) < count:
        event = subscription.next_event(timeout=timeout)
        assert event is not None, f"only {names} arrived"
        names.append(event["kv"]["key"].rsplit(b"/", 1)[-1].decode())
    return names


@pytest.fixture
def setup():
    store = CountingStore()
    registry = Registry(store)
    return store, registry, watchcache.WatchCaches(registry)


def test_many_subscribers_share_one_store_watch(setup):
    store, registry, caches = setup
    subscribers = [caches.subscribe(CONFIGMAPS, None, 0) for _ in range(50)]
    for i in range(3):
        registry.create(CONFIGMAPS, configmap(f"cm-{i}"))
    for subscriber in subscribers:
        assert drain(subscriber, 3) == ["cm-0", "cm-1", "cm-2"]
    assert store.watches == 1


def test_subscriber_from_a_past_revision_is_replayed_from_the_window(setup):
    store, registry, caches = setup
    live = caches.subscribe(CONFIGMAPS, None, 0)
    first = registry.create(CONFIGMAPS, configmap("a"))
    registry.create(CONFIGMAPS, configmap("b"))
    drain(live, 2)
    late = caches.subscribe(CONFIGMAPS, None, int(first["metadata"]["resourceVersion"]) - 1)
    assert drain(late, 2) == ["a", "b"]


def test_namespace_scoped_subscriber_sees_only_its_namespace(setup):
    _, registry, caches = setup
    registry.create(kinds.lookup("", "v1", "namespaces"), {"metadata": {"name": "other"}})
    mine = caches.subscribe(CONFIGMAPS, "other", 0)
    registry.create(CONFIGMAPS, configmap("skip"))
    registry.create(CONFIGMAPS, configmap("keep", "other"))
    assert drain(mine, 1) == ["keep"]
    assert mine.next_event(timeout=0.05) is None


def test_start_older_than_the_cache_falls_back(setup):
    _, registry, caches = setup
    registry.create(CONFIGMAPS, configmap("early"))
    caches.subscribe(CONFIGMAPS, None, 0)        # the cache starts now
    assert caches.subscribe(CONFIGMAPS, None, 1) is None


def test_first_subscriber_from_the_past_starts_the_cache_there(setup):
    _, registry, caches = setup
    first = registry.create(CONFIGMAPS, configmap("early"))
    registry.create(CONFIGMAPS, configmap("later"))
    since = int(first["metadata"]["resourceVersion"]) - 1
    assert drain(caches.subscribe(CONFIGMAPS, None, since), 2) == ["early", "later"]
    assert drain(caches.subscribe(CONFIGMAPS, None, since), 2) == ["early", "later"]


def test_slow_subscriber_is_ended_others_continue(setup, monkeypatch):
    monkeypatch.setattr(watchcache, "SUBSCRIBER_BACKLOG", 3)
    _, registry, caches = setup
    slow = caches.subscribe(CONFIGMAPS, None, 0)
    fast = caches.subscribe(CONFIGMAPS, None, 0)
    for i in range(5):
        registry.create(CONFIGMAPS, configmap(f"cm-{i}"))
        drain(fast, 1)
    assert drain(slow, 3) == ["cm-0", "cm-1", "cm-2"]
    with pytest.raises(watchcache.Ended):
        slow.next_event(timeout=1)


def test_cancelled_subscriber_is_forgotten(setup):
    _, registry, caches = setup
    subscriber = caches.subscribe(CONFIGMAPS, None, 0)
    subscriber.cancel()
    registry.create(CONFIGMAPS, configmap("x"))
    cache = next(iter(caches._caches.values()))
    assert subscriber not in cache._subscribers
