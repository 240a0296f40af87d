"""Field sets and managedFields without a server: paths, FieldsV1, Update and Apply rules."""

import copy

import pytest

from control.objects import applymerge, fieldpath, managedfields
from control.objects.managedfields import ApplyConflict, Scope

NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
SCOPE = Scope("V1Deployment", "apps/v1", True, "", NOW)


def deployment(replicas=2, image="nginx", labels=None, ports=(80,)):
    container = {"name": "web", "image": image}
    if ports:
        container["ports"] = [{"containerPort": port} for port in ports]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels or {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [container]}}}}


def by_manager(entries):
    return {e.manager: e for e in entries}


def test_apply_set_has_kubernetes_fieldsv1_shape():
    _, entries = managedfields.apply(None, deployment(), [], "kubectl", False, SCOPE)
    [rendered] = managedfields.render(entries)
    assert rendered["manager"] == "kubectl" and rendered["operation"] == "Apply"
    assert rendered["fieldsType"] == "FieldsV1" and rendered["apiVersion"] == "apps/v1"
    spec = rendered["fieldsV1"]["f:spec"]
    assert rendered["fieldsV1"]["f:metadata"] == {"f:labels": {"f:app": {}}}
    assert spec["f:selector"] == {} and spec["f:replicas"] == {}     # atomic selector: a leaf
    container = spec["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert container["."] == {} and container["f:image"] == {} and container["f:name"] == {}
    port = container["f:ports"]['k:{"containerPort":80,"protocol":"TCP"}']
    assert port == {".": {}, "f:containerPort": {}}


def test_fieldsv1_round_trip_and_path_strings():
    members = fieldpath.members(fieldpath.tracked(deployment(), True), "V1Deployment")
    trie = fieldpath.to_fields_v1(members)
    assert fieldpath.from_fields_v1(trie) == frozenset(members)
    rendered = {fieldpath.path_string(p) for p in members}
    assert '.spec.template.spec.containers[name="web"].image' in rendered
    assert '.spec.template.spec.containers[name="web"].ports[containerPort=80,protocol="TCP"]' \
        in rendered
    assert fieldpath.path_string(("f:metadata", "f:finalizers", 'v:"a/b"')) == \
        '.metadata.finalizers[="a/b"]'


@pytest.mark.parametrize("bad", [[], {"x:y": {}}, {"f:a": "text"}, {"f:a": {"bogus": {}}}])
def test_malformed_fieldsv1_is_refused(bad):
    with pytest.raises(fieldpath.FieldPathError):
        fieldpath.from_fields_v1(bad)


def test_server_metadata_and_status_are_never_owned():
    obj = deployment()
    obj["metadata"].update(uid="u", resourceVersion="3", generation=2, namespace="default")
    obj["status"] = {"replicas": 2}
    paths = {fieldpath.path_string(p) for p in SCOPE.members(obj)}
    assert not any(p.startswith((".metadata.uid", ".status", ".apiVersion", ".metadata.name"))
                   for p in paths)
    status_scope = Scope("V1Deployment", "apps/v1", True, "status", NOW)
    assert {fieldpath.path_string(p) for p in status_scope.members(obj)} == {".status.replicas"}


def test_conflict_then_force_moves_ownership():
    live, entries = managedfields.apply(None, deployment(), [], "a", False, SCOPE)
    config = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 5}}
    with pytest.raises(ApplyConflict) as caught:
        managedfields.apply(live, config, entries, "b", False, SCOPE)
    assert str(caught.value) == 'Apply failed with 1 conflict: conflict with "a": .spec.replicas'
    assert caught.value.causes() == [{"reason": "FieldManagerConflict",
                                      "message": 'conflict with "a"', "field": ".spec.replicas"}]
    merged, entries = managedfields.apply(live, config, entries, "b", True, SCOPE)
    owners = by_manager(entries)
    assert merged["spec"]["replicas"] == 5
    assert ("f:spec", "f:replicas") in owners["b"].paths
    assert ("f:spec", "f:replicas") not in owners["a"].paths


def test_same_value_is_shared_and_survives_one_owner_letting_go():
    live, entries = managedfields.apply(None, deployment(labels={"app": "web", "tier": "x"}),
                                        [], "a", False, SCOPE)
    shared = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "web", "labels": {"tier": "x"}}}
    live, entries = managedfields.apply(live, shared, entries, "b", False, SCOPE)
    live, entries = managedfields.apply(live, deployment(), entries, "a", False, SCOPE)
    assert live["metadata"]["labels"] == {"app": "web", "tier": "x"}      # b still owns tier
    live, entries = managedfields.apply(live, {**shared, "metadata": {"name": "web"}},
                                        entries, "b", False, SCOPE)
    assert live["metadata"]["labels"] == {"app": "web"}                   # nobody does now


def test_dropping_a_list_item_and_a_field_removes_them():
    live, entries = managedfields.apply(None, deployment(ports=(80, 443)), [], "a", False, SCOPE)
    smaller = deployment(ports=(80,))
    del smaller["spec"]["replicas"]
    live, _ = managedfields.apply(live, smaller, entries, "a", False, SCOPE)
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80}] and "replicas" not in live["spec"]


def test_containers_merge_by_name_between_managers():
    live, entries = managedfields.apply(None, deployment(), [], "a", False, SCOPE)
    sidecar = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "log", "image": "b"}]}}}}
    live, entries = managedfields.apply(live, sidecar, entries, "b", False, SCOPE)
    assert [c["name"] for c in live["spec"]["template"]["spec"]["containers"]] == ["web", "log"]


def test_update_takes_changed_fields_from_appliers_and_keeps_time_when_unchanged():
    live, entries = managedfields.apply(None, deployment(), [], "a", False, SCOPE)
    edited = copy.deepcopy(live)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    later = Scope("V1Deployment", "apps/v1", True, "", LATER)
    entries = managedfields.record_update(entries, live, edited, "kubectl-edit", later)
    image = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")
    owners = by_manager(entries)
    assert image in owners["kubectl-edit"].paths and image not in owners["a"].paths
    assert owners["kubectl-edit"].time == LATER
    with pytest.raises(ApplyConflict) as caught:
        managedfields.apply(edited, deployment(), entries, "a", False, later)
    assert 'conflict with "kubectl-edit" using apps/v1' in str(caught.value)
    again = managedfields.record_update(entries, edited, edited, "kubectl-edit",
                                        Scope("V1Deployment", "apps/v1", True, "", "2027"))
    assert by_manager(again)["kubectl-edit"].time == LATER


def test_update_entries_are_capped():
    obj, entries = {"metadata": {"name": "c"}, "data": {}}, []
    scope = Scope("V1ConfigMap", "v1", False, "", NOW)
    for n in range(25):
        new = copy.deepcopy(obj)
        new["data"][f"k{n}"] = "v"
        entries = managedfields.record_update(entries, obj, new, f"m{n:02}",
                                              Scope("V1ConfigMap", "v1", False, "", f"T{n:02}"))
        obj = new
    rendered = managedfields.render(entries)
    assert len(rendered) == managedfields.MAX_UPDATE_MANAGERS
    assert rendered[0]["manager"] == managedfields.ANCIENT_CHANGES
    assert scope.api_version == "v1"


def test_duplicate_keys_in_an_applied_list_are_refused():
    config = deployment()
    containers = config["spec"]["template"]["spec"]["containers"]
    containers.append(dict(containers[0]))
    with pytest.raises(fieldpath.FieldPathError, match="same keys"):
        managedfields.apply(None, config, [], "a", False, SCOPE)


def test_first_apply_to_an_object_without_managed_fields_conflicts_with_its_writer():
    live = deployment()
    with pytest.raises(ApplyConflict, match="before-first-apply"):
        managedfields.apply(live, deployment(replicas=7), [], "a", False, SCOPE)


def test_remove_drops_empty_maps_and_lists():
    obj = deployment(labels={"only": "x"})
    assert applymerge.remove(obj, ("f:metadata", "f:labels", "f:only"), "V1Deployment")
    assert "labels" not in obj["metadata"]
    ports = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:ports",
             'k:{"containerPort":80,"protocol":"TCP"}')
    assert applymerge.remove(obj, ports, "V1Deployment")
    assert "ports" not in obj["spec"]["template"]["spec"]["containers"][0]
    assert not applymerge.remove(obj, ports, "V1Deployment")
