"""Give every namespace what its pods' credentials need: the ``default`` ServiceAccount
and the ConfigMap ``kube-root-ca.crt``.

Two controllers of kube-controller-manager: the serviceaccounts controller
creates the ServiceAccount "default" in every active namespace (and again when
it is deleted); the root CA publisher keeps the ConfigMap kube-root-ca.crt, key
ca.crt, holding the cluster CA (``--root-ca-file``) in every namespace, so that
the token volume ServiceAccount admission adds (control/api/admission/) finds
the CA it projects. Both are keyed by namespace name and read their caches.
"""

import logging

from control.client import AlreadyExists, NotFound
from control.controllers.controller import Controller, namespace_terminating
from control.objects import kinds

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"


def _active(namespace):
    return namespace is not None and not namespace["metadata"].get("deletionTimestamp") and \
        (namespace.get("status") or {}).get("phase") != "Terminating"


class _PerNamespace(Controller):
    """Keep one object per active namespace, re-created when it goes."""

    def __init__(self, name, rest, ns_informer, informer, queue=None):
        super().__init__(name, [ns_informer, informer], queue)
        self.rest, self.namespaces, self.objects = rest, ns_informer.store, informer.store
        ns_informer.add_handler(self._namespace_changed, lambda old, new: self._namespace_changed(new))
        informer.add_handler(self._object_changed, lambda old, new: self._object_changed(new),
                             self._object_changed)

    def _namespace_changed(self, namespace):
        self.queue.add(namespace["metadata"]["name"])

    def _object_changed(self, obj):
        namespace = obj["metadata"].get("namespace")
        if namespace:
            self.queue.add(namespace)

    def desired(self, namespace):
        """Return the object ``namespace`` should hold (subclasses)."""
        raise NotImplementedError

    def differs(self, current, wanted):
        """Return whether ``current`` must be rewritten as ``wanted`` (default: never)."""
        return False

    def sync(self, key):
        namespace = self.namespaces.get(key)
        if not _active(namespace):
            return
        wanted = self.desired(key)
        if wanted is None:
            return
        current = self.objects.get(f"{key}/{wanted['metadata']['name']}")
        try:
            if current is None:
                self.rest.create(self.resource, key, wanted)
                log.info("controller=%s namespace=%s msg=created %s", self.name, key,
                         wanted["metadata"]["name"])
            elif self.differs(current, wanted):
                self.rest.update(self.resource, key, {
                    **wanted, "metadata": {**wanted["metadata"], "resourceVersion":
                                           current["metadata"]["resourceVersion"]}})
        except (AlreadyExists, NotFound):
            pass                # the cache is behind; the next event brings it up to date
        except Exception as exc:
            if namespace_terminating(exc):
                return
            raise


class ServiceAccountsController(_PerNamespace):
    """Create the ServiceAccount ``default`` in every active namespace."""

    resource = kinds.SERVICEACCOUNTS

    def __init__(self, rest, ns_informer, sa_informer, queue=None):
        super().__init__("serviceaccount", rest, ns_informer, sa_informer, queue)

    def desired(self, namespace):
        return {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_ACCOUNT, "namespace": namespace}}


class RootCACertPublisher(_PerNamespace):
    """Keep kube-root-ca.crt (the cluster CA) in every active namespace."""

    resource = kinds.CONFIGMAPS

    def __init__(self, rest, ns_informer, cm_informer, root_ca, queue=None):
        super().__init__("root-ca-cert-publisher", rest, ns_informer, cm_informer, queue)
        self.root_ca = root_ca

    def desired(self, namespace):
        if not self.root_ca:
            return None
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace},
                "data": {ROOT_CA_KEY: self.root_ca}}

    def differs(self, current, wanted):
        return (current.get("data") or {}) != wanted["data"]


def read_root_ca(path):
    """Return the PEM text of ``--root-ca-file`` (None without a path)."""
    if not path:
        return None
    with open(path) as f:
        return f.read()
