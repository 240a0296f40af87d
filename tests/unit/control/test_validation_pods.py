"""Pod spec validation of names and paths, with Kubernetes' field paths and wording."""

import pytest

from control import errors
from control.api.strategies import strategy_for
from control.objects import kinds
from control.objects.podvalidation import validate_object, validate_pod_spec


def _spec(containers=None, volumes=None, init=None):
    spec = {"containers": containers or [{"name": "c", "image": "x"}]}
    if volumes is not None:
        spec["volumes"] = volumes
    if init is not None:
        spec["initContainers"] = init
    return spec


def _fields(errs):
    return {path: message for path, _, message in errs}


def test_a_plain_pod_is_valid():
    spec = _spec([{"name": "web", "volumeMounts": [{"name": "data", "mountPath": "/data",
                                                    "subPath": "a/b"}]}],
                 [{"name": "data", "emptyDir": {}},
                  {"name": "cfg", "configMap": {"name": "cm", "items": [
                      {"key": "k", "path": "dir/k", "mode": 0o600}]}}])
    assert validate_pod_spec(spec) == []


@pytest.mark.parametrize("name", ["../x", "A", "a/b", "a_b", "x" * 64])
def test_container_names_are_dns1123_labels(name):
    errs = _fields(validate_pod_spec(_spec([{"name": name}])))
    assert errs["spec.containers[0].name"].startswith(f'Invalid value: "{name}": ')


def test_container_names_are_unique_across_init_containers():
    errs = validate_pod_spec(_spec([{"name": "a"}], init=[{"name": "a"}]))
    assert errs == [("spec.initContainers[0].name", "FieldValueDuplicate",
                     'Duplicate value: "a"')]


def test_a_container_needs_a_name():
    assert _fields(validate_pod_spec(_spec([{"image": "x"}]))) == {
        "spec.containers[0].name": "Required value"}


def test_volume_names_are_labels_and_unique():
    errs = _fields(validate_pod_spec(_spec(volumes=[
        {"name": "v/1", "emptyDir": {}}, {"name": "v", "emptyDir": {}},
        {"name": "v", "emptyDir": {}}])))
    assert "spec.volumes[0].name" in errs
    assert errs["spec.volumes[2].name"] == 'Duplicate value: "v"'


def test_a_volume_names_one_source():
    errs = validate_pod_spec(_spec(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {
        "path": "/x"}}]))
    assert errs == [("spec.volumes[0].emptyDir", "FieldValueForbidden",
                     "Forbidden: may not specify more than 1 volume type")]


def test_mounts_reference_volumes_and_have_unique_paths():
    spec = _spec([{"name": "c", "volumeMounts": [
        {"name": "nope", "mountPath": "/a"}, {"name": "v", "mountPath": "/a"},
        {"name": "v"}]}], [{"name": "v", "emptyDir": {}}])
    errs = _fields(validate_pod_spec(spec))
    assert errs == {
        "spec.containers[0].volumeMounts[0].name": 'Not found: "nope"',
        "spec.containers[0].volumeMounts[1].mountPath": 'Invalid value: "/a": must be unique',
        "spec.containers[0].volumeMounts[2].mountPath": "Required value"}


@pytest.mark.parametrize("field,value,message", [
    ("subPath", "../../etc", "must not contain '..'"),
    ("subPath", "/etc", "must be a relative path"),
    ("subPathExpr", "a/../../b", "must not contain '..'"),
    ("mountPath", "/a/../../etc", "must not contain '..'"),
])
def test_mount_paths_never_step_back(field, value, message):
    mount = {"name": "v", "mountPath": "/m", field: value}
    errs = _fields(validate_pod_spec(_spec([{"name": "c", "volumeMounts": [mount]}],
                                           [{"name": "v", "emptyDir": {}}])))
    assert errs == {f"spec.containers[0].volumeMounts[0].{field}":
                    f'Invalid value: "{value}": {message}'}


def test_sub_path_and_sub_path_expr_exclude_each_other():
    mount = {"name": "v", "mountPath": "/m", "subPath": "a", "subPathExpr": "b"}
    errs = _fields(validate_pod_spec(_spec([{"name": "c", "volumeMounts": [mount]}],
                                           [{"name": "v", "emptyDir": {}}])))
    assert "subPathExpr and subPath are mutually exclusive" in \
        errs["spec.containers[0].volumeMounts[0].subPathExpr"]


@pytest.mark.parametrize("volume,field,message", [
    ({"hostPath": {"path": "/var/../etc"}}, "spec.volumes[0].hostPath.path",
     "must not contain '..'"),
    ({"configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]}},
     "spec.volumes[0].configMap.items[0].path", "must not contain '..'"),
    ({"secret": {"secretName": "s", "items": [{"key": "k", "path": "/x"}]}},
     "spec.volumes[0].secret.items[0].path", "must be a relative path"),
    ({"secret": {"secretName": "s", "items": [{"key": "k", "path": "..x"}]}},
     "spec.volumes[0].secret.items[0].path", "must not start with '..'"),
    ({"downwardAPI": {"items": [{"path": "a/../../b", "fieldRef": {
        "fieldPath": "metadata.name"}}]}},
     "spec.volumes[0].downwardAPI.items[0].path", "must not contain '..'"),
    ({"projected": {"sources": [{"serviceAccountToken": {"path": "../token"}}]}},
     "spec.volumes[0].projected.sources[0].serviceAccountToken.path", "must not contain '..'"),
    ({"secret": {"secretName": "s", "defaultMode": 0o1777}},
     "spec.volumes[0].secret.defaultMode", "must be a number between 0 and 0777 (octal), "
                                           "both inclusive"),
])
def test_volume_source_paths(volume, field, message):
    errs = _fields(validate_pod_spec(_spec(volumes=[{"name": "v", **volume}])))
    assert field in errs and errs[field].endswith(message)


def test_templates_are_validated_where_they_are():
    deployment = {"spec": {"template": {"spec": _spec([{"name": "../x"}])}}}
    cronjob = {"spec": {"jobTemplate": {"spec": {"template": {"spec": _spec([{"name": "X"}])}}}}}
    assert _fields(validate_object("Deployment", deployment)).keys() == {
        "spec.template.spec.containers[0].name"}
    assert _fields(validate_object("CronJob", cronjob)).keys() == {
        "spec.jobTemplate.spec.template.spec.containers[0].name"}
    assert validate_object("ConfigMap", {"data": {}}) == []


def test_the_pod_strategy_answers_422_with_every_field():
    pod = {"metadata": {"name": "p"}, "spec": _spec(
        [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/m",
                                         "subPath": "../../etc"}]}],
        [{"name": "v", "emptyDir": {}}])}
    with pytest.raises(errors.Invalid) as caught:
        strategy_for(kinds.PODS).validate(pod)
    assert caught.value.code == 422
    assert "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../../etc\": " \
           "must not contain '..'" in str(caught.value)
