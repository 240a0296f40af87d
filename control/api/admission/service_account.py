"""ServiceAccount admission: every pod runs as a ServiceAccount that exists, with its token.

As Kubernetes' plugin does on a pod's CREATE: a pod that names no
serviceAccountName gets "default"; the account must exist in the pod's namespace
(403 "error looking up service account" otherwise); and unless the pod or the
account sets automountServiceAccountToken false, the pod gets a projected volume
``kube-api-access-<5 chars>`` (a bound token from the TokenRequest API, the
cluster CA from the ConfigMap kube-root-ca.crt, the namespace) mounted read-only
at /var/run/secrets/kubernetes.io/serviceaccount in every container. A pod that
names no imagePullSecrets gets the account's, so the node can pull its images
with the credentials the account was given.
"""

from control import errors
from control.objects import kinds, meta

DEFAULT_ACCOUNT = "default"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
#: The ConfigMap the root CA publisher keeps in every namespace.
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
#: Kubernetes asks 3607 s: one hour and a few seconds, so that it can tell its own tokens.
TOKEN_EXPIRATION = 3607


def api_access_volume(name):
    """Return the projected volume Kubernetes gives a pod for its API credentials."""
    return {"name": name, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP,
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def should_automount(account, spec):
    """The pod's automountServiceAccountToken wins, then the account's; default true."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def account_pull_secrets(account):
    """The account's imagePullSecrets as the pod's LocalObjectReferences (names only)."""
    return [{"name": ref["name"]} for ref in account.get("imagePullSecrets") or ()
            if isinstance(ref, dict) and ref.get("name")]


class ServiceAccountAdmission:
    """Default the pod's account, check it exists, and mount its token."""

    def __init__(self, service):
        self.service = service

    def _account(self, namespace, name, pod_name):
        try:
            return self.service.registry.get(kinds.SERVICEACCOUNTS, namespace, name)
        except errors.NotFound:
            raise errors.Forbidden(
                f'pods "{pod_name}" is forbidden: error looking up service account '
                f'{namespace}/{name}: serviceaccount "{name}" not found', name=pod_name,
                kind="pods") from None

    def admit(self, attrs):
        if attrs.resource is not kinds.PODS or attrs.operation != "CREATE" or \
                attrs.subresource:
            return attrs.obj
        pod = attrs.obj
        spec = pod.setdefault("spec", {})
        # Static (mirror) pods are the node's, not an account's.
        if "kubernetes.io/config.mirror" in (pod["metadata"].get("annotations") or {}):
            return pod
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = spec.get("serviceAccount") or DEFAULT_ACCOUNT
        spec["serviceAccount"] = spec["serviceAccountName"]     # the deprecated twin
        account = self._account(attrs.namespace, spec["serviceAccountName"],
                                pod["metadata"].get("name", ""))
        if should_automount(account, spec):
            self._mount_token(spec)
        if not spec.get("imagePullSecrets"):
            secrets = account_pull_secrets(account)
            if secrets:
                spec["imagePullSecrets"] = secrets
        return pod

    def _mount_token(self, spec):
        containers = [c for key in ("initContainers", "containers")
                      for c in spec.get(key) or () if isinstance(c, dict)]
        if all(any(m.get("mountPath") == MOUNT_PATH for m in c.get("volumeMounts") or ())
               for c in containers):
            return          # every container mounts something there already
        existing = {v.get("name") for v in spec.get("volumes") or ()}
        name = meta.generate_name(VOLUME_PREFIX, self.service.random)
        while name in existing:
            name = meta.generate_name(VOLUME_PREFIX, self.service.random)
        spec["volumes"] = list(spec.get("volumes") or ()) + [api_access_volume(name)]
        for container in containers:
            mounts = container.get("volumeMounts") or []
            if not any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                container["volumeMounts"] = mounts + [
                    {"name": name, "readOnly": True, "mountPath": MOUNT_PATH}]
