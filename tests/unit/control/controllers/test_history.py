"""ControllerRevision helpers: data, hashing, naming, numbering, truncation.

Claiming revisions is ownership.RefManager's job (test_ownership.py)."""

import pytest

from control.client import AlreadyExists
from control.controllers import history
from tests.unit.control.controllers.fakes import FakeRest


class Rest(FakeRest):
    """FakeRest with update (a revision renumbered)."""

    def update(self, resource, namespace, body, subresource=None):
        self.actions.append(("update", resource.plural, namespace, body))
        return body


def owner(image="nginx", annotations=None, collisions=None):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "web", "namespace": "default", "uid": "ds-uid"},
          "spec": {"selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": image}]}}}}
    if annotations:
        ds["metadata"]["annotations"] = annotations
    if collisions:
        ds["status"] = {"collisionCount": collisions}
    return ds


def rev(ds, number, created="2026-01-01T00:00:00Z"):
    r = history.new_revision(ds, "apps/v1", "DaemonSet", number,
                             (ds.get("status") or {}).get("collisionCount"))
    r["metadata"].update(uid="uid-" + r["metadata"]["name"], resourceVersion="1",
                         creationTimestamp=created)
    return r


def test_revision_holds_a_replace_patch_of_the_template_and_labels():
    r = history.new_revision(owner(annotations={"kubernetes.io/change-cause": "v1"}),
                             "apps/v1", "DaemonSet", 1)
    assert r["data"] == {"spec": {"template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "$patch": "replace"}}}
    hash_ = r["metadata"]["labels"]["controller-revision-hash"]
    assert r["metadata"]["name"] == f"web-{hash_}"
    assert r["metadata"]["labels"]["app"] == "web"
    assert r["metadata"]["annotations"] == {"kubernetes.io/change-cause": "v1"}
    assert r["revision"] == 1
    assert r["metadata"]["ownerReferences"][0]["uid"] == "ds-uid"


@pytest.mark.parametrize("a, b, same", [
    (owner(), owner(), True),
    (owner(), owner(image="nginx:2"), False),
    (owner(), owner(collisions=1), False),          # a collision count changes the name
    (owner(), owner(annotations={"x": "y"}), True),  # annotations are not the template
])
def test_hash_depends_on_template_and_collision_count(a, b, same):
    ha = history.hash_data(history.template_patch(a), (a.get("status") or {}).get("collisionCount"))
    hb = history.hash_data(history.template_patch(b), (b.get("status") or {}).get("collisionCount"))
    assert (ha == hb) == same
    assert set(ha) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_long_owner_names_are_cut_to_leave_room_for_the_hash():
    assert history.revision_name("x" * 300, "abc") == "x" * 223 + "-abc"


def test_ensure_creates_the_first_revision():
    rest = Rest()
    got, revisions = history.ensure_revision(rest, owner(), "apps/v1", "DaemonSet", [])
    assert rest.verbs() == ["create"]
    assert got["revision"] == 1 and revisions == [got]


def test_ensure_keeps_an_up_to_date_revision():
    rest, ds = Rest(), owner()
    existing = rev(ds, 1)
    got, _ = history.ensure_revision(rest, ds, "apps/v1", "DaemonSet", [existing])
    assert got is existing and rest.actions == []


def test_ensure_a_new_template_gets_the_next_number():
    rest = Rest()
    got, revisions = history.ensure_revision(rest, owner("v2"), "apps/v1", "DaemonSet",
                                             [rev(owner("v0"), 1), rev(owner("v1"), 2)])
    assert got["revision"] == 3 and len(revisions) == 3


def test_ensure_rollback_renumbers_the_old_revision():
    rest = Rest()
    old = rev(owner("v1"), 1)
    got, revisions = history.ensure_revision(rest, owner("v1"), "apps/v1", "DaemonSet",
                                             [old, rev(owner("v2"), 2)])
    assert rest.verbs() == ["update"]
    assert got["metadata"]["name"] == old["metadata"]["name"] and got["revision"] == 3
    assert sorted(r["revision"] for r in revisions) == [2, 3]


def test_ensure_name_taken_by_other_data_is_a_collision():
    ds = owner()
    squatter = {**rev(ds, 1), "data": {"other": True}}
    rest = Rest([squatter], fail={"create": lambda body: AlreadyExists(409, "", "taken")})
    with pytest.raises(history.HashCollision):
        history.ensure_revision(rest, ds, "apps/v1", "DaemonSet", [])


def test_ensure_name_taken_by_our_own_uncached_revision_is_fine():
    ds = owner()
    ours = rev(ds, 1)
    rest = Rest([ours], fail={"create": lambda body: AlreadyExists(409, "", "taken")})
    got, _ = history.ensure_revision(rest, ds, "apps/v1", "DaemonSet", [])
    assert got is ours


@pytest.mark.parametrize("count, live, limit, deleted", [
    (5, {5}, 10, []),
    (5, {5}, 2, [1, 2]),                 # 4 unused, keep 2: the oldest two go
    (5, {1, 5}, 2, [2]),                 # a live old revision is never deleted
    (3, {3}, 0, [1, 2]),
])
def test_truncate_deletes_the_oldest_unused(count, live, limit, deleted):
    revisions = [rev(owner(f"v{n}"), n) for n in range(1, count + 1)]
    names = {r["metadata"]["name"] for r in revisions if r["revision"] in live}
    got = history.to_truncate(list(reversed(revisions)), names, limit)
    assert [r["revision"] for r in got] == deleted
