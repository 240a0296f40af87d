"""Protobuf through the API app: request bodies, negotiated answers, hostile bodies (400)."""

import json

import falcon.testing
import pytest

from control import errors
from control.api.app import create_app
from control.api.protobuf import envelope, negotiation, wire
from tests.support.fake_store import FakeStore

MEDIA = envelope.MEDIA_TYPE
PROTO = {"Content-Type": MEDIA, "Accept": f"{MEDIA},application/json"}
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def configmap(name="c", **data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": data or {"a": "b"}}


def wrap(api_version, kind, payload):
    """An envelope around hand-made message bytes."""
    type_meta = wire.length_delimited(1, api_version.encode()) + \
        wire.length_delimited(2, kind.encode())
    return envelope.MAGIC + wire.length_delimited(1, type_meta) + \
        wire.length_delimited(2, payload)


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_a_protobuf_create_is_stored_and_answered_in_protobuf(client):
    created = client.simulate_post(CONFIGMAPS, body=envelope.encode(configmap()), headers=PROTO)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"] == MEDIA
    answer = envelope.decode(created.content)
    assert answer["data"] == {"a": "b"} and answer["metadata"]["uid"]
    as_json = client.simulate_get(f"{CONFIGMAPS}/c").json
    assert as_json["metadata"]["uid"] == answer["metadata"]["uid"]
    listed = client.simulate_get(CONFIGMAPS, headers={"Accept": MEDIA})
    assert envelope.decode(listed.content)["items"][0]["data"] == {"a": "b"}


def test_a_protobuf_update_and_delete(client):
    client.simulate_post(CONFIGMAPS, json=configmap())
    stored = client.simulate_get(f"{CONFIGMAPS}/c").json
    stored["data"] = {"a": "changed"}
    updated = client.simulate_put(f"{CONFIGMAPS}/c", body=envelope.encode(stored),
                                  headers=PROTO)
    assert updated.status_code == 200, updated.text
    assert envelope.decode(updated.content)["data"] == {"a": "changed"}
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
    deleted = client.simulate_delete(f"{CONFIGMAPS}/c", body=envelope.encode(options),
                                     headers=PROTO)
    assert deleted.status_code == 200, deleted.text
    assert client.simulate_get(f"{CONFIGMAPS}/c").status_code == 404


def test_a_deployment_with_zero_replicas_keeps_them(client):
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    created = client.simulate_post(DEPLOYMENTS, body=envelope.encode(body), headers=PROTO)
    assert created.status_code == 201, created.text
    assert client.simulate_get(f"{DEPLOYMENTS}/web").json["spec"]["replicas"] == 0


def test_errors_are_protobuf_status_when_asked(client):
    missing = client.simulate_get(f"{CONFIGMAPS}/nope", headers={"Accept": MEDIA})
    assert missing.status_code == 404 and missing.headers["content-type"] == MEDIA
    status = envelope.decode(missing.content)
    assert status["kind"] == "Status" and status["reason"] == "NotFound"
    assert status["code"] == 404


def test_json_stays_the_default_and_tables_and_discovery_stay_json(client):
    client.simulate_post(CONFIGMAPS, json=configmap())
    assert client.simulate_get(f"{CONFIGMAPS}/c").headers["content-type"] == "application/json"
    table = client.simulate_get(CONFIGMAPS, headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    assert table.json["kind"] == "Table"
    for path in ("/api/v1", "/apis/apps/v1", "/apis"):
        answer = client.simulate_get(path, headers={"Accept": f"{MEDIA},application/json"})
        assert answer.headers["content-type"] == "application/json", path


@pytest.mark.parametrize("accept, wanted", [
    (f"{MEDIA},application/json", True), (f"{MEDIA}", True),
    (f"application/json;q=0.9,{MEDIA}", True), ("application/json", False),
    (f"application/json,{MEDIA}", False), (f"{MEDIA};as=Table;v=v1", False),
    ("*/*", False), ("", False), (None, False), (f"{MEDIA};q=x", False)])
def test_accept_negotiation(accept, wanted):
    assert negotiation.prefers_protobuf(accept) is wanted


STRING_AS_VARINT = wrap("v1", "ConfigMap", wire.key(1, wire.VARINT) + b"\x01")
HOSTILE = {
    "no magic": b"\x0a\x02v1",
    "garbage": b"k8s\x00\xff\xff\xff",
    "truncated varint": envelope.MAGIC + b"\x0a\xff\xff",
    "varint over 10 bytes": envelope.MAGIC + b"\x08" + b"\xff" * 11 + b"\x01",
    "huge declared length": envelope.MAGIC + b"\x12" + wire.encode_varint(2**62) + b"x",
    "length past the end": wrap("v1", "ConfigMap", b"\x0a\x7f\x0a\x01"),
    "wire type 7": envelope.MAGIC + bytes([(1 << 3) | 7]),
    "field number 0": envelope.MAGIC + b"\x02\x00",
    "wrong wire type": STRING_AS_VARINT,
    "string as fixed64": wrap("v1", "ConfigMap", b"\x09" + b"\x00" * 8),
    "bad utf-8": wrap("v1", "ConfigMap", wire.length_delimited(
        1, wire.length_delimited(1, b"\xff\xfe"))),
    "map entry as varint": wrap("v1", "ConfigMap", wire.key(2, wire.VARINT) + b"\x01"),
    "deep raw extensions": None,
    "compressed": envelope.MAGIC + wire.length_delimited(3, b"gzip"),
}


def _nested_watch_events(levels):
    """A WatchEvent whose object is a WatchEvent whose object is... ``levels`` deep."""
    inner = wrap("v1", "ConfigMap", b"")
    for _ in range(levels):
        event = wire.length_delimited(2, wire.length_delimited(1, inner))
        inner = wrap("meta.k8s.io/v1", "WatchEvent", event)
    return inner


HOSTILE["deep raw extensions"] = _nested_watch_events(200)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_bodies_are_400_and_the_server_serves_on(client, name):
    answer = client.simulate_post(CONFIGMAPS, body=HOSTILE[name], headers=PROTO)
    assert answer.status_code == 400, (name, answer.status_code, answer.content[:200])
    status = envelope.decode(answer.content)        # asked for protobuf: a Status
    assert "protobuf body cannot be read" in status["message"]
    assert client.simulate_get("/healthz").status_code == 200
    as_json = client.simulate_post(CONFIGMAPS, body=HOSTILE[name],
                                   headers={"Content-Type": MEDIA})
    assert as_json.status_code == 400 and as_json.json["message"]


def test_unknown_fields_are_skipped_as_kube_apiserver_does(client):
    extra = wire.key(99, wire.VARINT) + b"\x05" + wire.length_delimited(98, b"future")
    unknown = wrap("v1", "ConfigMap", wire.length_delimited(
        1, wire.length_delimited(1, b"u") + extra) + extra)
    created = client.simulate_post(CONFIGMAPS, body=unknown, headers=PROTO)
    assert created.status_code == 201, created.text
    assert envelope.decode(created.content)["metadata"]["name"] == "u"


def test_other_kinds_patches_and_bodyless_requests(client):
    widget = wrap("example.com/v1", "Widget", b"")
    answer = client.simulate_post(CONFIGMAPS, body=widget, headers={"Content-Type": MEDIA})
    assert answer.status_code == 415 and "not supported; send JSON" in answer.json["message"]
    client.simulate_post(CONFIGMAPS, json=configmap())
    patch = client.simulate_patch(f"{CONFIGMAPS}/c", body=envelope.encode(configmap()),
                                  headers={"Content-Type": MEDIA})
    assert patch.status_code == 415 and "patches" in patch.json["message"]
    with pytest.raises(errors.BadRequest):
        negotiation.decode_request(b"")


def test_kinds_mismatching_the_url_are_refused_like_json(client):
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    answer = client.simulate_post(CONFIGMAPS, body=envelope.encode(secret),
                                  headers={"Content-Type": MEDIA})
    as_json = client.simulate_post(CONFIGMAPS, body=json.dumps(secret),
                                   headers={"Content-Type": "application/json"})
    assert answer.status_code == as_json.status_code >= 400


def frames(raw):
    """Split a protobuf watch stream into its decoded WatchEvents."""
    events, pos = [], 0
    while pos < len(raw):
        length = int.from_bytes(raw[pos:pos + 4], "big")
        events.append(envelope.decode_watch_event(raw[pos + 4:pos + 4 + length]))
        pos += 4 + length
    return events


def test_a_watch_streams_protobuf_frames_when_asked(client):
    created = client.simulate_post(CONFIGMAPS, json=configmap()).json
    client.simulate_delete(f"{CONFIGMAPS}/c")
    since = str(int(created["metadata"]["resourceVersion"]) - 1)
    streamed = client.simulate_get(CONFIGMAPS, params={
        "watch": "true", "resourceVersion": since, "timeoutSeconds": "1"},
        headers={"Accept": f"{MEDIA};stream=watch,application/json;stream=watch"})
    assert streamed.headers["content-type"] == f"{MEDIA};stream=watch"
    events = frames(streamed.content)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["data"] == {"a": "b"}
    assert events[0]["object"]["kind"] == "ConfigMap"
    as_json = client.simulate_get(CONFIGMAPS, params={
        "watch": "true", "resourceVersion": since, "timeoutSeconds": "1"})
    assert as_json.headers["content-type"] == "application/json"
    assert [json.loads(line)["type"] for line in as_json.text.splitlines()] == \
        ["ADDED", "DELETED"]


def test_a_protobuf_watch_from_a_compacted_version_gets_a_410_frame():
    store = FakeStore()
    app_client = falcon.testing.TestClient(create_app(store))
    app_client.simulate_post(CONFIGMAPS, json=configmap("a"))
    app_client.simulate_post(CONFIGMAPS, json=configmap("b"))
    store.compact(store.machine.revision)
    streamed = app_client.simulate_get(CONFIGMAPS, params={
        "watch": "true", "resourceVersion": "2", "timeoutSeconds": "1"},
        headers={"Accept": MEDIA})
    event = frames(streamed.content)[0]
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_watch_frames_for_objects_without_a_message_are_error_statuses():
    encode, media = negotiation.watch_encoding(
        falcon.testing.create_req(headers={"Accept": MEDIA}), "v1", "ConfigMap", False)
    assert media == f"{MEDIA};stream=watch"
    event = frames(encode("ADDED", {"apiVersion": "x.io/v1", "kind": "Widget"}))[0]
    assert event["type"] == "ERROR" and "asking for JSON" in event["object"]["message"]
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "data": ["not", "a", "map"]}
    event = frames(encode("ADDED", bad))[0]
    assert event["type"] == "ERROR" and event["object"]["code"] == 500
    table = negotiation.watch_encoding(
        falcon.testing.create_req(headers={"Accept": MEDIA}), "v1", "ConfigMap", True)
    assert table == (None, "application/json")
