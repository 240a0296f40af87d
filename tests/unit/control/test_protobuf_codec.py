"""The protobuf codec: JSON -> protobuf -> JSON gives every served kind back unchanged."""

import json
import pathlib
import shutil

import pytest

from control.api.protobuf import codec, envelope, generate, schema, specials, wire
from control.objects import kinds
from tests.unit.control.protobuf_objects import OBJECTS, T

#: CustomResourceDefinitions (apiextensions.k8s.io) have no message in the table: kubectl
#: reads them with its dynamic client, in JSON, and custom resources are JSON only.
JSON_ONLY_GROUPS = ("apiextensions.k8s.io",)
SERVED = [r for r in kinds.RESOURCES if r.group not in JSON_ONLY_GROUPS]


def full(resource):
    """The sample of a kind; a kind served in two versions has one keyed by its apiVersion."""
    sample = OBJECTS.get(f"{resource.api_version}/{resource.kind}", OBJECTS[resource.kind])
    return {"apiVersion": resource.api_version, "kind": resource.kind,
            **json.loads(json.dumps(sample))}


def test_every_served_kind_and_its_list_has_a_message():
    for resource in SERVED:
        assert schema.message_name(resource.api_version, resource.kind), resource.kind
        if resource.stored:
            assert schema.message_name(resource.api_version, resource.list_kind)
    for kind in ("Status", "WatchEvent", "DeleteOptions"):
        assert schema.message_name("v1", kind) == schema.META + kind
    assert schema.message_name("example.com/v1", "Widget") is None
    assert schema.message_name("apiextensions.k8s.io/v1", "CustomResourceDefinition") is None
    assert schema.message_name("apps.example.com/v1", "Deployment") is None


@pytest.mark.parametrize("resource", SERVED, ids=[r.kind for r in SERVED])
def test_round_trip_of_every_kind(resource):
    obj = full(resource)
    raw = envelope.encode(obj)
    assert raw.startswith(envelope.MAGIC)
    assert envelope.decode(raw) == obj


@pytest.mark.parametrize("resource", [r for r in SERVED if r.stored],
                         ids=[r.list_kind for r in SERVED if r.stored])
def test_round_trip_of_every_list(resource):
    item = full(resource)
    del item["apiVersion"], item["kind"]          # list items carry no type in protobuf
    second = json.loads(json.dumps(item))
    second["metadata"]["uid"] = "other"
    listed = {"apiVersion": resource.api_version, "kind": resource.list_kind,
              "metadata": {"resourceVersion": "99", "continue": "abc",
                           "remainingItemCount": 0},
              "items": [item, second]}
    raw = envelope.encode(listed)
    assert envelope.decode(raw) == listed
    assert envelope.encode(listed) == raw        # the second time from the cache


def test_status_delete_options_and_watch_event():
    status = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
              "message": 'pods "x" not found', "reason": "NotFound", "code": 404,
              "details": {"name": "x", "kind": "pods", "causes": [
                  {"reason": "FieldValueInvalid", "message": "m", "field": "spec"}],
                  "retryAfterSeconds": 1}}
    decoded = envelope.decode(envelope.encode(status))
    assert decoded == {k: v for k, v in status.items() if k != "metadata"}
    options = {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
               "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
               "preconditions": {"uid": "u", "resourceVersion": "1"}, "dryRun": ["All"]}
    assert envelope.decode(envelope.encode(options)) == options
    pod = full(kinds.PODS)
    frame = envelope.watch_frame("ADDED", pod)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert not frame[4:].startswith(envelope.MAGIC)   # the event itself is not enveloped
    event = envelope.decode_watch_event(frame[4:])
    assert event["type"] == "ADDED" and event["object"] == pod
    assert envelope.watch_frame("ADDED", {"apiVersion": "x.io/v1", "kind": "Widget"}) is None


def test_zero_values_follow_go_pointers_and_omitempty():
    message = schema.META + "ObjectMeta"
    # Go sends every plain field, zero or not: name "" and generation 0 mean "unset".
    raw = (wire.length_delimited(1, b"") + wire.key(7, wire.VARINT) + b"\x00")
    assert codec.decode(message, raw) == {}
    # A pointer's zero is kept: replicas 0 is not "unset".
    spec = wire.key(1, wire.VARINT) + b"\x00"
    assert codec.decode("k8s.io.api.apps.v1.DeploymentSpec", spec) == {"replicas": 0}
    # A field JSON always writes (no omitempty) keeps its zero: restartCount 0.
    status = wire.key(5, wire.VARINT) + b"\x00" + wire.key(4, wire.VARINT) + b"\x00"
    assert codec.decode("k8s.io.api.core.v1.ContainerStatus", status) == {
        "restartCount": 0, "ready": False}
    # An empty pointer struct is kept (emptyDir: {}), an empty plain one dropped.
    volume = wire.length_delimited(1, b"v") + wire.length_delimited(
        2, wire.length_delimited(2, b""))
    assert codec.decode("k8s.io.api.core.v1.Volume", volume) == {"name": "v", "emptyDir": {}}


def test_special_wire_forms():
    int_or_string = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
    for value in (8080, "http", 0, -1):
        payload = specials.special(int_or_string)[1](value)
        assert specials.decode_special(int_or_string, payload, 0, len(payload)) == value
    time_bytes = specials.special(specials.TIME)[1](T)
    assert time_bytes == wire.key(1, wire.VARINT) + wire.encode_varint(1714979289)
    micro = specials.special(specials.MICRO_TIME)[1]("2024-05-06T07:08:09.000001Z")
    assert specials.decode_special(specials.MICRO_TIME, micro, 0, len(micro)) == \
        "2024-05-06T07:08:09.000001Z"
    duration = specials.special(specials.DURATION)[1]("1h2m3.5s")
    assert specials.decode_special(specials.DURATION, duration, 0, len(duration)) == "1h2m3.5s"
    quantity = specials.special(specials.QUANTITY)[1](2)
    assert quantity == wire.length_delimited(1, b"2")
    # int64 above 2^31 and negative int32/int64 values survive
    spec = {"parallelism": -1, "activeDeadlineSeconds": 2**40}
    assert codec.decode("k8s.io.api.batch.v1.JobSpec",
                        codec.encode("k8s.io.api.batch.v1.JobSpec", spec)) == spec


@pytest.mark.parametrize("message, value", [
    ("k8s.io.api.apps.v1.DeploymentSpec", {"replicas": 2**40}),
    ("k8s.io.api.apps.v1.DeploymentSpec", {"replicas": "three"}),
    ("k8s.io.api.core.v1.Secret", {"data": {"a": "not base64!"}}),
    ("k8s.io.api.core.v1.PodSpec", {"containers": {"name": "x"}}),
    ("k8s.io.api.core.v1.PodSpec", {"nodeSelector": ["x"]}),
])
def test_values_that_do_not_fit_are_encode_errors(message, value):
    with pytest.raises(codec.EncodeError):
        codec.encode(message, value)


def test_the_checked_in_table_is_what_the_kubectl_binary_holds():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: messages.json is regenerated from its binary")
    binary = pathlib.Path(kubectl).resolve().read_bytes()
    if b"v1.32." not in binary:
        pytest.skip("the table was generated from kubectl v1.32; this kubectl is another")
    assert generate.build(binary) == json.loads(schema.TABLE_PATH.read_text())


def test_the_serialization_cache_is_bounded_in_bytes():
    cache = envelope.SerializationCache(max_bytes=1000)
    message = "k8s.io.api.core.v1.ConfigMap"
    for index in range(50):
        obj = {"metadata": {"name": f"c{index}", "uid": f"u{index}", "resourceVersion": "1"},
               "data": {"k": "v" * 50}}
        assert codec.decode(message, cache.get(message, obj)) == obj
    assert 0 < cache.size <= 1000 and len(cache.entries) < 50
    changed = {"metadata": {"name": "c49", "uid": "u49", "resourceVersion": "2"},
               "data": {"k": "new"}}
    assert codec.decode(message, cache.get(message, changed))["data"] == {"k": "new"}
    unstored = {"metadata": {"name": "dry"}, "data": {"k": "x"}}
    assert codec.decode(message, cache.get(message, unstored)) == unstored
    assert ("k8s.io.api.core.v1.ConfigMap", None, None) not in cache.entries
