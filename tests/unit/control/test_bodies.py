"""Request bodies: hostile JSON and YAML, chunked bodies, and the guard against web pages."""

import json
import re

import falcon.testing
import pytest

from control import errors
from control.api import decoding, fields, guard
from control.api.app import create_app
from control.api.handlers import warning_header
from control.objects import kinds
from tests.support.fake_store import FakeStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_yaml_alias_is_refused_before_expansion():
    bomb = b'a: &a ["x","x"]\nb: &b [*a,*a]\nc: [*b,*b]\n'
    with pytest.raises(errors.BadRequest, match="alias"):
        decoding.decode_yaml(bomb)


def test_anchor_without_alias_is_fine():
    assert decoding.decode_yaml(b"a: &x 1\n") == {"a": 1}


@pytest.mark.parametrize("decode", [decoding.decode_json, decoding.decode_yaml])
def test_nesting_over_the_cap_is_400(decode):
    at_cap = "[" * decoding.MAX_DEPTH + "]" * decoding.MAX_DEPTH
    assert decode(at_cap.encode()) is not None
    over = "[" * (decoding.MAX_DEPTH + 1) + "]" * (decoding.MAX_DEPTH + 1)
    with pytest.raises(errors.BadRequest, match="nested too deeply"):
        decode(over.encode())
    with pytest.raises(errors.BadRequest):
        decode(b"[" * 100_000)


def test_yaml_becomes_json_values():
    assert decoding.decode_yaml(b"when: 2020-01-01\n2: two\ntrue: yes\n") == \
        {"when": "2020-01-01", "2": "two", "true": True}
    with pytest.raises(errors.BadRequest, match="JSON cannot represent"):
        decoding.decode_yaml(b"b: !!binary aGVsbG8=\n")


def test_json_non_numbers_are_refused():
    with pytest.raises(errors.BadRequest):
        decoding.decode_json(b'{"a": NaN}')


def test_chunked_body_is_read(client):
    body = json.dumps({"metadata": {"name": "chunked"}}).encode()
    result = client.simulate_post(CONFIGMAPS, body=body, headers={
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        extras={"CONTENT_LENGTH": ""})
    assert result.status_code == 201, result.text


def test_unknown_fields_with_odd_names_are_dropped_exactly():
    body = {"metadata": {"name": "a", "labels": {"x": "y"}, "": 1, "a.b": 2, "c[0]": 3},
            "data": {"k": "v"}, "": 4}
    kept = fields.without_unknown(body, "V1ConfigMap")
    assert kept == {"metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"k": "v"}}


def test_object_over_the_store_cap_is_413():
    big = {"metadata": {"name": "big"}, "data": {"k": "x" * fields.MAX_OBJECT_BYTES}}
    with pytest.raises(errors.RequestEntityTooLarge, match="1 MiB"):
        fields.check_kind(kinds.CONFIGMAPS, big)


def test_null_metadata_is_400(client):
    result = client.simulate_post(CONFIGMAPS, json={"metadata": None})
    assert result.status_code == 400 and "metadata" in result.json["message"]


@pytest.mark.parametrize("text", ["new\nline", "caf\u00e9", "\u4e2d", 'q"b\\', "\x00"])
def test_warning_header_is_printable_ascii(text):
    value = warning_header(f"unknown field {text}")
    assert value.startswith('299 - "') and value.endswith('"')
    assert all(" " <= char <= "~" for char in value)
    assert re.fullmatch(r'299 - "(?:[^"\\]|\\.)*"', value), value


def test_limit_beyond_int64_is_400(client):
    assert client.simulate_get(CONFIGMAPS, params={"limit": "1" + "0" * 30}).status_code == 400
    assert client.simulate_get(CONFIGMAPS, params={"limit": str(2**63)}).status_code == 400


def test_unexpected_exception_is_a_500_status():
    class Broken(FakeStore):
        def get(self, *args, **kwargs):
            raise RuntimeError("boom")

    client = falcon.testing.TestClient(create_app(Broken(), bootstrap=False))
    result = client.simulate_get(f"{CONFIGMAPS}/x")
    assert result.status_code == 500
    assert result.json["kind"] == "Status" and "RuntimeError" in result.json["message"]


def test_405_carries_allow(client):
    result = client.simulate_put(CONFIGMAPS, json={})
    assert result.status_code == 405 and result.headers["Allow"] == "GET, POST, DELETE"
    result = client.simulate_post(f"{CONFIGMAPS}/x", json={})
    assert result.status_code == 405 and "Allow" in result.headers
    assert result.json["kind"] == "Status"


# -- guard.py ---------------------------------------------------------------------------
def guarded(**kwargs):
    return falcon.testing.TestClient(create_app(FakeStore(), **kwargs))


def test_origin_must_be_allowed():
    client = guarded(allowed_origins=[r"^https://dash\.example$"])
    assert client.simulate_get(CONFIGMAPS, headers={"Origin": "http://evil"}).status_code == 403
    assert client.simulate_get(CONFIGMAPS,
                               headers={"Origin": "https://dash.example"}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_form_content_types_are_415(client, content_type):
    result = client.simulate_post(CONFIGMAPS, body='{"metadata":{"name":"a"}}',
                                  headers={"Content-Type": content_type})
    assert result.status_code == 415


def test_host_check_refuses_rebound_names():
    client = guarded(allowed_hosts=["api.example"])
    for host, code in (("127.0.0.1:6443", 200), ("[::1]:6443", 200), ("localhost", 200),
                       ("api.example:6443", 200), ("evil.example:6443", 403)):
        assert client.simulate_get(CONFIGMAPS, headers={"Host": host}).status_code == code, host


def test_host_name_parsing():
    assert guard.host_name("[::1]:80") == "::1"
    assert guard.host_name("Example.COM.:443") == "example.com"
    assert guard.host_name("::1") == "::1"
