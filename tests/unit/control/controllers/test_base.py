"""The controller shape: expectations, ownerReferences, workers and retries."""

import threading

from control.client import RateLimitingQueue
from control.controllers.controller import Controller, split_key
from control.controllers.expectations import Expectations
from control.controllers.ownership import controller_ref, create_owned, get_controller_of
from control.objects import kinds
from tests.unit.control.controllers.fakes import FakeClock, FakeInformer, FakeRest

OWNER = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}


def test_expectations_lifecycle():
    clock = FakeClock()
    exp = Expectations(clock)
    assert exp.satisfied("ns/a")                     # nothing expected
    exp.expect_creations("ns/a", 2)
    assert not exp.satisfied("ns/a")
    exp.creation_observed("ns/a")
    assert exp.pending("ns/a") == (1, 0) and not exp.satisfied("ns/a")
    exp.creation_observed("ns/a")
    assert exp.satisfied("ns/a")
    exp.expect_deletions("ns/a", ["ns/p1", "ns/p2"])
    exp.deletion_observed("ns/a", "ns/p1")
    exp.deletion_observed("ns/a", "ns/p1")          # seen twice: counted once
    assert exp.pending("ns/a") == (0, 1) and not exp.satisfied("ns/a")
    clock.advance(301)                               # stale expectations stop blocking
    assert exp.satisfied("ns/a")
    exp.delete("ns/a")
    assert exp.pending("ns/a") == (0, 0)


def test_owner_references():
    ref = controller_ref(OWNER, "apps/v1", "ReplicaSet")
    assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1",
                   "controller": True, "blockOwnerDeletion": True}
    other = {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "u2"}
    assert get_controller_of({"metadata": {"ownerReferences": [other, ref]}}) == ref
    assert get_controller_of({"metadata": {"ownerReferences": [other]}}) is None
    assert get_controller_of({"metadata": {}}) is None
    rest = FakeRest()
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-", "ownerReferences": [other]}}
    created = create_owned(rest, kinds.PODS, "ns", body, OWNER,
                           "apps/v1", "ReplicaSet")
    assert created["metadata"]["ownerReferences"] == [other, ref]
    assert body["metadata"]["ownerReferences"] == [other]      # the input is untouched


def test_split_key():
    assert split_key("ns/a") == ("ns", "a") and split_key("node1") == (None, "node1")


class Flaky(Controller):
    def __init__(self, informers, fails):
        super().__init__("flaky", informers, RateLimitingQueue())
        self.fails, self.synced = fails, []
        self.done = threading.Event()

    def sync(self, key):
        self.synced.append(key)
        if len(self.synced) <= self.fails:
            raise RuntimeError("try again")
        self.done.set()


def test_run_retries_failures_until_success_then_forgets():
    controller = Flaky([FakeInformer()], fails=2)
    stop = threading.Event()
    runner = threading.Thread(target=controller.run, args=(2, stop))
    runner.start()
    try:
        controller.enqueue({"metadata": {"name": "a", "namespace": "ns"}})
        assert controller.done.wait(10)
        assert controller.synced == ["ns/a"] * 3
        assert controller.queue.num_requeues("ns/a") == 0      # forgotten after success
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()


def test_run_returns_if_stopped_before_caches_sync():
    informer = FakeInformer()
    informer.has_synced = lambda: False
    stop = threading.Event()
    stop.set()
    Flaky([informer], 0).run(1, stop)        # returns instead of waiting forever
