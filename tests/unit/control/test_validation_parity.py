"""Invalid objects get the 422 causes kube-apiserver gives: the table in validation_parity.yaml.

Each row edits a valid object of its kind (BASES below), sends it through the
object service (defaults, admission, strategy) and expects a cause with
Kubernetes' field path, reason and message among the 422's causes. Rows under
``updates`` create the valid object first and then PUT the edited one.

Row: [kind, edits, field, type, value, detail, match?, base edits?]. ``edits`` maps a path
(``spec.containers[0].name``) to its new value, ``<delete>`` removes it and
``<x*64>`` anywhere in a string stands for 64 x's. The message is built as
field.Error.ErrorBody words it: ``Invalid value: "A_b": <detail>``; ``raw:`` before
a value shows it as written (Go's %#v of a struct). ``match`` is ``prefix`` for
messages Kubernetes ends with a Go diff, ``suffix`` (the detail ends the message)
where the value is a whole pod template. An update row's ``base edits`` change the
valid object before it is created.
"""

import copy
import datetime
import json
import pathlib
import re

import pytest
import yaml

from control import errors
from control.api.service import ObjectService
from control.objects import kinds
from control.registry import Registry
from tests.support.fake_store import FakeStore

TABLE = yaml.safe_load((pathlib.Path(__file__).parent / "validation_parity.yaml").read_text())
NOW = datetime.datetime(2026, 12, 5, 3, 0, 0, tzinfo=datetime.timezone.utc)
REASONS = {"Required": "FieldValueRequired", "Invalid": "FieldValueInvalid",
           "NotSupported": "FieldValueNotSupported", "Duplicate": "FieldValueDuplicate",
           "Forbidden": "FieldValueForbidden", "NotFound": "FieldValueNotFound",
           "TooLong": "FieldValueTooLong"}


def _container():
    return {"name": "c", "image": "busybox"}


def _template(labels, restart=None):
    spec = {"containers": [_container()]}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": dict(labels)}, "spec": spec}


def _workload(kind, api_version, **spec):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "w"}, "spec": spec}


APP = {"app": "w"}
BASES = {
    "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [_container()]}},
    "Deployment": _workload("Deployment", "apps/v1", replicas=1,
                            selector={"matchLabels": APP}, template=_template(APP)),
    "ReplicaSet": _workload("ReplicaSet", "apps/v1", replicas=1,
                            selector={"matchLabels": APP}, template=_template(APP)),
    "StatefulSet": _workload("StatefulSet", "apps/v1", replicas=1, serviceName="w",
                             selector={"matchLabels": APP}, template=_template(APP)),
    "DaemonSet": _workload("DaemonSet", "apps/v1", selector={"matchLabels": APP},
                           template=_template(APP)),
    "Job": _workload("Job", "batch/v1", template=_template({}, "Never")),
    "CronJob": _workload("CronJob", "batch/v1", schedule="*/5 * * * *", jobTemplate={
        "spec": {"template": _template({}, "OnFailure")}}),
    "Service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                "spec": {"selector": APP, "ports": [{"port": 80}]}},
    "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                  "data": {"a": "b"}},
    "Secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
               "data": {"a": "Yg=="}},
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}},
    "ServiceAccount": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}},
}
_REPEAT = re.compile(r"<(.)\*(\d+)>")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([^\]]*)\]")


def expand(value):
    """Expand ``<x*N>`` in strings (and inside lists and maps)."""
    if isinstance(value, str):
        return _REPEAT.sub(lambda m: m.group(1) * int(m.group(2)), value)
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, dict):
        return {expand(k): expand(v) for k, v in value.items()}
    return value


def _steps(path):
    steps = []
    for name, index, key in _STEP.findall(path):
        steps.append(name or (int(index) if index else key))
    return steps


def apply_edits(obj, edits):
    """Return a copy of obj with each path set (or deleted)."""
    obj = copy.deepcopy(obj)
    for path, value in (edits or {}).items():
        steps = _steps(path)
        node = obj
        for step, following in zip(steps, steps[1:]):
            if isinstance(node, dict) and step not in node:
                node[step] = [] if isinstance(following, int) else {}
            node = node[step]
        if value == "<delete>":
            del node[steps[-1]]
        elif isinstance(node, list) and steps[-1] == len(node):
            node.append(expand(value))
        else:
            node[steps[-1]] = expand(value)
    return obj


def message(kind, value, detail):
    """Build field.Error.ErrorBody's text for a row."""
    value = expand(value)
    shown = value[4:] if isinstance(value, str) and value.startswith("raw:") else \
        json.dumps(value, ensure_ascii=False)
    if kind == "Required":
        return "Required value" + (f": {detail}" if detail else "")
    if kind == "Forbidden":
        return f"Forbidden: {detail}"
    if kind == "TooLong":
        return f"Too long: {detail}"
    if kind == "Duplicate":
        return f"Duplicate value: {shown}"
    if kind == "NotFound":
        return f"Not found: {shown}"
    if kind == "NotSupported":
        return f"Unsupported value: {shown}: supported values: {detail}"
    return f"Invalid value: {shown}: {expand(detail)}"


def _row_id(row):
    return f"{row[0]}:{row[2]}:{row[3]}:{json.dumps(row[1])[:60]}"


@pytest.fixture
def service():
    service = ObjectService(Registry(FakeStore()), clock=lambda: NOW)
    service.bootstrap()
    return service


def _resource(kind):
    return next(r for r in kinds.RESOURCES if r.kind == kind)


def _check(exc, row):
    kind, _edits, field, type_, value, detail, *rest = row
    field = expand(field)
    match = rest[0] if rest else "exact"
    wanted = expand(detail) if match == "suffix" else message(type_, value, detail)
    causes = exc.value.details["causes"]
    for cause in causes:
        text = cause["message"]
        same = {"exact": text == wanted, "prefix": text.startswith(wanted),
                "suffix": text.endswith(wanted)}[match]
        if cause["field"] == field and cause["reason"] == REASONS[type_] and same:
            return
    raise AssertionError(f"no cause {field}: {wanted!r}\ngot: " + "\n".join(
        f"{c['field']}: {c['message']}" for c in causes))


def test_the_table_holds_at_least_200_invalid_objects():
    assert len(TABLE["creates"]) + len(TABLE["updates"]) >= 200


@pytest.mark.parametrize("kind", sorted(BASES))
def test_every_base_object_is_valid(service, kind):
    namespace = None if kind == "Namespace" else "default"
    created = service.create(_resource(kind), namespace, copy.deepcopy(BASES[kind]))
    service.update(_resource(kind), namespace, created["metadata"]["name"], created)


@pytest.mark.parametrize("row", TABLE["creates"], ids=_row_id)
def test_an_invalid_object_is_refused_as_kubernetes_refuses_it(service, row):
    kind = row[0]
    namespace = None if kind == "Namespace" else "default"
    with pytest.raises(errors.Invalid) as exc:
        service.create(_resource(kind), namespace, apply_edits(BASES[kind], row[1]))
    _check(exc, row)


@pytest.mark.parametrize("row", TABLE["updates"], ids=_row_id)
def test_an_invalid_update_is_refused_and_changes_nothing(service, row):
    kind = row[0]
    namespace = None if kind == "Namespace" else "default"
    resource = _resource(kind)
    base = apply_edits(BASES[kind], row[7] if len(row) > 7 else {})
    created = service.create(resource, namespace, base)
    name = created["metadata"]["name"]
    with pytest.raises(errors.Invalid) as exc:
        service.update(resource, namespace, name, apply_edits(created, row[1]))
    _check(exc, row[:7])
    assert service.get(resource, namespace, name) == created


VALID_UPDATES = [
    ("Pod", {"spec.containers[0].image": "busybox:1.36"}, {}),
    ("Pod", {"spec.tolerations[0]": {"key": "k", "operator": "Exists"}}, {}),
    ("Pod", {"spec.activeDeadlineSeconds": 30}, {"spec.activeDeadlineSeconds": 60}),
    ("Pod", {"metadata.labels": {"a": "b"}, "metadata.annotations": {"x": "y"}}, {}),
    ("Deployment", {"spec.replicas": 5, "spec.template.spec.containers[0].image": "nginx"}, {}),
    ("StatefulSet", {"spec.replicas": 3, "spec.updateStrategy": {"type": "OnDelete"}}, {}),
    ("Job", {"spec.parallelism": 3, "spec.suspend": True}, {}),
    ("Service", {"spec.clusterIP": "<delete>"}, {"spec.clusterIP": "10.96.0.10"}),
    ("ConfigMap", {"metadata.labels": {"a": "b"}}, {"immutable": True}),
    ("Secret", {"data": {"a": "Yw=="}}, {}),
]


@pytest.mark.parametrize("kind, edits, base_edits", VALID_UPDATES,
                         ids=[f"{k}:{json.dumps(e)[:40]}" for k, e, _ in VALID_UPDATES])
def test_what_kubernetes_lets_an_update_change_still_changes(service, kind, edits, base_edits):
    namespace = None if kind == "Namespace" else "default"
    resource = _resource(kind)
    created = service.create(resource, namespace, apply_edits(BASES[kind], base_edits))
    service.update(resource, namespace, created["metadata"]["name"],
                   apply_edits(created, edits))


def test_an_update_naming_another_uid_or_namespace_is_refused(service):
    resource = _resource("ConfigMap")
    created = service.create(resource, "default", copy.deepcopy(BASES["ConfigMap"]))
    other_uid = apply_edits(created, {"metadata.uid": "another"})
    with pytest.raises(errors.Invalid) as exc:
        service.update(resource, "default", "cm", other_uid)
    assert exc.value.details["causes"] == [{
        "reason": "FieldValueInvalid", "field": "metadata.uid",
        "message": 'Invalid value: "another": field is immutable'}]
    with pytest.raises(errors.BadRequest, match="does not match the namespace sent"):
        service.update(resource, "default", "cm",
                       apply_edits(created, {"metadata.namespace": "kube-system"}))
    without_uid = apply_edits(created, {"metadata.uid": "<delete>", "data": {"a": "c"}})
    assert service.update(resource, "default", "cm", without_uid)["metadata"]["uid"] == \
        created["metadata"]["uid"]
