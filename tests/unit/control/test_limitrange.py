"""LimitRanger (control/objects/limitranges.py) and LimitRange/ResourceQuota validation."""

import copy

import falcon.testing
import pytest

from control.api.app import create_app
from control.objects import limitranges
from control.objects.defaults import apply_defaults
from control.objects.validation_quota import limitrange_errors, resourcequota_errors
from tests.support.fake_store import FakeStore


def limit_range(*items):
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
            "spec": {"limits": list(items)}}


def pod(*resources, init=()):
    return {"metadata": {"name": "web"}, "spec": {
        "containers": [{"name": f"c{i}", "resources": copy.deepcopy(r)}
                       for i, r in enumerate(resources)],
        "initContainers": [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]}}


def test_defaults_fill_only_what_containers_miss_and_say_so():
    ranges = limit_range({"type": "Container", "default": {"cpu": "1", "memory": "1Gi"},
                          "defaultRequest": {"cpu": "100m"}})
    defaulted = limitranges.default_pod(pod({"limits": {"cpu": "2"}}, init=[{}]), ranges)
    first = defaulted["spec"]["containers"][0]["resources"]
    assert first == {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "100m"}}
    init = defaulted["spec"]["initContainers"][0]["resources"]
    assert init == {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}
    assert defaulted["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container c0; memory limit for container c0; "
        "cpu request for init container i0; cpu, memory limit for init container i0")
    untouched = pod({"limits": {"cpu": "1"}})
    assert limitranges.default_pod(untouched, limit_range({"type": "Pod", "max": {"cpu": "2"}}))\
        == pod({"limits": {"cpu": "1"}})


@pytest.mark.parametrize("item,resources,message", [
    ({"max": {"cpu": "2"}}, {"limits": {"cpu": "3"}},
     "maximum cpu usage per Container is 2, but limit is 3"),
    ({"max": {"cpu": "2"}}, {"requests": {"cpu": "1"}},
     "maximum cpu usage per Container is 2.  No limit is specified"),
    ({"max": {"memory": "1Gi"}}, {"limits": {"memory": "1Gi"}, "requests": {"memory": "2Gi"}},
     "maximum memory usage per Container is 1Gi, but request is 2Gi"),
    ({"min": {"cpu": "100m"}}, {"limits": {"cpu": "1"}},
     "minimum cpu usage per Container is 100m.  No request is specified"),
    ({"min": {"cpu": "100m"}}, {"requests": {"cpu": "50m"}},
     "minimum cpu usage per Container is 100m, but request is 50m"),
    ({"maxLimitRequestRatio": {"cpu": "2"}}, {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}},
     "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"),
    ({"maxLimitRequestRatio": {"cpu": "2"}}, {"limits": {"cpu": "1"}},
     "cpu max limit to request ratio per Container is 2, but no request is specified or "
     "request is 0"),
])
def test_container_constraints_answer_kubernetes_messages(item, resources, message):
    problems = limitranges.pod_violations(pod(resources), limit_range({"type": "Container",
                                                                       **item}))
    assert problems == [message]


def test_pod_items_bound_the_sum_and_claims_their_storage():
    ranges = limit_range({"type": "Pod", "max": {"cpu": "2"}})
    within = pod({"limits": {"cpu": "1"}}, {"limits": {"cpu": "1"}})
    over = pod({"limits": {"cpu": "1"}}, {"limits": {"cpu": "1500m"}})
    assert limitranges.pod_violations(within, ranges) == []
    assert limitranges.pod_violations(over, ranges) == [
        "maximum cpu usage per Pod is 2, but limit is 2500m"]
    claims = limit_range({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"},
                          "max": {"storage": "10Gi"}})
    claim = {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    assert limitranges.claim_violations(claim, claims) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    assert limitranges.aggregate(["a", "b"]) == "[a, b]"


def test_limit_range_defaulting_fills_default_and_default_request():
    defaulted = apply_defaults(limit_range({"type": "Container", "max": {"cpu": "2"},
                                            "min": {"memory": "64Mi"}}))
    (item,) = defaulted["spec"]["limits"]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}


def test_limit_range_validation():
    errors = limitrange_errors(limit_range(
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
         "maxLimitRequestRatio": {"cpu": "500m"}},
        {"type": "Pod", "default": {"cpu": "1"}, "max": {"gpu": "1"}},
        {"type": "Pod"},
        {"type": "Widget"},
        {"type": "PersistentVolumeClaim"}))
    paths = {path: message for path, _, message in errors}
    assert paths["spec.limits[0].min[cpu]"] == \
        'Invalid value: "2": min value 2 is greater than max value 1'
    assert paths["spec.limits[0].maxLimitRequestRatio[cpu]"].endswith("ratio 500m is less than 1")
    assert paths["spec.limits[1].default"] == \
        "Forbidden: may not be specified when `type` is 'Pod'"
    assert paths["spec.limits[1].max[gpu]"].endswith("must be a standard resource for containers")
    assert paths["spec.limits[2].type"] == 'Duplicate value: "Pod"'
    assert paths["spec.limits[3].type"].endswith("must be a standard limit type or fully qualified")
    assert "either minimum or maximum storage value is required" in paths["spec.limits[4].limits"]
    ok = limit_range({"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "4"},
                      "maxLimitRequestRatio": {"cpu": "40"}})
    assert limitrange_errors(ok) == []
    too_wide = limit_range({"type": "Container", "min": {"cpu": "1"}, "max": {"cpu": "2"},
                            "maxLimitRequestRatio": {"cpu": "3"}})
    assert limitrange_errors(too_wide)[0][2].endswith(
        "ratio 3 is greater than max/min = 2.000000")


def test_resource_quota_validation():
    errors = resourcequota_errors({"spec": {
        "hard": {"pods": "1.5", "cpu": "-1", "bogus": "1", "count/deployments.apps": "2",
                 "services": "1"},
        "scopes": ["BestEffort", "NotBestEffort", "Nope"],
        "scopeSelector": {"matchExpressions": [
            {"scopeName": "Terminating", "operator": "In", "values": ["x"]},
            {"scopeName": "PriorityClass", "operator": "In"}]}}})
    messages = [f"{path}: {message}" for path, _, message in errors]
    assert 'spec.hard[pods]: Invalid value: "1.5": must be an integer' in messages
    assert 'spec.hard[cpu]: Invalid value: "-1": must be greater than or equal to 0' in messages
    assert 'spec.hard[bogus]: Invalid value: "bogus": must be a standard resource for quota' \
        in messages
    scopes = '[]core.ResourceQuotaScope{"BestEffort", "NotBestEffort", "Nope"}'
    assert f"spec.scopes: Invalid value: {scopes}: unsupported scope" in messages
    assert f"spec.scopes: Invalid value: {scopes}: conflicting scopes" in messages
    assert f"spec.scopes: Invalid value: {scopes}: unsupported scope applied to resource" \
        in messages
    assert any(m.startswith("spec.scopeSelector.matchExpressions[0].operator: ") and
               "must be 'Exist' when scope is any of" in m for m in messages)
    assert any(m.startswith("spec.scopeSelector.matchExpressions[1].values: Required value")
               for m in messages)
    assert not any("count/deployments.apps" in m for m in messages)
    assert resourcequota_errors({"spec": {"hard": {"pods": "10", "requests.cpu": "4"},
                                          "scopes": ["NotTerminating"]}}) == []


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


NS = "/api/v1/namespaces/default"


def test_limit_ranger_through_the_api(client):
    answer = client.simulate_post(f"{NS}/limitranges", json=limit_range(
        {"type": "Container", "max": {"cpu": "2"}, "defaultRequest": {"cpu": "100m"}}))
    assert answer.status_code == 201, answer.json
    plain = {"metadata": {"name": "plain"},
             "spec": {"containers": [{"name": "web", "image": "busybox"}]}}
    created = client.simulate_post(f"{NS}/pods", json=plain).json
    assert created["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "2"}, "requests": {"cpu": "100m"}}
    big = {"metadata": {"name": "web"}, "spec": {"containers": [
        {"name": "web", "image": "busybox", "resources": {"limits": {"cpu": "3"}}}]}}
    refused = client.simulate_post(f"{NS}/pods", json=big)
    assert refused.status_code == 403
    assert refused.json["message"] == ('pods "web" is forbidden: maximum cpu usage per '
                                       'Container is 2, but limit is 3')
    assert refused.json["reason"] == "Forbidden"
    # Another namespace has no LimitRange: nothing is defaulted or refused there.
    other = client.simulate_post("/api/v1/namespaces/kube-public/pods", json=big)
    assert other.status_code == 201
