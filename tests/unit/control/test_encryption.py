"""Encryption at rest: providers, rotation, errors, and the registry storing ciphertext."""

import base64
import json

import falcon.testing
import pytest
import yaml

from control import errors
from control.api import encryption
from control.api.app import create_app
from control.objects import kinds
from control.registry import Registry
from store.client import prefix_end
from tests.support.fake_store import FakeStore

KEY = b"/registry/secrets/default/db"
PLAIN = b'{"data":{"password":"aHVudGVyMg=="}}'


def secret_b64(seed, size=32):
    return base64.b64encode(bytes([seed]) * size).decode()


def config(*providers, resources=("secrets",)):
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": list(providers)}]}


def aesgcm(*keys):
    return {"aesgcm": {"keys": [{"name": n, "secret": s} for n, s in keys]}}


def secretbox(*keys):
    return {"secretbox": {"keys": [{"name": n, "secret": s} for n, s in keys]}}


IDENTITY = {"identity": {}}


def transformer(*providers):
    return encryption.parse(config(*providers)).transformer_for("", "secrets")


@pytest.mark.parametrize("provider", [aesgcm(("k1", secret_b64(1))),
                                      aesgcm(("k1", secret_b64(1, 16))),
                                      secretbox(("k1", secret_b64(1)))])
def test_round_trip_with_prefix_and_no_plaintext(provider):
    t = transformer(provider)
    stored = t.encrypt(PLAIN, KEY)
    name = next(iter(provider))
    assert stored.startswith(f"k8s:enc:{name}:v1:k1:".encode())
    assert b"password" not in stored and b"aHVudGVyMg" not in stored
    assert t.decrypt(stored, KEY) == PLAIN
    assert t.encrypt(PLAIN, KEY) != stored          # a fresh nonce every write


def test_rotation_old_key_still_decrypts_new_writes_use_the_first_key():
    old = transformer(aesgcm(("k1", secret_b64(1))), IDENTITY)
    written_before = old.encrypt(PLAIN, KEY)
    new = transformer(secretbox(("k2", secret_b64(2))), aesgcm(("k1", secret_b64(1))), IDENTITY)
    assert new.decrypt(written_before, KEY) == PLAIN
    rewritten = new.encrypt(PLAIN, KEY)
    assert rewritten.startswith(b"k8s:enc:secretbox:v1:k2:")
    # Once everything is re-written the old key can go.
    assert transformer(secretbox(("k2", secret_b64(2)))).decrypt(rewritten, KEY) == PLAIN


def test_several_keys_of_one_provider_first_encrypts():
    t = transformer(aesgcm(("new", secret_b64(3)), ("old", secret_b64(4))))
    older = transformer(aesgcm(("old", secret_b64(4)))).encrypt(PLAIN, KEY)
    assert t.decrypt(older, KEY) == PLAIN
    assert t.encrypt(PLAIN, KEY).startswith(b"k8s:enc:aesgcm:v1:new:")


def test_wrong_key_is_a_clear_error():
    stored = transformer(aesgcm(("k1", secret_b64(1)))).encrypt(PLAIN, KEY)
    with pytest.raises(encryption.EncryptionError) as caught:
        transformer(aesgcm(("k1", secret_b64(9)))).decrypt(stored, KEY)
    assert caught.value.code == 500
    assert "aesgcm key 'k1'" in caught.value.message and "/registry/secrets" in caught.value.message
    box = transformer(secretbox(("k1", secret_b64(1)))).encrypt(PLAIN, KEY)
    with pytest.raises(encryption.EncryptionError, match="secretbox key 'k1'"):
        transformer(secretbox(("k1", secret_b64(9)))).decrypt(box, KEY)


def test_removed_key_is_named():
    stored = transformer(aesgcm(("gone", secret_b64(1)))).encrypt(PLAIN, KEY)
    with pytest.raises(encryption.EncryptionError, match="aesgcm:v1:gone"):
        transformer(aesgcm(("k2", secret_b64(2))), IDENTITY).decrypt(stored, KEY)


def test_aesgcm_binds_a_value_to_its_key():
    t = transformer(aesgcm(("k1", secret_b64(1))))
    stored = t.encrypt(PLAIN, KEY)
    with pytest.raises(encryption.EncryptionError):
        t.decrypt(stored, b"/registry/secrets/default/other")


def test_identity_reads_plain_values_only_when_listed():
    assert transformer(aesgcm(("k1", secret_b64(1))), IDENTITY).decrypt(PLAIN, KEY) == PLAIN
    with pytest.raises(encryption.EncryptionError, match="identity"):
        transformer(aesgcm(("k1", secret_b64(1)))).decrypt(PLAIN, KEY)


def test_identity_first_writes_plain_and_still_decrypts():
    encrypted = transformer(aesgcm(("k1", secret_b64(1)))).encrypt(PLAIN, KEY)
    t = transformer(IDENTITY, aesgcm(("k1", secret_b64(1))))
    assert t.encrypt(PLAIN, KEY) == PLAIN
    assert t.decrypt(encrypted, KEY) == PLAIN


def test_resources_match_by_name_group_and_wildcard_first_entry_wins():
    doc = config(secretbox(("k1", secret_b64(1))), resources=("secrets", "deployments.apps"))
    doc["resources"].append({"resources": ["*.batch"], "providers": [aesgcm(("a", secret_b64(2)))]})
    doc["resources"].append({"resources": ["*.*"], "providers": [IDENTITY]})
    cfg = encryption.parse(doc)
    first = cfg.transformer_for("", "secrets")
    assert cfg.transformer_for("apps", "deployments") is first
    assert cfg.transformer_for("batch", "jobs").writer.name == "a"
    assert cfg.transformer_for("", "pods").writer is None        # identity: plain
    assert encryption.parse(config(IDENTITY)).transformer_for("", "pods") is None


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Nope"}, "want kind EncryptionConfiguration"),
    ({**config(IDENTITY), "apiVersion": "v1"}, "want apiVersion"),
    (config(aesgcm(("k1", secret_b64(1, 20)))), "aesgcm wants 16 or 24 or 32 bytes, got 20"),
    (config(secretbox(("k1", secret_b64(1, 16)))), "secretbox wants 32 bytes"),
    (config(aesgcm(("k1", "not base64!"))), "not base64"),
    (config(aesgcm(("k:1", secret_b64(1)))), "name"),
    (config(aesgcm(("k1", secret_b64(1)), ("k1", secret_b64(2)))), "listed twice"),
    (config({"aescbc": {"keys": []}}), "aescbc is not supported"),
    (config({"rot13": {}}), "unknown provider"),
    (config(), "want a list of providers"),
    ({**config(IDENTITY), "resources": [{"resources": ["secrets"], "providers": [IDENTITY]},
                                        {"resources": ["secrets"], "providers": [IDENTITY]}]},
     "'secrets' is listed twice"),
])
def test_bad_configurations_say_what_is_wrong(doc, message):
    with pytest.raises(encryption.ConfigError, match=message.replace("(", r"\(")):
        encryption.parse(doc)


def test_load_reads_yaml_and_reports_missing_files(tmp_path):
    path = tmp_path / "enc.yaml"
    path.write_text(yaml.safe_dump(config(secretbox(("k1", secret_b64(1))))))
    assert encryption.load(str(path)).transformer_for("", "secrets").writer.name == "k1"
    with pytest.raises(encryption.ConfigError, match="cannot read"):
        encryption.load(str(tmp_path / "missing.yaml"))


# -- through the registry and the app --------------------------------------------------
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
          "data": {"password": base64.b64encode(b"hunter2-very-secret").decode()}}


def raw_values(store, prefix=b"/registry/"):
    return [kv["value"] for kv in store.get(prefix, range_end=prefix_end(prefix))["kvs"]]


@pytest.fixture
def encrypted_app(tmp_path):
    path = tmp_path / "enc.yaml"
    path.write_text(yaml.safe_dump(config(secretbox(("k1", secret_b64(7))), IDENTITY)))
    store = FakeStore()
    return store, falcon.testing.TestClient(
        create_app(store, encryption_provider_config=str(path)))


def test_the_app_stores_secrets_encrypted_and_reads_them_back(encrypted_app):
    store, client = encrypted_app
    created = client.simulate_post("/api/v1/namespaces/default/secrets", json=SECRET)
    assert created.status_code == 201, created.json
    value = base64.b64encode(b"hunter2-very-secret")
    for raw in raw_values(store, b"/registry/secrets/"):
        assert raw.startswith(b"k8s:enc:secretbox:v1:k1:")
        assert b"hunter2" not in raw and value not in raw
    got = client.simulate_get("/api/v1/namespaces/default/secrets/db").json
    assert got["data"]["password"] == value.decode()
    listed = client.simulate_get("/api/v1/namespaces/default/secrets").json["items"]
    assert [s["metadata"]["name"] for s in listed] == ["db"]
    # Other resources stay plain JSON.
    assert all(json.loads(raw) for raw in raw_values(store, b"/registry/namespaces/"))


def test_a_plain_secret_from_before_encryption_is_read_and_rewritten_encrypted(encrypted_app):
    store, client = encrypted_app
    plain = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "old", "namespace": "default", "uid": "u"},
             "data": {"k": base64.b64encode(b"legacy-value").decode()}}
    store.put(b"/registry/secrets/default/old", json.dumps(plain).encode())
    got = client.simulate_get("/api/v1/namespaces/default/secrets/old").json
    assert got["data"]["k"] == plain["data"]["k"]
    replaced = client.simulate_put("/api/v1/namespaces/default/secrets/old", json=got)
    assert replaced.status_code == 200, replaced.json
    raw = store.get(b"/registry/secrets/default/old")["kvs"][0]["value"]
    assert raw.startswith(b"k8s:enc:secretbox:")


def test_watch_events_are_decrypted_and_bad_ones_skipped():
    cfg = encryption.parse(config(aesgcm(("k1", secret_b64(1)))))
    store = FakeStore()
    registry = Registry(store, encryption=cfg)
    secrets = kinds.lookup("", "v1", "secrets")
    watch = registry.watch(secrets, "default")
    store.put(b"/registry/secrets/default/bad", b"k8s:enc:aesgcm:v1:k1:garbage-garbage-garbage")
    registry.create(secrets, {"metadata": {"name": "good", "namespace": "default"},
                              "data": {"a": "Yg=="}})
    events = [watch.next_event(timeout=1) for _ in range(2)]
    assert events[0] is None                       # undecryptable: skipped, logged
    assert json.loads(events[1]["kv"]["value"])["data"] == {"a": "Yg=="}
    watch.cancel()
    with pytest.raises(errors.ApiError, match="cannot be decrypted"):
        registry.get(secrets, "default", "bad")
