"""Bootstrap tokens for `steer node join`, made as kubeadm makes them.

A token ``<id>.<secret>`` (6 and 16 characters of [a-z0-9]) lives in the kube-system
Secret ``bootstrap-token-<id>`` of type bootstrap.kubernetes.io/token with an
``expiration`` (RFC 3339), usable only for authentication, in the extra group
system:bootstrappers:steersman:node-join. The API server authenticates it as
system:bootstrap:<id> in system:bootstrappers (control/api/auth/tokens.py), which
may only create the node's client CSR (approved by csrapproving). `steer node join`
deletes the Secret as soon as the node is Ready, so each token joins one node and
dies; the expiration ends it even if the join is abandoned.
"""

import datetime
import secrets
import string

SECRET_TYPE = "bootstrap.kubernetes.io/token"
NAMESPACE = "kube-system"
EXTRA_GROUP = "system:bootstrappers:steersman:node-join"
DEFAULT_TTL = 900.0         # seconds: a join takes well under a minute
_ALPHABET = string.ascii_lowercase + string.digits


def new_token(choice=secrets.choice):
    """A fresh ``<id>.<secret>`` token."""
    return ("".join(choice(_ALPHABET) for _ in range(6)) + "."
            + "".join(choice(_ALPHABET) for _ in range(16)))


def secret_name(token):
    return f"bootstrap-token-{token.partition('.')[0]}"


def token_secret(token, node_name, now, ttl=DEFAULT_TTL):
    """The Secret that makes ``token`` valid until ``now + ttl`` (``now``: aware datetime)."""
    token_id, _, token_secret_part = token.partition(".")
    expires = (now + datetime.timedelta(seconds=ttl)).astimezone(datetime.timezone.utc)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(token), "namespace": NAMESPACE,
                         "labels": {"steersman.io/node-join": node_name}},
            "stringData": {
                "description": f"steer node join {node_name} (deleted once it is Ready)",
                "token-id": token_id, "token-secret": token_secret_part,
                "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "usage-bootstrap-authentication": "true",
                "auth-extra-groups": EXTRA_GROUP}}


def create(api, token, node_name, now, ttl=DEFAULT_TTL):
    """Create the token's Secret through ``api`` (cli/baremetal/api.AdminApi)."""
    api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets",
                token_secret(token, node_name, now, ttl))


def delete(api, token):
    """Delete the token's Secret; True if it was there."""
    from cli.baremetal.api import ApiError
    try:
        api.delete(f"/api/v1/namespaces/{NAMESPACE}/secrets/{secret_name(token)}")
    except ApiError as exc:
        if exc.status != 404:
            raise
        return False
    return True
