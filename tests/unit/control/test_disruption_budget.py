"""The disruption controller: its arithmetic (pure, fake clock) and its sync over fake caches."""

import datetime

import pytest

from control.controllers import disruption_budget as budget
from control.controllers.disruption import DisruptionController
from control.objects import kinds, meta
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest

T0 = datetime.datetime(2026, 12, 5, 6, 0, tzinfo=datetime.timezone.utc)


def owner(kind, name, api_version="apps/v1"):
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{name}",
            "controller": True}


def pod(name, ready=True, ref=None, labels=None, deleting=False):
    metadata = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                "labels": labels or {"app": "web"}}
    if ref:
        metadata["ownerReferences"] = [ref]
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-05T06:00:00Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}}


def workload(kind, name, replicas, ref=None):
    metadata = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if ref:
        metadata["ownerReferences"] = [ref]
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": metadata,
            "spec": {"replicas": replicas}}


def pdb(status=None, generation=1, **spec):
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "budget", "namespace": "default", "uid": "uid-budget",
                         "generation": generation, "resourceVersion": "7"},
            "spec": spec, "status": status or {}}


def fixed_scale(replicas):
    return lambda pod_, ref: (ref["uid"], replicas)


# -- arithmetic ---------------------------------------------------------------------------
@pytest.mark.parametrize("value,total,up,expected", [
    (2, 10, True, 2), ("50%", 3, True, 2), ("50%", 3, False, 1), ("0%", 7, True, 0),
    ("100%", 4, True, 4), ("34%", 3, True, 2)])
def test_scaled_value_rounds_as_kubernetes(value, total, up, expected):
    assert budget.scaled_value(value, total, up) == expected


@pytest.mark.parametrize("value", ["x%", "5", True, 1.5])
def test_scaled_value_refuses_what_is_not_int_or_percent(value):
    with pytest.raises(budget.BudgetError):
        budget.scaled_value(value, 4)


def test_max_unavailable_counts_from_the_controllers_scale():
    ref = owner("ReplicaSet", "rs")
    pods = [pod(f"p{i}", ref=ref) for i in range(3)]      # one pod still missing
    assert budget.expected_and_desired({"maxUnavailable": 1}, pods, fixed_scale(4)) == (4, 3, [])
    assert budget.expected_and_desired({"maxUnavailable": "50%"}, pods,
                                       fixed_scale(5)) == (5, 2, [])
    assert budget.expected_and_desired({"maxUnavailable": 9}, pods, fixed_scale(4))[1] == 0


def test_min_available_int_counts_the_pods_and_percent_the_scale():
    pods = [pod("a"), pod("b", ref=owner("ReplicaSet", "rs"))]
    assert budget.expected_and_desired({"minAvailable": 2}, pods, None) == (2, 2, [])
    assert budget.expected_and_desired({"minAvailable": "50%"}, pods[1:],
                                       fixed_scale(3)) == (3, 2, [])


def test_unmanaged_pods_are_reported_and_a_missing_controller_fails():
    pods = [pod("orphan"), pod("owned", ref=owner("ReplicaSet", "rs"))]
    assert budget.expected_and_desired({"maxUnavailable": 1}, pods,
                                       fixed_scale(2)) == (2, 1, ["orphan"])
    with pytest.raises(budget.BudgetError, match="found no controllers for pod 'owned'"):
        budget.expected_and_desired({"maxUnavailable": 1}, pods, lambda p, r: None)


def test_each_controller_counts_once():
    pods = [pod(f"p{i}", ref=owner("StatefulSet", "db")) for i in range(3)]
    calls = []
    scale = lambda p, r: calls.append(r["name"]) or (r["uid"], 3)     # noqa: E731
    assert budget.expected_scale(pods, scale) == (3, [])
    assert calls == ["db"]


def test_disrupted_pods_expire_after_two_minutes_and_leave_when_deleted():
    pods = [pod("fresh"), pod("old"), pod("going", deleting=True), pod("other")]
    recorded = {"fresh": meta.timestamp(T0), "old": meta.timestamp(T0 - datetime.timedelta(
        minutes=3)), "going": meta.timestamp(T0), "gone": meta.timestamp(T0)}
    kept, overdue, recheck = budget.live_disruptions(
        pdb(status={"disruptedPods": recorded}), pods, T0 + datetime.timedelta(seconds=30))
    assert kept == {"fresh": recorded["fresh"]}
    assert overdue == ["old"]
    assert recheck == T0 + budget.DELETION_TIMEOUT


def test_healthy_pods_exclude_unready_deleting_and_disrupted():
    pods = [pod("a"), pod("b", ready=False), pod("c", deleting=True), pod("d")]
    assert budget.count_healthy(pods, {"d": "t"}) == 1


def test_budget_status_allows_what_exceeds_the_desired_healthy_count():
    ref = owner("ReplicaSet", "rs")
    pods = [pod(f"p{i}", ref=ref) for i in range(4)]
    status, unmanaged, overdue, recheck = budget.budget_status(
        pdb(maxUnavailable=1, generation=3), pods, fixed_scale(4), T0)
    assert {k: status[k] for k in ("disruptionsAllowed", "currentHealthy", "desiredHealthy",
                                   "expectedPods", "observedGeneration")} == {
        "disruptionsAllowed": 1, "currentHealthy": 4, "desiredHealthy": 3, "expectedPods": 4,
        "observedGeneration": 3}
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "True",
                                     "reason": "SufficientPods", "message": "",
                                     "lastTransitionTime": meta.timestamp(T0)}]
    assert (unmanaged, overdue, recheck) == ([], [], None)


def test_an_eviction_in_flight_is_not_healthy_and_the_condition_time_holds():
    ref = owner("ReplicaSet", "rs")
    pods = [pod(f"p{i}", ref=ref) for i in range(4)]
    earlier = budget.budget_status(pdb(maxUnavailable=1), pods, fixed_scale(4), T0)[0]
    earlier["conditions"][0]["status"] = "False"
    later = T0 + datetime.timedelta(seconds=10)
    old = pdb(maxUnavailable=1, status={**earlier, "disruptedPods": {"p0": meta.timestamp(T0)}})
    status, _, _, recheck = budget.budget_status(old, pods, fixed_scale(4), later)
    assert status["disruptionsAllowed"] == 0 and status["currentHealthy"] == 3
    assert status["disruptedPods"] == {"p0": meta.timestamp(T0)}
    assert status["conditions"][0]["reason"] == "InsufficientPods"
    assert status["conditions"][0]["lastTransitionTime"] == meta.timestamp(T0)
    assert recheck == T0 + budget.DELETION_TIMEOUT


def test_no_expected_pods_allows_nothing():
    status = budget.budget_status(pdb(minAvailable=0), [], None, T0)[0]
    assert status["disruptionsAllowed"] == 0 and status["expectedPods"] == 0


def test_failed_status_is_the_fail_safe():
    status = budget.failed_status(pdb(status={"disruptionsAllowed": 2, "observedGeneration": 1}),
                                  "found no controllers", T0)
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"][0] == {"type": "DisruptionAllowed", "status": "False",
                                       "reason": "SyncFailed", "message": "found no controllers",
                                       "lastTransitionTime": meta.timestamp(T0),
                                       "observedGeneration": 1}


# -- the controller over fake caches --------------------------------------------------------
class ScaleRest(FakeRest):
    def __init__(self, scales=None, **kwargs):
        super().__init__(**kwargs)
        self.scales = scales or {}

    def get_scale(self, resource, namespace, name):
        return self.scales[(resource.plural, name)]


def controller(objects, rest=None):
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    informers = {k: FakeInformer(by_kind.get(k, ())) for k in
                 ("PodDisruptionBudget", "Pod", "ReplicaSet", "Deployment", "StatefulSet")}
    rest = rest or ScaleRest()
    ctl = DisruptionController(rest, informers["PodDisruptionBudget"], informers["Pod"],
                               informers["ReplicaSet"], informers["Deployment"],
                               informers["StatefulSet"], clock=lambda: T0)
    return ctl, rest, informers


def written(rest):
    return rest.of("update_status")[-1][3]["status"]


def test_sync_counts_a_deployment_through_its_replicaset():
    dep = workload("Deployment", "web", 4)
    rs = workload("ReplicaSet", "web-1", 2, ref=owner("Deployment", "web"))
    old_rs = workload("ReplicaSet", "web-0", 2, ref=owner("Deployment", "web"))
    pods = [pod(f"p{i}", ref=owner("ReplicaSet", "web-1" if i < 2 else "web-0"))
            for i in range(4)]
    ctl, rest, _ = controller([pdb(maxUnavailable=1), dep, rs, old_rs, *pods])
    ctl.sync("default/budget")
    status = written(rest)
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == \
        (4, 3, 1)


def test_sync_uses_the_scale_subresource_for_other_controllers_and_skips_no_change():
    ref = owner("StatefulSet", "db")
    sts = workload("StatefulSet", "db", 3)
    pods = [pod(f"db-{i}", ref=ref) for i in range(3)]
    ctl, rest, _ = controller([pdb(minAvailable="50%"), sts, *pods])
    ctl.sync("default/budget")
    assert written(rest)["desiredHealthy"] == 2

    custom = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "free", "uid": "uid-free",
              "controller": True}
    # A Deployment reached by the scale subresource (not through a ReplicaSet).
    rest = ScaleRest({("deployments", "free"): {"metadata": {"uid": "uid-free"},
                                               "spec": {"replicas": 5}}})
    ctl, rest, _ = controller([pdb(maxUnavailable=2), pod("f", ref=custom)], rest)
    ctl.sync("default/budget")
    assert written(rest)["expectedPods"] == 5
    current = written(rest)
    ctl2, rest2, _ = controller([pdb(maxUnavailable=2, status=current),
                                 pod("f", ref=custom)], rest)
    ctl2.sync("default/budget")
    assert len(rest2.of("update_status")) == 1          # unchanged: not written again


def test_sync_fails_safe_when_a_controller_cannot_be_found():
    ctl, rest, _ = controller([pdb(maxUnavailable=1, status={"disruptionsAllowed": 3}),
                               pod("lost", ref=owner("ReplicaSet", "missing"))])
    ctl.sync("default/budget")
    status = written(rest)
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"][0]["reason"] == "SyncFailed"
    assert "found no controllers for pod 'lost'" in status["conditions"][0]["message"]


def test_a_pod_change_queues_the_budgets_selecting_it_and_an_eviction_rechecks():
    ctl, rest, informers = controller([pdb(maxUnavailable=1), pdb(maxUnavailable=1) | {
        "metadata": {"name": "other", "namespace": "default", "generation": 1},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "maxUnavailable": 1}}])
    informers["Pod"].put(pod("p", labels={"app": "web"}))
    assert ctl.queue.get(0.1) == "default/budget"
    assert len(ctl.queue) == 0
    ref = owner("ReplicaSet", "rs")
    rs = workload("ReplicaSet", "rs", 2)
    evicted = pdb(maxUnavailable=1, status={"disruptedPods": {"a": meta.timestamp(T0)}})
    ctl, rest, _ = controller([evicted, rs, pod("a", ref=ref), pod("b", ref=ref)])
    ctl.sync("default/budget")
    assert written(rest)["disruptedPods"] == {"a": meta.timestamp(T0)}
    assert written(rest)["disruptionsAllowed"] == 0
    assert ctl.queue.get(0.1) is None       # queued for later (two minutes), not now


def test_the_pdb_resource_is_policy_v1():
    assert kinds.lookup("policy", "v1", "poddisruptionbudgets").kind == "PodDisruptionBudget"


# -- steer drain's eviction loop (cli/node_cmd.py) ------------------------------------------
class DrainRest:
    """Answer evictions from a script: each pod's list of outcomes, in order."""

    def __init__(self, script):
        self.script, self.posts = script, []

    def path(self, resource, namespace, name, sub):
        return f"/{namespace}/{name}/{sub}"

    def request(self, method, path, body=None):
        from control.client import TooManyRequests
        self.posts.append((method, path, body))
        outcome = self.script[body["metadata"]["name"]].pop(0)
        if outcome == 429:
            raise TooManyRequests(429, "TooManyRequests", "Cannot evict pod as it would "
                                  "violate the pod's disruption budget.")


def test_drain_retries_a_refused_eviction_every_five_seconds(capsys):
    import types

    from cli import node_cmd
    rest = DrainRest({"a": [201], "b": [429, 429, 201]})
    session = types.SimpleNamespace(rest=rest)
    clock = {"now": 0.0}
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock["now"] += seconds
    victims = [pod("a"), pod("b")]
    removed = node_cmd.remove_pods(session, kinds.PODS, victims, 30, True, None,
                                   clock=lambda: clock["now"], sleep=sleep)
    assert [r[2] for r in removed] == ["a", "b"]
    assert sleeps == [5.0, 5.0]
    assert rest.posts[0][2]["deleteOptions"] == {"gracePeriodSeconds": 30}
    assert capsys.readouterr().err.count('error when evicting pods/"b" -n "default" '
                                         "(will retry after 5s)") == 2


def test_drain_gives_up_at_its_timeout():
    import types

    from cli import node_cmd
    from cli.errors import CommandError
    rest = DrainRest({"b": [429] * 10})
    clock = {"now": 0.0}

    def sleep(seconds):
        clock["now"] += seconds
    with pytest.raises(CommandError, match="global timeout reached"):
        node_cmd.remove_pods(types.SimpleNamespace(rest=rest), kinds.PODS, [pod("b")], None,
                             True, 12.0, clock=lambda: clock["now"], sleep=sleep)
    assert len(rest.posts) == 3       # at 0, 5 and 10 s; the next try would pass 12 s
