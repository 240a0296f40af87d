"""Quota evaluation (control/objects/quota*.py) and the admission plugin's charge(), pure."""

import datetime
from fractions import Fraction

import pytest

from control import errors
from control.api import admission
from control.api.admission.resource_quota import charge
from control.objects import kinds
from control.objects import quota as evaluation
from control.objects import quota_amounts as amounts
from control.objects.quantity import QuantityTooLarge, parse_quantity
from control.objects.quota_amounts import Amount, format_quantity

PVCS = kinds.lookup("", "v1", "persistentvolumeclaims")
DEPLOYMENTS = kinds.DEPLOYMENTS


@pytest.mark.parametrize("value,binary,text", [
    (0, False, "0"), (Fraction(1, 2), False, "500m"), (2, False, "2"), (1000, False, "1k"),
    (1500, False, "1500"), (Fraction(1, 10**9), False, "1n"), (2**27, True, "128Mi"),
    (1024, True, "1Ki"), (1000, True, "1k"), (10**9, True, "1000000000"), (1536 * 2**20, True, "1536Mi"),
    (2 * 10**21, False, "2000E"),
])
def test_quantities_print_as_apimachinery_does(value, binary, text):
    assert format_quantity(Fraction(value), binary) == text


def test_sums_keep_a_binary_format_and_print_canonically():
    total = Amount.parse("64Mi") + Amount.parse("64Mi")
    assert str(total) == "128Mi"
    assert str(Amount.parse("100m") + Amount.parse("1900m")) == "2"
    assert amounts.pretty({"pods": Amount.parse("1"), "limits.cpu": Amount.parse("0.5")}) == \
        "limits.cpu=500m,pods=1"


def pod(*containers, init=(), phase=None, **spec):
    body = {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)],
        "initContainers": [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)],
        **spec}}
    if phase:
        body["status"] = {"phase": phase}
    return body


def api(resources):
    return amounts.to_api(resources)


def test_a_pod_charges_its_containers_summed_and_its_largest_init_container():
    usage = evaluation.usage(kinds.PODS, pod(
        {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m"}},
        {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1"}},
        init=[{"requests": {"cpu": "2"}}]))
    assert api(usage) == {"count/pods": "1", "cpu": "2", "limits.cpu": "1500m",
                          "memory": "128Mi", "pods": "1", "requests.cpu": "2",
                          "requests.memory": "128Mi"}


def test_finished_pods_and_pods_past_their_grace_period_are_not_charged():
    assert evaluation.usage(kinds.PODS, pod({}, phase="Succeeded")) == {}
    assert evaluation.usage(kinds.PODS, pod({}, phase="Failed")) == {}
    deleted = pod({})
    deleted["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z",
                               deletionGracePeriodSeconds=30)
    now = datetime.datetime(2026, 1, 1, 0, 0, 10, tzinfo=datetime.timezone.utc)
    assert evaluation.usage(kinds.PODS, deleted, now)["pods"].value == 1
    later = now + datetime.timedelta(seconds=60)
    assert evaluation.usage(kinds.PODS, deleted, later) == {}


def test_services_charge_node_ports_and_load_balancers():
    ports = [{"port": 80}, {"port": 443, "nodePort": 30443}]
    usage = evaluation.usage(kinds.SERVICES, {"spec": {"type": "NodePort", "ports": ports}})
    assert api(usage) == {"count/services": "1", "services": "1", "services.nodeports": "2"}
    usage = evaluation.usage(kinds.SERVICES, {"spec": {
        "type": "LoadBalancer", "ports": ports, "allocateLoadBalancerNodePorts": False}})
    assert api(usage)["services.loadbalancers"] == "1"
    assert api(usage)["services.nodeports"] == "1"
    assert "services.nodeports" not in evaluation.usage(kinds.SERVICES, {"spec": {}})


def test_claims_charge_storage_per_class_and_other_kinds_a_count():
    claim = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}}
    assert api(evaluation.usage(PVCS, claim)) == {
        "count/persistentvolumeclaims": "1", "fast.storageclass.storage.k8s.io/"
        "persistentvolumeclaims": "1", "fast.storageclass.storage.k8s.io/requests.storage":
        "1Gi", "persistentvolumeclaims": "1", "requests.storage": "1Gi"}
    assert api(evaluation.usage(DEPLOYMENTS, {})) == {"count/deployments.apps": "1"}
    assert api(evaluation.usage(kinds.CONFIGMAPS, {})) == {"configmaps": "1",
                                                           "count/configmaps": "1"}
    assert evaluation.resource_for("count/deployments.apps") is DEPLOYMENTS
    assert evaluation.resource_for("requests.cpu") is kinds.PODS
    assert evaluation.resource_for("services.nodeports") is kinds.SERVICES
    assert evaluation.resource_for("count/widgets.example.com") is None


def test_scopes_select_pods():
    best_effort, guaranteed = pod({}), pod({"limits": {"cpu": "1"}})
    terminating = pod({}, activeDeadlineSeconds=30)
    check = evaluation.pod_matches_scope
    assert check("BestEffort", "Exists", (), best_effort)
    assert not check("BestEffort", "Exists", (), guaranteed)
    assert check("NotBestEffort", "Exists", (), guaranteed)
    assert check("Terminating", "Exists", (), terminating)
    assert check("NotTerminating", "Exists", (), best_effort)
    high = pod({}, priorityClassName="high")
    assert check("PriorityClass", "In", ("high",), high)
    assert not check("PriorityClass", "NotIn", ("high",), high)
    assert not check("PriorityClass", "Exists", (), best_effort)
    quota = {"spec": {"scopes": ["BestEffort"]}, "status": {"hard": {"pods": "1"}}}
    assert evaluation.matches(quota, kinds.PODS, best_effort)
    assert not evaluation.matches(quota, kinds.PODS, guaranteed)
    assert not evaluation.matches(quota, kinds.SERVICES, {})     # scopes only select pods


def test_constraints_name_each_missing_resource_and_container():
    message = evaluation.pod_constraints(
        ["limits.cpu", "requests.memory", "pods"],
        pod({"limits": {"cpu": "1"}}, {}, init=[{"requests": {"memory": "1Mi"}}]))
    assert message == "must specify limits.cpu for: c1,i0; requests.memory for: c0,c1"
    assert evaluation.pod_constraints(["pods", "count/pods"], pod({})) is None


def attrs(obj, resource=kinds.PODS, operation="CREATE", old=None):
    obj = {**obj, "metadata": {**obj.get("metadata", {}), "name": "web"}}
    return admission.Attributes(operation, resource, "team", obj, old)


def quota(hard, used=None, name="compute", **spec):
    return {"metadata": {"name": name, "resourceVersion": "5"}, "spec": {"hard": hard, **spec},
            "status": {"hard": hard, "used": used if used is not None else
                       {key: "0" for key in hard}}}


def test_charge_adds_the_usage_to_every_matching_quota():
    quotas = [quota({"pods": "2", "requests.cpu": "1"}, {"pods": "1", "requests.cpu": "500m"}),
              quota({"services": "1"}, name="other")]
    (charged,) = charge(attrs(pod({"requests": {"cpu": "250m"}})), quotas)
    assert charged["status"]["used"] == {"pods": "2", "requests.cpu": "750m"}
    assert charged["metadata"]["resourceVersion"] == "5"
    assert quotas[0]["status"]["used"]["pods"] == "1"       # the cached one is untouched


def test_charge_refuses_with_kubernetes_messages():
    with pytest.raises(errors.Forbidden) as refused:
        charge(attrs(pod({})), [quota({"pods": "2"}, {"pods": "2"})])
    assert refused.value.message == ('pods "web" is forbidden: exceeded quota: compute, '
                                     'requested: pods=1, used: pods=2, limited: pods=2')
    assert refused.value.code == 403
    with pytest.raises(errors.Forbidden, match="failed quota: compute: must specify "
                                               "limits.cpu for: c0"):
        charge(attrs(pod({})), [quota({"limits.cpu": "2"})])
    with pytest.raises(errors.Forbidden, match="status unknown for quota: compute, resources: "
                                               "pods"):
        charge(attrs(pod({})), [quota({"pods": "2"}, {})])


def test_charge_ignores_quotas_not_counted_yet_and_unrelated_kinds():
    uncounted = {"metadata": {"name": "new"}, "spec": {"hard": {"pods": "0"}}}
    assert charge(attrs(pod({})), [uncounted]) == []
    assert charge(attrs({}, kinds.CONFIGMAPS), [quota({"pods": "1"})]) == []
    (charged,) = charge(attrs({}, DEPLOYMENTS), [quota({"count/deployments.apps": "3"})])
    assert charged["status"]["used"] == {"count/deployments.apps": "1"}


def test_an_update_charges_only_what_grows():
    old = {"metadata": {"name": "web", "resourceVersion": "3"},
           "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    new = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    q = quota({"services": "5", "services.nodeports": "2"},
              {"services": "1", "services.nodeports": "1"})
    (charged,) = charge(attrs(new, kinds.SERVICES, "UPDATE", old), [q])
    assert charged["status"]["used"] == {"services": "1", "services.nodeports": "2"}
    assert charge(attrs(old, kinds.SERVICES, "UPDATE", old), [q]) == []


@pytest.mark.parametrize("text", ["1e999999999", "1E-999999999", "9" * 5000, "0." + "1" * 300])
def test_absurd_quantities_are_refused_at_once(text):
    with pytest.raises(QuantityTooLarge):
        parse_quantity(text)
    assert parse_quantity("1e256") == 10**256 and parse_quantity("1Ei") == 2**60
