"""The storage addon of `steer up`: the default local-path StorageClass, once."""

from types import SimpleNamespace

from cli import local_addons, local_storage
from control.client import AlreadyExists


class Rest:
    def __init__(self):
        self.created = []

    def create(self, resource, namespace, body):
        if self.created:
            raise AlreadyExists(409, "AlreadyExists", "exists")
        self.created.append((resource.plural, namespace, body))


def test_storage_is_a_default_addon_that_makes_the_default_class(monkeypatch):
    assert local_addons.parse_addons("dns,storage") == ("dns", "storage")
    assert "storage" in local_addons.DEFAULT
    rest, said = Rest(), []
    monkeypatch.setattr(local_addons, "admin_client", lambda url, creds: rest)
    ctx = SimpleNamespace(url="https://127.0.0.1:1", creds=None, say=said.append)
    local_storage.start(ctx)
    local_storage.start(ctx)          # a restarted cluster keeps its class
    ((plural, namespace, body),) = rest.created
    assert (plural, namespace) == ("storageclasses", None)
    assert body["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"}
    assert (body["provisioner"], body["volumeBindingMode"], body["reclaimPolicy"]) == (
        "steersman.io/local-path", "WaitForFirstConsumer", "Delete")
    assert said[1].endswith("(already there)")
