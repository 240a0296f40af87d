"""Deployment rules as tables: hash, fenceposts, new-ReplicaSet size, proportions, status."""

import datetime
import json
import subprocess
import sys

import pytest

from control.controllers.deployment import conditions, proportion, revisions, sizing, templatehash
from control.objects.meta import timestamp

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}


def deployment(replicas=10, surge="25%", unavailable="25%", strategy="RollingUpdate",
               status=None, generation=1, deadline=600):
    strat = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "namespace": "default", "generation": generation},
            "spec": {"replicas": replicas, "strategy": strat, "template": TEMPLATE,
                     "progressDeadlineSeconds": deadline},
            "status": status or {}}


def rs(name, replicas, available=None, created="2026-01-01T00:00:00Z", max_replicas=None,
       desired=None, status_replicas=None):
    annotations = {}
    if max_replicas is not None:
        annotations[revisions.MAX_REPLICAS] = str(max_replicas)
    if desired is not None:
        annotations[revisions.DESIRED_REPLICAS] = str(desired)
    return {"metadata": {"name": name, "creationTimestamp": created, "uid": f"uid-{name}",
                         "annotations": annotations},
            "spec": {"replicas": replicas, "template": TEMPLATE},
            "status": {"replicas": replicas if status_replicas is None else status_replicas,
                       "availableReplicas": replicas if available is None else available,
                       "readyReplicas": replicas if available is None else available}}


# -- the hash ---------------------------------------------------------------------------
def test_hash_is_stable_across_processes_and_key_order():
    here = templatehash.compute_hash(TEMPLATE)
    reordered = json.loads(json.dumps({"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}))
    assert templatehash.compute_hash(reordered) == here
    code = ("import json,sys; from control.controllers.deployment import templatehash; "
            "print(templatehash.compute_hash(json.loads(sys.argv[1])))")
    other = subprocess.run([sys.executable, "-c", code, json.dumps(TEMPLATE)],
                           capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""}, cwd=".")
    assert other.stdout.strip() == here


def test_hash_uses_the_safe_alphabet_and_changes_with_template_and_collisions():
    h = templatehash.compute_hash(TEMPLATE)
    assert h and set(h) <= set(templatehash.SAFE_ALPHABET)
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    assert templatehash.compute_hash(changed) != h
    assert templatehash.compute_hash(TEMPLATE, 1) != h
    assert templatehash.compute_hash(TEMPLATE, 1) != templatehash.compute_hash(TEMPLATE, 2)
    assert templatehash.compute_hash(TEMPLATE, None) == h


def test_hash_ignores_nulls_and_empties_as_kubectl_sends_them():
    noisy = {"metadata": {"labels": {"app": "web"}, "creationTimestamp": None},
             "spec": {"containers": [{"name": "c", "image": "nginx:1", "resources": {}}]}}
    assert templatehash.compute_hash(noisy) == templatehash.compute_hash(TEMPLATE)


def test_fnv32a_known_values():
    assert templatehash.fnv32a(b"") == 0x811C9DC5
    assert templatehash.fnv32a(b"a") == 0xE40C292C
    assert templatehash.fnv32a(b"foobar") == 0xBF9CF968


def test_equal_ignore_hash():
    with_hash = {"metadata": {"labels": {"app": "web", templatehash.HASH_LABEL: "abc"}},
                 "spec": TEMPLATE["spec"]}
    assert templatehash.equal_ignore_hash(with_hash, TEMPLATE)
    other = {"metadata": {"labels": {"app": "db"}}, "spec": TEMPLATE["spec"]}
    assert not templatehash.equal_ignore_hash(with_hash, other)


# -- fenceposts ---------------------------------------------------------------------------
@pytest.mark.parametrize("surge, unavailable, desired, want", [
    ("25%", "25%", 10, (3, 2)),      # surge rounds up, unavailable rounds down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 1, (1, 0)),
    ("25%", "25%", 0, (0, 1)),       # both 0: unavailable becomes 1
    (0, "10%", 5, (0, 1)),           # 0.5 rounds down to 0, surge 0: unavailable 1
    ("50%", 0, 3, (2, 0)),
    (2, 3, 10, (2, 3)),
    ("100%", "100%", 7, (7, 7)),
    (None, None, 10, (0, 1)),
])
def test_resolve_fenceposts(surge, unavailable, desired, want):
    assert sizing.resolve_fenceposts(surge, unavailable, desired) == want


@pytest.mark.parametrize("bad", ["25", "x%", "abc", True])
def test_bad_int_or_percent(bad):
    with pytest.raises(sizing.SpecError):
        sizing.scaled_value(bad, 10, True)


@pytest.mark.parametrize("d, surge, unavailable", [
    (deployment(10), 3, 2),
    (deployment(0), 0, 0),                           # no replicas: nothing unavailable
    (deployment(2, surge=0, unavailable=5), 0, 2),   # never more than replicas
    (deployment(10, strategy="Recreate"), 0, 0),
])
def test_max_surge_and_unavailable(d, surge, unavailable):
    assert (sizing.max_surge(d), sizing.max_unavailable(d)) == (surge, unavailable)


@pytest.mark.parametrize("replicas, new, old, want", [
    (10, 0, 10, 3),       # surge 3: up to 13 in total
    (10, 3, 10, 3),       # at 13 already: stay
    (10, 3, 7, 6),        # old scaled down to 7: new may grow to 6
    (10, 8, 2, 10),       # never past replicas
    (10, 0, 0, 10),
])
def test_new_rs_new_replicas(replicas, new, old, want):
    d = deployment(replicas)
    new_rs, old_rs = rs("new", new), rs("old", old)
    assert sizing.new_rs_new_replicas(d, [old_rs, new_rs], new_rs) == want


def test_new_rs_new_replicas_counts_pods_an_old_replica_set_still_runs():
    d = deployment(10)
    # Old scaled to 8 but its controller has not removed 2 pods yet: no room yet.
    old, new = rs("old", 8, status_replicas=10), rs("new", 3)
    assert sizing.new_rs_new_replicas(d, [old, new], new) == 3
    old = rs("old", 8, status_replicas=8)
    assert sizing.new_rs_new_replicas(d, [old, new], new) == 5


def test_new_rs_new_replicas_recreate_is_all_at_once():
    d = deployment(5, strategy="Recreate")
    assert sizing.new_rs_new_replicas(d, [rs("new", 0)], rs("new", 0)) == 5


# -- proportional scaling --------------------------------------------------------------------
@pytest.mark.parametrize("replicas, annotated, sets, want", [
    # 10 -> 20 mid-rollout (surge 3 -> 5): 13 becomes 25, shared by size (8:5).
    (20, 13, [("old", 8, "2026-01-01T00:00:00Z"), ("new", 5, "2026-01-01T00:01:00Z")],
     {"old": 15, "new": 10}),
    # 10 -> 5 (surge 3 -> 2): 13 becomes 7.
    (5, 13, [("old", 8, "2026-01-01T00:00:00Z"), ("new", 5, "2026-01-01T00:01:00Z")],
     {"old": 4, "new": 3}),
    # 8 -> 11 (max 10 -> 14): equal sizes grow equally.
    (11, 10, [("old", 5, "2026-01-01T00:00:00Z"), ("new", 5, "2026-01-01T00:01:00Z")],
     {"old": 7, "new": 7}),
    # Sized for 13 but rounding gives nothing: the leftover goes to the newer of equals.
    (11, 13, [("old", 5, "2026-01-01T00:00:00Z"), ("new", 5, "2026-01-01T00:01:00Z")],
     {"old": 5, "new": 9}),
    # Scaling to 0 empties everything.
    (0, 13, [("old", 8, "2026-01-01T00:00:00Z"), ("new", 5, "2026-01-01T00:01:00Z")],
     {"old": 0, "new": 0}),
])
def test_proportional_sizes(replicas, annotated, sets, want):
    d = deployment(replicas, status={"replicas": 13})
    rss = [rs(name, size, created=created, max_replicas=annotated)
           for name, size, created in sets]
    sizes, _ = proportion.proportional_sizes(d, rss)
    got = {r["metadata"]["name"]: size for r, size in sizes}
    assert got == want
    assert sum(got.values()) == (replicas + sizing.max_surge(d) if replicas else 0)


@pytest.mark.parametrize("x, want", [(2.5, 3), (3.5, 4), (-2.5, -3), (1.49, 1), (0.5, 1)])
def test_round_half_away_from_zero(x, want):
    assert proportion.round_half_away(x) == want


# -- finding ReplicaSets ------------------------------------------------------------------------
def test_find_active_or_latest():
    old1 = rs("old1", 0, created="2026-01-01T00:00:00Z")
    old2 = rs("old2", 0, created="2026-01-01T00:01:00Z")
    new = rs("new", 0, created="2026-01-01T00:02:00Z")
    assert revisions.find_active_or_latest(new, [old1, old2]) is new
    assert revisions.find_active_or_latest(None, [old1, old2]) is old2
    active = rs("old1", 3)
    assert revisions.find_active_or_latest(new, [active, old2]) is active
    assert revisions.find_active_or_latest(rs("new", 1), [active]) is None


def test_new_rs_annotations_bump_revision_and_keep_history():
    d = deployment(3)
    d["metadata"]["annotations"] = {"team": "a", revisions.REVISION: "4",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    old = rs("x", 0)
    old["metadata"]["annotations"] = {revisions.REVISION: "2", revisions.REVISION_HISTORY: "1"}
    got = revisions.new_rs_annotations(d, old, 5, exists=True)
    assert got == {revisions.REVISION: "5", revisions.REVISION_HISTORY: "1,2", "team": "a"}
    fresh = revisions.new_rs_annotations(d, rs("y", 0), 5, exists=False)
    assert fresh == {revisions.REVISION: "5", "team": "a", revisions.DESIRED_REPLICAS: "3",
                     revisions.MAX_REPLICAS: "4"}
    # A higher revision is never lowered.
    assert revisions.new_rs_annotations(d, old, 1, exists=True)[revisions.REVISION] == "2"


# -- status and conditions ----------------------------------------------------------------
def test_calculate_status():
    d = deployment(10, generation=4, status={"collisionCount": 1})
    old, new = rs("old", 8, available=7), rs("new", 5, available=2, status_replicas=4)
    status = conditions.calculate_status([old, new], new, d, NOW)
    assert {k: v for k, v in status.items() if k != "conditions"} == {
        "observedGeneration": 4, "replicas": 12, "updatedReplicas": 4, "readyReplicas": 9,
        "availableReplicas": 9, "unavailableReplicas": 4, "collisionCount": 1}
    (cond,) = status["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == \
        ("Available", "True", conditions.MIN_AVAILABLE_REASON)          # 9 >= 10 - 2
    low = conditions.calculate_status([rs("old", 10, available=7)], None, d, NOW)
    assert low["conditions"][0]["reason"] == conditions.MIN_UNAVAILABLE_REASON


def test_set_condition_keeps_transition_time_when_status_holds():
    status = {}
    conditions.set_condition(status, conditions.new_condition("Progressing", "True", "A", "m", NOW))
    later = NOW + datetime.timedelta(seconds=30)
    conditions.set_condition(status, conditions.new_condition("Progressing", "True", "A", "m2", later))
    assert status["conditions"][0]["message"] == "m"         # same reason: no change
    conditions.set_condition(status, conditions.new_condition("Progressing", "True", "B", "m3", later))
    (cond,) = status["conditions"]
    assert cond["reason"] == "B" and cond["lastTransitionTime"] == timestamp(NOW)
    assert cond["lastUpdateTime"] == timestamp(later)


@pytest.mark.parametrize("reason, updated_ago, timed_out", [
    (conditions.RS_UPDATED_REASON, 601, True),
    (conditions.RS_UPDATED_REASON, 599, False),
    (conditions.NEW_RS_AVAILABLE_REASON, 10_000, False),    # a finished rollout never times out
    (conditions.TIMED_OUT_REASON, 0, True),
])
def test_deployment_timed_out(reason, updated_ago, timed_out):
    cond = conditions.new_condition("Progressing", "True", reason, "",
                            NOW - datetime.timedelta(seconds=updated_ago))
    d = deployment(3)
    assert conditions.deployment_timed_out(d, {"conditions": [cond]}, NOW) is timed_out
