"""The ResourceQuota admission plugin through the real app (FakeStore): charge, refuse, retry."""

import falcon.testing
import pytest

from control import errors
from control.api import admission
from control.api.admission.resource_quota import CONFLICT_RETRIES, ResourceQuotaAdmission
from control.api.app import create_app
from control.objects import kinds
from tests.support.fake_store import FakeStore

NS = "/api/v1/namespaces/default"
QUOTA = f"{NS}/resourcequotas/compute"


def pod(name, **resources):
    container = {"name": "web", "image": "busybox"}
    if resources:
        container["resources"] = resources
    return {"metadata": {"name": name}, "spec": {"containers": [container]}}


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def make_quota(client, hard, used=None):
    """Create a quota and write its status as the controller would."""
    created = client.simulate_post(f"{NS}/resourcequotas", json={
        "metadata": {"name": "compute"}, "spec": {"hard": hard}})
    assert created.status_code == 201, created.json
    body = created.json
    body["status"] = {"hard": hard, "used": used or {name: "0" for name in hard}}
    answer = client.simulate_put(f"{QUOTA}/status", json=body)
    assert answer.status_code == 200, answer.json


def used(client):
    return client.simulate_get(QUOTA).json["status"]["used"]


def test_creates_are_charged_until_the_quota_is_full(client):
    make_quota(client, {"pods": "2", "requests.cpu": "1"})
    for name in ("a", "b"):
        assert client.simulate_post(f"{NS}/pods", json=pod(
            name, requests={"cpu": "300m"})).status_code == 201
    assert used(client) == {"pods": "2", "requests.cpu": "600m"}
    refused = client.simulate_post(f"{NS}/pods", json=pod("web", requests={"cpu": "300m"}))
    assert refused.status_code == 403
    assert refused.json["message"] == (
        'pods "web" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, '
        'limited: pods=2')
    assert used(client) == {"pods": "2", "requests.cpu": "600m"}


def test_a_dry_run_is_checked_but_not_charged(client):
    make_quota(client, {"pods": "1"})
    answer = client.simulate_post(f"{NS}/pods", json=pod("web"), params={"dryRun": "All"})
    assert answer.status_code == 201
    assert used(client) == {"pods": "0"}
    client.simulate_post(f"{NS}/pods", json=pod("real"))
    refused = client.simulate_post(f"{NS}/pods", json=pod("web"), params={"dryRun": "All"})
    assert refused.status_code == 403


def test_a_quota_the_controller_has_not_counted_does_not_constrain_yet(client):
    client.simulate_post(f"{NS}/resourcequotas", json={
        "metadata": {"name": "compute"}, "spec": {"hard": {"pods": "0"}}})
    assert client.simulate_post(f"{NS}/pods", json=pod("web")).status_code == 201


def test_object_counts_and_service_updates(client):
    make_quota(client, {"count/configmaps": "1", "services.nodeports": "1"})
    assert client.simulate_post(f"{NS}/configmaps", json={
        "metadata": {"name": "one"}}).status_code == 201
    refused = client.simulate_post(f"{NS}/configmaps", json={"metadata": {"name": "two"}})
    assert refused.status_code == 403
    assert "requested: count/configmaps=1, used: count/configmaps=1" in refused.json["message"]
    svc = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    created = client.simulate_post(f"{NS}/services", json=svc)
    assert created.status_code == 201, created.json
    body = created.json
    body["spec"]["type"] = "NodePort"
    body["spec"]["ports"].append({"port": 81, "name": "b"})
    body["spec"]["ports"][0]["name"] = "a"
    refused = client.simulate_put(f"{NS}/services/web", json=body)
    assert refused.status_code == 403
    assert "requested: services.nodeports=2" in refused.json["message"]


def test_a_hostile_quota_is_a_422_and_the_server_serves_on(client):
    answer = client.simulate_post(f"{NS}/resourcequotas", json={
        "metadata": {"name": "huge"}, "spec": {"hard": {"pods": "1e999999999",
                                                        "cpu": "9" * 5000}}})
    assert answer.status_code == 422
    assert "quantity too large" in answer.json["message"]
    many = {f"count/things{i}.example.com": "1" for i in range(1000)}
    answer = client.simulate_post(f"{NS}/resourcequotas", json={
        "metadata": {"name": "many"}, "spec": {"hard": many}})
    assert answer.status_code == 422
    assert "Too many: 1000: must have at most 256 items" in answer.json["message"]
    hostile_pod = pod("hostile", limits={"cpu": "1e999999999"})
    answer = client.simulate_post(f"{NS}/pods", json=hostile_pod)
    assert answer.status_code == 422
    assert "resources.limits[cpu]" in answer.json["message"]
    assert client.simulate_post(f"{NS}/pods", json=pod("web")).status_code == 201


class ConflictingRegistry:
    """A registry whose quota updates conflict ``conflicts`` times, then succeed."""

    def __init__(self, quotas, conflicts):
        self.quotas, self.conflicts, self.updates, self.lists = quotas, conflicts, [], 0

    def list(self, resource, namespace):
        self.lists += 1
        return list(self.quotas), 1, None

    def update(self, resource, obj):
        if self.conflicts:
            self.conflicts -= 1
            raise errors.Conflict("stale")
        self.updates.append(obj)
        return obj


class Service:
    def __init__(self, registry):
        self.registry = registry


def counted_quota():
    return {"metadata": {"name": "compute", "resourceVersion": "4"},
            "spec": {"hard": {"pods": "3"}},
            "status": {"hard": {"pods": "3"}, "used": {"pods": "1"}}}


def attrs():
    return admission.Attributes("CREATE", kinds.PODS, "default", pod("web"))


def test_a_conflict_reads_the_quotas_again_and_retries():
    registry = ConflictingRegistry([counted_quota()], conflicts=2)
    pauses = []
    ResourceQuotaAdmission(Service(registry), sleep=pauses.append).validate(attrs())
    assert registry.lists == 3 and len(pauses) == 2
    assert registry.updates[0]["status"]["used"] == {"pods": "2"}


def test_endless_conflicts_end_in_a_409():
    registry = ConflictingRegistry([counted_quota()], conflicts=10**6)
    plugin = ResourceQuotaAdmission(Service(registry), sleep=lambda _: None)
    with pytest.raises(errors.Conflict, match="kept changing"):
        plugin.validate(attrs())
    assert registry.lists == CONFLICT_RETRIES


def test_writes_that_cannot_change_usage_are_not_looked_at():
    registry = ConflictingRegistry([counted_quota()], conflicts=0)
    plugin = ResourceQuotaAdmission(Service(registry))
    for operation, resource, sub in (("UPDATE", kinds.PODS, None),
                                     ("CREATE", kinds.PODS, "binding"),
                                     ("CREATE", kinds.NAMESPACES, None)):
        plugin.validate(admission.Attributes(operation, resource, "default", pod("web"),
                                             pod("web"), sub))
    assert registry.lists == 0
