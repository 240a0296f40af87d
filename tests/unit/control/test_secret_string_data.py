"""A Secret's stringData is merged into data on every write and never stored."""

import base64
import json

import falcon.testing
import pytest

from control.api.app import create_app
from control.api.strategies import strategy_for
from control.api.strategies.secret import SecretStrategy, merge_string_data
from control.objects import kinds
from tests.support.fake_store import FakeStore

SECRETS = "/api/v1/namespaces/default/secrets"


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_secrets_have_their_own_strategy():
    assert type(strategy_for(kinds.SECRETS)) is SecretStrategy


def test_string_data_overrides_data_of_the_same_key():
    secret = merge_string_data({"data": {"a": b64("old"), "b": b64("kept")},
                                "stringData": {"a": "new", "c": "ünïcode"}})
    assert secret == {"data": {"a": b64("new"), "b": b64("kept"), "c": b64("ünïcode")}}


def test_create_stores_data_only(client):
    created = client.simulate_post(SECRETS, json={
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"password": "hunter2"}})
    assert created.status_code == 201, created.text
    stored = client.simulate_get(f"{SECRETS}/s").json
    assert stored["data"] == {"password": b64("hunter2")} and "stringData" not in stored


def test_update_and_patch_merge_string_data(client):
    client.simulate_post(SECRETS, json={"apiVersion": "v1", "kind": "Secret",
                                        "metadata": {"name": "s"}, "data": {"a": b64("1")}})
    current = client.simulate_get(f"{SECRETS}/s").json
    current["stringData"] = {"b": "2"}
    assert client.simulate_put(f"{SECRETS}/s", json=current).status_code == 200
    patched = client.simulate_patch(f"{SECRETS}/s", body=json.dumps({"stringData": {"a": "3"}}),
                                    headers={"Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json["data"] == {"a": b64("3"), "b": b64("2")}
    assert "stringData" not in client.simulate_get(f"{SECRETS}/s").json
