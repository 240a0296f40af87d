"""Client-side apply's three-way patch: what is set, what is removed, what is left alone."""


import pytest

from cli.apply_cmd import LAST_APPLIED, last_applied_of, three_way_patch, with_last_applied
from control.objects.patch import strategic_merge_patch

DEP = "V1Deployment"


def container(name, **fields):
    return {"name": name, "image": "nginx", **fields}


def dep(containers=None, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": containers or [container("c")]}},
                     **spec}}


CASES = [
    # (name, last applied, new manifest, live object, expected patch)
    ("unchanged", {"a": 1}, {"a": 1}, {"a": 1, "status": {"x": 1}}, {}),
    ("added field", {"a": 1}, {"a": 1, "b": 2}, {"a": 1}, {"b": 2}),
    ("changed field", {"a": 1}, {"a": 2}, {"a": 1}, {"a": 2}),
    ("removed field", {"a": 1, "b": 2}, {"a": 1}, {"a": 1, "b": 2}, {"b": None}),
    ("removed field already gone", {"a": 1, "b": 2}, {"a": 1}, {"a": 1}, {}),
    ("field set by others kept", {"a": 1}, {"a": 1}, {"a": 1, "defaulted": True}, {}),
    ("nested removal", {"m": {"x": 1, "y": 2}}, {"m": {"x": 1}}, {"m": {"x": 1, "y": 2, "z": 3}},
     {"m": {"y": None}}),
    ("map label changed", {"m": {"l": "a"}}, {"m": {"l": "b"}}, {"m": {"l": "a"}},
     {"m": {"l": "b"}}),
    ("primitive list replaced", {"l": [1, 2]}, {"l": [1]}, {"l": [1, 2]}, {"l": [1]}),
    ("list equal", {"l": [1]}, {"l": [1]}, {"l": [1]}, {}),
]


@pytest.mark.parametrize("name,original,modified,current,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_three_way_patch(name, original, modified, current, expected):
    assert three_way_patch(original, modified, current) == expected


def test_containers_are_patched_by_name_and_removed_with_delete_directive():
    before = dep([container("c"), container("side")])
    after = dep([container("c", image="nginx:2")])
    live = dep([container("c", imagePullPolicy="Always"), container("side")])
    patch = three_way_patch(before, after, live, DEP)
    assert patch == {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "nginx:2"}, {"name": "side", "$patch": "delete"}]}}}}
    merged = strategic_merge_patch(live, patch, DEP)
    assert merged["spec"]["template"]["spec"]["containers"] == [
        {"name": "c", "image": "nginx:2", "imagePullPolicy": "Always"}]


def test_removed_env_var_inside_a_container():
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    before = dep([container("c", env=env)])
    after = dep([container("c", env=env[:1])])
    patch = three_way_patch(before, after, before, DEP)
    assert patch == {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "env": [{"name": "B", "$patch": "delete"}]}]}}}}
    merged = strategic_merge_patch(before, patch, DEP)
    assert merged["spec"]["template"]["spec"]["containers"][0]["env"] == env[:1]


def test_new_container_is_sent_whole_and_defaults_on_live_are_ignored():
    before = dep([container("c")])
    after = dep([container("c"), container("new")])
    live = dep([container("c", terminationMessagePath="/dev/termination-log")])
    assert three_way_patch(before, after, live, DEP) == {
        "spec": {"template": {"spec": {"containers": [container("new")]}}}}


def test_last_applied_annotation_round_trip():
    manifest = dep(replicas=2)
    stamped = with_last_applied(manifest, "prod")
    text = stamped["metadata"]["annotations"][LAST_APPLIED]
    # kubectl's own serialization: namespace set, an empty annotations map, sorted keys.
    assert text.startswith('{"apiVersion":"apps/v1","kind":"Deployment","metadata":'
                           '{"annotations":{},"name":"web","namespace":"prod"},"spec":')
    assert text.endswith("}\n")
    expected = {**manifest, "metadata": {"name": "web", "namespace": "prod", "annotations": {}}}
    assert last_applied_of(stamped) == expected
    # Applying the same manifest again changes nothing.
    assert three_way_patch(last_applied_of(stamped), with_last_applied(manifest, "prod"),
                           stamped, DEP) == {}
    assert last_applied_of({"metadata": {}}) == {}
