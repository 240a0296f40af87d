"""The local cluster's EncryptionConfiguration: secrets encrypted at rest by default.

`steer up` writes ``<cluster>/encryption-config.yaml`` (0600) once, with a fresh
32-byte secretbox key, and passes it to the API server as
``--encryption-provider-config``; a restart reuses it (a new key would leave the
stored secrets unreadable). ``identity`` is listed last so secrets stored before
encryption was on can still be read; re-writing them encrypts them
(``kubectl get secrets -A -o json | kubectl replace -f -``).
"""

import base64
import os

import yaml

from cli import pki

FILE_NAME = "encryption-config.yaml"


def document(secret, resources=("secrets",), key_name="key1"):
    """An EncryptionConfiguration encrypting ``resources`` with secretbox ``secret``."""
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": [{"resources": list(resources), "providers": [
                {"secretbox": {"keys": [{"name": key_name,
                                         "secret": base64.b64encode(secret).decode()}]}},
                {"identity": {}}]}]}


def ensure(cluster_dir, random=os.urandom):
    """Return the path of the cluster's encryption configuration, writing it if missing."""
    path = os.path.join(cluster_dir, FILE_NAME)
    if not os.path.exists(path):
        pki.write_private(path, yaml.safe_dump(document(random(32)), sort_keys=False))
    return path
