"""The resource quota controller (fake informers and REST) and `kubectl get quota`'s columns."""

import threading

from control.api import table
from control.api.printers_quota import quota_columns
from control.client import Conflict
from control.controllers import resourcequota
from control.controllers.resourcequota import (
    ResourceQuotaController,
    desired_status,
    status_differs,
)
from control.objects import kinds
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest

QUOTAS = resourcequota.RESOURCEQUOTAS


def quota(hard, status=None, name="compute", ns="team", **spec):
    body = {"kind": "ResourceQuota", "metadata": {"name": name, "namespace": ns,
                                                  "resourceVersion": "7"},
            "spec": {"hard": hard, **spec}}
    if status is not None:
        body["status"] = status
    return body


def pod(name, cpu=None, phase=None, ns="team", **spec):
    container = {"name": "c"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    body = {"kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [container], **spec}}
    if phase:
        body["status"] = {"phase": phase}
    return body


class ListingRest(FakeRest):
    """FakeRest that also lists objects by resource and namespace."""

    def __init__(self, listed):
        super().__init__()
        self.listed = listed

    def list_all(self, resource, namespace=None):
        return [o for o in self.listed.get(resource.plural, ())
                if o["metadata"].get("namespace") == namespace], "1"

    def list_all_items(self, resource, namespace):
        return self.list_all(resource, namespace)[0]


def test_desired_status_counts_live_pods_the_scopes_select():
    pods = [pod("a", "500m"), pod("b", "250m"), pod("done", "4", phase="Succeeded"),
            pod("idle"), pod("job", "1", activeDeadlineSeconds=60)]
    rest = ListingRest({"pods": pods, "configmaps": [{"metadata": {"namespace": "team"}}]})
    status = desired_status(quota({"pods": "10", "requests.cpu": "8", "configmaps": "3",
                                   "count/widgets.example.com": "1"}), rest.list_all_items)
    assert status == {"hard": {"pods": "10", "requests.cpu": "8", "configmaps": "3",
                               "count/widgets.example.com": "1"},
                      "used": {"configmaps": "1", "pods": "4", "requests.cpu": "1750m"}}
    scoped = quota({"pods": "10"}, scopes=["NotBestEffort", "NotTerminating"])
    assert desired_status(scoped, rest.list_all_items)["used"] == {"pods": "2"}


def test_status_differs_by_value_not_by_spelling():
    assert not status_differs({"hard": {"cpu": "1000m"}, "used": {"cpu": "0.5"}},
                              {"hard": {"cpu": "1"}, "used": {"cpu": "500m"}})
    assert status_differs({"hard": {"cpu": "1"}}, {"hard": {"cpu": "1"}, "used": {"cpu": "0"}})
    assert status_differs(None, {"hard": {}, "used": {}}) is False
    assert status_differs({"hard": {"pods": "1"}, "used": {"pods": "1"}},
                          {"hard": {"pods": "1"}, "used": {"pods": "0"}})


def controller(quotas=(), pods=(), listed=None, rest=None):
    quota_informer, pod_informer = FakeInformer(quotas), FakeInformer(pods)
    rest = rest or ListingRest(listed or {"pods": list(pods)})
    ctl = ResourceQuotaController(rest, quota_informer, [pod_informer], sync_period=0)
    return ctl, rest, quota_informer, pod_informer


def drain(ctl):
    keys = []
    while len(ctl.queue):
        key = ctl.queue.get(0)
        keys.append(key)
        ctl.queue.done(key)
    return keys


def test_sync_writes_hard_and_used_with_the_cached_resource_version():
    ctl, rest, _, _ = controller([quota({"pods": "5"})], [pod("a"), pod("b")])
    ctl.sync("team/compute")
    ((verb, plural, ns, body),) = rest.actions
    assert (verb, plural, ns) == ("update_status", "resourcequotas", "team")
    assert body["status"] == {"hard": {"pods": "5"}, "used": {"pods": "2"}}
    assert body["metadata"]["resourceVersion"] == "7"
    counted = quota({"pods": "5"}, {"hard": {"pods": "5"}, "used": {"pods": "2"}})
    ctl, rest, _, _ = controller([counted], [pod("a"), pod("b")])
    ctl.sync("team/compute")
    assert rest.actions == []          # nothing changed: nothing written
    ctl.sync("team/gone")
    assert rest.actions == []


def test_a_stale_cache_is_a_conflict_to_retry():
    failing = ListingRest({"pods": []})
    failing.fail = {"update_status": lambda body: Conflict(409, "Conflict", "stale")}
    ctl, _, _, _ = controller([quota({"pods": "5"})], rest=failing)
    ctl.queue.add("team/compute")
    assert ctl.process_next(0)
    assert ctl.queue.num_requeues("team/compute") == 1


def test_deletions_and_finished_pods_queue_the_namespace_quotas():
    quotas = [quota({"pods": "5"}), quota({"pods": "1"}, name="other"),
              quota({"pods": "1"}, ns="elsewhere")]
    ctl, _, quota_informer, pod_informer = controller(quotas, [pod("a")])
    pod_informer.put(pod("b"))                       # a create: admission charged it
    assert drain(ctl) == []
    pod_informer.put(pod("a", phase="Succeeded"))    # finished: give it back
    assert sorted(drain(ctl)) == ["team/compute", "team/other"]
    pod_informer.remove(pod("b"))
    assert sorted(drain(ctl)) == ["team/compute", "team/other"]
    quota_informer.put(quota({"pods": "6"}))         # a new spec.hard: count again
    assert drain(ctl) == ["team/compute"]


def test_the_sync_period_queues_every_quota():
    ctl, _, _, _ = controller([quota({"pods": "5"}), quota({"pods": "1"}, ns="b")])
    ctl.sync_period = 0.01
    stop = threading.Event()
    thread = threading.Thread(target=ctl._resync_loop, args=(stop,), daemon=True)
    thread.start()
    try:
        got = set()
        while got != {"team/compute", "b/compute"}:
            key = ctl.queue.get(10)
            assert key is not None, "the resync never queued the quotas"
            got.add(key)
            ctl.queue.done(key)
    finally:
        stop.set()
        thread.join(5)


def test_kubectl_get_quota_columns():
    request, limit = quota_columns({
        "hard": {"pods": "4", "requests.cpu": "1", "limits.cpu": "2", "limits.memory": "1Gi"},
        "used": {"pods": "1", "requests.cpu": "250m", "limits.cpu": "500m"}})
    assert request == "pods: 1/4, requests.cpu: 250m/1"
    assert limit == "limits.cpu: 500m/2, limits.memory: 0/1Gi"
    names = [c["name"] for c in table.columns_for("ResourceQuota")]
    assert names == ["Name", "Age", "Request", "Limit"]
    assert [c["name"] for c in table.columns_for("LimitRange")] == ["Name", "Created At"]
    assert kinds.lookup("", "v1", "resourcequotas") is QUOTAS


def test_the_controller_role_is_least_privilege():
    from control.api.auth import bootstrap

    role, _ = bootstrap.CLUSTER_ROLES["system:controller:resourcequota-controller"]
    writes = [r for r in role["rules"] if set(r["verbs"]) - {"list", "watch"}]
    assert [(r["verbs"], r["resources"]) for r in writes] == [
        (["update"], ["resourcequotas/status"]),
        (["create", "patch", "update"], ["events"])]
    (_, subjects) = bootstrap.CLUSTER_ROLE_BINDINGS["system:controller:resourcequota-controller"]
    assert subjects == [{"kind": "ServiceAccount", "name": "resourcequota-controller",
                         "namespace": "kube-system"}]


def test_steer_describe_quota_and_limitrange_pages():
    from cli import describe_kinds, describe_page

    page = describe_page.Page()
    describe_kinds.DESCRIBERS["ResourceQuota"](None, page, quota(
        {"pods": "4", "requests.cpu": "1"},
        {"hard": {"pods": "4", "requests.cpu": "1"}, "used": {"pods": "1"}},
        scopes=["NotBestEffort"]))
    rows = [line.split() for line in page.text().splitlines()]
    assert rows[:3] == [["Name:", "compute"], ["Namespace:", "team"],
                        ["Scopes:", "NotBestEffort"]]
    assert rows[3:] == [["Resource", "Used", "Hard"], ["--------", "----", "----"],
                        ["pods", "1", "4"], ["requests.cpu", "0", "1"]]
    page = describe_page.Page()
    describe_kinds.DESCRIBERS["LimitRange"](None, page, {
        "metadata": {"name": "limits", "namespace": "team"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"},
                             "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2"}}]}})
    lines = page.text().splitlines()
    assert lines[2].split()[:2] == ["Type", "Resource"] and "Max Limit/Request Ratio" in lines[2]
    assert lines[4].split() == ["Container", "cpu", "-", "2", "2", "2", "-"]
