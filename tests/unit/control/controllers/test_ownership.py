"""Owners and children: resolving controllerRefs, child events, claiming (adopt, release)."""

import pytest

from control.client import Invalid, NotFound, RateLimitingQueue, ServerError, object_key
from control.controllers.ownership import (
    ChildEvents,
    Owners,
    RefManager,
    controller_ref,
    get_controller_of,
)
from control.objects import kinds
from control.objects.selectors import LabelSelector
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest

SELECTOR = LabelSelector.from_object({"matchLabels": {"app": "web"}})


def owner(name="web", uid="rs-uid", deleting=False, selector=None):
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "1"},
          "spec": {"selector": {"matchLabels": {"app": "web"}} if selector is None else selector}}
    if deleting:
        rs["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return rs


def child(name, owned_by=None, labels=None, rv="5", deleting=False):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": rv,
            "labels": {"app": "web"} if labels is None else labels}
    if owned_by is not None:
        meta["ownerReferences"] = [controller_ref(owned_by, "apps/v1", "ReplicaSet")]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


# -- resolving ----------------------------------------------------------------------------
def test_resolve_needs_kind_group_and_uid_to_match():
    rs = owner()
    owners = Owners(FakeInformer([rs]).store, kinds.REPLICASETS)
    ref = controller_ref(rs, "apps/v1", "ReplicaSet")
    assert owners.resolve("default", ref) is rs
    assert owners.resolve("default", {**ref, "uid": "old"}) is None          # a namesake
    assert owners.resolve("default", {**ref, "kind": "Deployment"}) is None
    assert owners.resolve("default", {**ref, "apiVersion": "extensions/v1beta1"}) is None
    assert owners.resolve("other", ref) is None
    assert owners.resolve("default", None) is None
    assert owners.owner_of(child("p", owned_by=rs)) is rs
    assert owners.owner_of(child("p")) is None


def test_matching_owners_skip_empty_and_invalid_selectors():
    web, everything, broken = owner(), owner("all", "u2", selector={}), \
        owner("bad", "u3", selector={"matchExpressions": [{"key": "a", "operator": "Nope"}]})
    owners = Owners(FakeInformer([web, everything, broken]).store, kinds.REPLICASETS)
    assert owners.matching(child("p")) == [web]
    assert owners.matching(child("p", labels={"app": "db"})) == []


# -- events -------------------------------------------------------------------------------
class Recorder:
    def __init__(self, owners):
        self.queue = RateLimitingQueue()
        self.calls = []
        self.events = ChildEvents(
            owners, lambda o: self.queue.add(object_key(o)),
            created=lambda o, c: self.calls.append(("created", c["metadata"]["name"])),
            deleted=lambda o, c: self.calls.append(("deleted", c["metadata"]["name"])),
            updated=lambda o, old, new: self.calls.append(("updated", new["metadata"]["name"])))

    def drain(self):
        keys = []
        while len(self.queue):
            key = self.queue.get(0)
            keys.append(key)
            self.queue.done(key)
        return sorted(keys)


@pytest.fixture
def two_owners():
    a, b = owner("a", "ua"), owner("b", "ub")
    return a, b, Recorder(Owners(FakeInformer([a, b]).store, kinds.REPLICASETS))


def test_add_enqueues_the_controller_or_every_matching_owner_of_an_orphan(two_owners):
    a, b, rec = two_owners
    rec.events.on_add(child("p", owned_by=a))
    assert rec.drain() == ["default/a"] and rec.calls == [("created", "p")]
    rec.events.on_add(child("orphan"))
    assert rec.drain() == ["default/a", "default/b"]
    rec.events.on_add(child("gone", owned_by=owner("x", "ux")))     # an owner not cached
    assert rec.drain() == []


def test_add_of_a_child_being_deleted_counts_as_a_deletion(two_owners):
    a, _, rec = two_owners
    rec.events.on_add(child("p", owned_by=a, deleting=True))
    assert rec.drain() == ["default/a"] and rec.calls == [("deleted", "p")]


def test_update_enqueues_old_and_new_controllers_and_orphans_matching_owners(two_owners):
    a, b, rec = two_owners
    old = child("p", owned_by=a, rv="1")
    rec.events.on_update(old, old)                                   # a resync: nothing
    assert rec.drain() == []
    moved = child("p", owned_by=b, rv="2")
    rec.events.on_update(old, moved)
    assert rec.drain() == ["default/a", "default/b"] and rec.calls == [("updated", "p")]
    released = child("p", rv="3")
    rec.events.on_update(moved, released)                            # now an orphan
    assert rec.drain() == ["default/a", "default/b"]
    relabelled = child("p", rv="4", labels={"app": "db"})
    rec.events.on_update(released, relabelled)                       # matches nobody now
    assert rec.drain() == []


def test_update_to_deleting_counts_as_deletion_for_old_labels_too(two_owners):
    a, _, rec = two_owners
    old = child("p", owned_by=a, rv="1")
    rec.events.on_update(old, child("p", owned_by=a, rv="2", labels={"x": "y"}, deleting=True))
    assert rec.calls == [("deleted", "p"), ("deleted", "p")]
    assert rec.drain() == ["default/a"]


def test_delete_enqueues_the_controller(two_owners):
    a, _, rec = two_owners
    rec.events.on_delete(child("p", owned_by=a))
    rec.events.on_delete(child("orphan"))
    assert rec.drain() == ["default/a"] and rec.calls == [("deleted", "p")]


# -- claiming -----------------------------------------------------------------------------
def manager(rs, rest=None, member=None):
    rest = rest or FakeRest([rs])
    return RefManager(rest, kinds.REPLICASETS, rs, SELECTOR, member), rest


def test_claim_keeps_ours_adopts_matching_orphans_ignores_others():
    rs = owner()
    mine, orphan = child("mine", owned_by=rs), child("orphan")
    theirs, unmatched = child("theirs", owned_by=owner("x", "ux")), child("db", labels={"app": "db"})
    dying = child("dying", deleting=True)
    refs, rest = manager(rs)
    got = refs.claim(kinds.PODS, [mine, orphan, theirs, unmatched, dying])
    assert [c["metadata"]["name"] for c in got] == ["mine", "orphan"]
    (patch,) = rest.of("patch")
    assert patch[3] == "orphan"
    body = patch[4]["metadata"]
    assert body["uid"] == "uid-orphan" and body["resourceVersion"] == "5"
    assert body["ownerReferences"] == [controller_ref(rs, "apps/v1", "ReplicaSet")]
    assert get_controller_of(got[1])["uid"] == "rs-uid"


def test_claim_releases_ours_that_stopped_matching():
    rs = owner()
    strayed = child("strayed", owned_by=rs, labels={"app": "other"})
    refs, rest = manager(rs)
    assert refs.claim(kinds.PODS, [strayed]) == []
    (patch,) = rest.of("patch")
    assert patch[3] == "strayed" and patch[4]["metadata"]["ownerReferences"] == []


def test_an_owner_being_deleted_neither_adopts_nor_releases():
    rs = owner(deleting=True)
    mine, strayed = child("mine", owned_by=rs), child("strayed", owned_by=rs, labels={})
    refs, rest = manager(rs)
    assert refs.claim(kinds.PODS, [mine, strayed, child("orphan")]) == [mine]
    assert rest.actions == []


def test_adoption_rechecks_the_owner_fresh_once():
    rs = owner()
    fresh = owner(deleting=True)            # the cache has not seen the deletion yet
    refs, rest = manager(rs, FakeRest([fresh]))
    with pytest.raises(RuntimeError, match="being deleted"):
        refs.claim(kinds.PODS, [child("a"), child("b")])
    assert rest.of("patch") == []
    replaced = owner(uid="new-uid")         # deleted and recreated under the same name
    refs, rest = manager(rs, FakeRest([replaced]))
    with pytest.raises(RuntimeError, match="gone"):
        refs.claim(kinds.PODS, [child("a")])
    refs, rest = manager(rs, FakeRest([]))  # gone altogether: nothing to adopt into
    assert refs.claim(kinds.PODS, [child("a")]) == []


def test_release_ignores_gone_or_invalid_children_other_errors_come_after_all_had_a_turn():
    rs = owner()
    strays = [child(n, owned_by=rs, labels={}) for n in ("gone", "invalid", "broken", "fine")]
    errors = {"gone": NotFound(404, "NotFound", "x"), "invalid": Invalid(422, "Invalid", "x"),
              "broken": ServerError(500, "InternalError", "x")}
    rest = FakeRest([rs], fail={"patch": lambda name, patch: errors.get(name)})
    refs, _ = manager(rs, rest)
    with pytest.raises(ServerError):
        refs.claim(kinds.PODS, strays)
    assert [a[3] for a in rest.of("patch")] == ["fine"]


def test_member_narrows_what_is_claimed():
    rs = owner()
    refs, rest = manager(rs, member=lambda c: c["metadata"]["name"].startswith("web-"))
    got = refs.claim(kinds.PODS, [child("web-0"), child("other"), child("x", owned_by=rs)])
    assert [c["metadata"]["name"] for c in got] == ["web-0"]
    assert sorted(a[3] for a in rest.of("patch")) == ["web-0", "x"]      # adopted, released
