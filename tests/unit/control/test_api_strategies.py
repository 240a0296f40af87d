"""Per-kind strategies and the object service's list and delete-collection verbs."""

import datetime

import pytest

from control import errors
from control.api import deletion
from control.api.service import ObjectService
from control.api.strategies import Strategy, strategy_for
from control.api.strategies.job import JobStrategy
from control.api.strategies.namespace import NamespaceFinalizeStrategy, NamespaceStrategy
from control.api.strategies.pod import PodStrategy
from control.api.strategies.service import ServiceStrategy
from control.api.strategies.status import StatusStrategy
from control.objects import kinds
from control.registry import Registry
from tests.support.fake_store import FakeStore

NOW = datetime.datetime(2026, 11, 22, 10, 0, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("resource, subresource, expected", [
    (kinds.NAMESPACES, None, NamespaceStrategy),
    (kinds.NAMESPACES, "finalize", NamespaceFinalizeStrategy),
    (kinds.PODS, None, PodStrategy),
    (kinds.SERVICES, None, ServiceStrategy),
    (kinds.JOBS, None, JobStrategy),
    (kinds.CONFIGMAPS, None, Strategy),
    (kinds.DEPLOYMENTS, "status", StatusStrategy),
])
def test_strategy_for_picks_the_kinds_rules(resource, subresource, expected):
    strategy = strategy_for(resource, subresource)
    assert type(strategy) is expected and strategy.resource == resource


def test_a_subresource_without_rules_cannot_be_written():
    with pytest.raises(errors.NotFound):
        strategy_for(kinds.PODS, "finalize")


def test_status_writes_keep_the_stored_spec_and_defer_to_the_kind():
    old = {"metadata": {"name": "n", "resourceVersion": "3"}, "spec": {"finalizers": ["k"]},
           "status": {"phase": "Active"}}
    new = {"metadata": {"name": "n", "resourceVersion": "4"}, "spec": {},
           "status": {"phase": "Terminating"}}
    status = strategy_for(kinds.NAMESPACES, "status")
    merged = status.prepare_for_update(old, new)
    assert merged["spec"] == {"finalizers": ["k"]} and merged["status"]["phase"] == "Terminating"
    assert merged["metadata"]["resourceVersion"] == "4"
    assert status.awaits_cleanup(merged) and status.warnings(merged) == []


def test_only_finalize_changes_a_namespaces_finalizers():
    old = {"apiVersion": "v1", "kind": "Namespace", "spec": {"finalizers": ["kubernetes"]},
           "metadata": {"name": "n", "generation": 1}}
    new = {"apiVersion": "v1", "kind": "Namespace", "spec": {"finalizers": []},
           "metadata": {"name": "n"}}
    assert strategy_for(kinds.NAMESPACES).prepare_for_update(old, new)["spec"] == \
        {"finalizers": ["kubernetes"]}
    assert strategy_for(kinds.NAMESPACES, "finalize").prepare_for_update(old, new)["spec"] == \
        {"finalizers": []}


def test_pods_alone_are_deleted_gracefully():
    bound = {"spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 12}}
    assert strategy_for(kinds.PODS).grace_period(bound, None) == 12
    assert strategy_for(kinds.PODS).grace_period(bound, 3) == 3
    assert strategy_for(kinds.PODS).grace_period({"spec": {}}, None) == 0
    assert strategy_for(kinds.CONFIGMAPS).grace_period(bound, None) == 0


def test_deleting_a_namespace_marks_it_terminating():
    ns = {"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]},
          "status": {"phase": "Active"}}
    action, marked = deletion.plan(strategy_for(kinds.NAMESPACES), ns,
                                   deletion.DeleteOptions(), NOW)
    assert action == deletion.UPDATE and marked["status"]["phase"] == "Terminating"
    assert marked["metadata"]["deletionTimestamp"] == "2026-11-22T10:00:00Z"


def test_a_job_selects_its_own_uid():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "uid": "u1"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}],
                                          "restartPolicy": "Never"}}}}
    prepared = strategy_for(kinds.JOBS).prepare_for_create(job)
    assert prepared["spec"]["selector"]["matchLabels"] == \
        {"batch.kubernetes.io/controller-uid": "u1"}
    assert prepared["spec"]["template"]["metadata"]["labels"]["job-name"] == "j"


@pytest.fixture
def service():
    service = ObjectService(Registry(FakeStore()), clock=lambda: NOW)
    service.ensure_system_namespaces()
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        service.create(kinds.CONFIGMAPS, "default",
                       {"metadata": {"name": name, "labels": {"tier": tier}}})
    return service


def test_list_filters_by_label_and_field_selectors(service):
    items, revision, token = service.list(kinds.CONFIGMAPS, "default", label_selector="tier=web")
    assert [o["metadata"]["name"] for o in items] == ["a", "c"] and revision and token is None
    items, _, _ = service.list(kinds.CONFIGMAPS, None, label_selector="tier=web",
                               field_selector="metadata.name!=a")
    assert [o["metadata"]["name"] for o in items] == ["c"]
    with pytest.raises(errors.BadRequest):
        service.list(kinds.CONFIGMAPS, "default", label_selector="tier in (")


def test_delete_collection_deletes_what_matches(service):
    deleted, _ = service.delete_collection(kinds.CONFIGMAPS, "default", label_selector="tier=web")
    assert [o["metadata"]["name"] for o in deleted] == ["a", "c"]
    left, _, _ = service.list(kinds.CONFIGMAPS, "default")
    assert [o["metadata"]["name"] for o in left] == ["b"]


def test_the_app_reaches_the_store_through_the_service(service):
    service.store_ready()
    _, revision, _ = service.list(kinds.CONFIGMAPS)
    watch = service.watch_source().open(kinds.CONFIGMAPS, "default", revision)
    try:
        service.create(kinds.CONFIGMAPS, "default", {"metadata": {"name": "d"}})
        event = watch.next_event(timeout=5)
        assert event is not None and event["kv"]["key"].endswith(b"/default/d")
    finally:
        watch.cancel()
