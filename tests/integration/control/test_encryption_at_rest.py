"""Secrets encrypted at rest: a real store and API server with --encryption-provider-config.

A Secret with a known value is created through the API; every file of every store
member (journal, dumps) and a snapshot are then searched for that value, plain
and base64: none may hold it, while a ConfigMap's value (not encrypted) is found
there, which shows the search looks where the data is.
"""

import base64
import os
import time

import pytest
import yaml

from control.objects.kinds import CONFIGMAPS, SECRETS

VALUE = b"correct-horse-battery-staple-1f4e"
VISIBLE = b"configmap-value-that-is-plain-9c2d"


@pytest.fixture(scope="module")
def server_args(tmp_path_factory):
    path = tmp_path_factory.mktemp("encryption") / "encryption.yaml"
    key = base64.b64encode(os.urandom(32)).decode()
    path.write_text(yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"],
                       "providers": [{"secretbox": {"keys": [{"name": "key1", "secret": key}]}},
                                     {"identity": {}}]}]}))
    os.chmod(path, 0o600)
    return ["--encryption-provider-config", str(path)]


def forms(value):
    return [value, base64.b64encode(value)]


def files_holding(directory, needles):
    """Paths of the files under ``directory`` that contain any of ``needles``."""
    found = []
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if any(n in data for n in needles):
                found.append(path)
    return found


def wait_for_files_holding(directory, needles, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        found = files_holding(directory, needles)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_secret_is_in_no_store_file_nor_snapshot_and_reads_back(server, rest, tmp_path):
    rest.create(SECRETS, "default", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque",
        "data": {"password": base64.b64encode(VALUE).decode()}})
    rest.create(CONFIGMAPS, "default", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"},
        "data": {"value": VISIBLE.decode()}})

    got = rest.get(SECRETS, "default", "db")
    assert base64.b64decode(got["data"]["password"]) == VALUE
    listed = rest.list(SECRETS, "default")
    assert any(s["metadata"]["name"] == "db" for s in listed["items"])

    store_dir = server.store.base_dir
    # The positive control: the plain ConfigMap reaches the members' files.
    assert wait_for_files_holding(store_dir, [VISIBLE]), "the search finds nothing at all"
    assert files_holding(store_dir, forms(VALUE)) == []

    snapshot = tmp_path / "snapshot.db"
    with server.store.client() as client:
        client.snapshot_save(str(snapshot))
    data = snapshot.read_bytes()
    assert VISIBLE in data
    assert not any(f in data for f in forms(VALUE))
    assert b"k8s:enc:secretbox:v1:key1:" in data


def test_an_update_is_encrypted_too(server, rest):
    secret = rest.get(SECRETS, "default", "db")
    secret["data"]["token"] = base64.b64encode(VALUE + b"-updated").decode()
    rest.update(SECRETS, "default", secret)
    assert rest.get(SECRETS, "default", "db")["data"]["token"] == secret["data"]["token"]
    # Written after the secret: once it is on disk, so is the secret's update.
    marker = rest.get(CONFIGMAPS, "default", "plain")
    marker["data"]["value"] = (VISIBLE + b"-updated").decode()
    rest.update(CONFIGMAPS, "default", marker)
    assert wait_for_files_holding(server.store.base_dir, [VISIBLE + b"-updated"])
    assert files_holding(server.store.base_dir, forms(VALUE + b"-updated")) == []
