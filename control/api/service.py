"""The verbs on objects, independent of HTTP: create, get, list, update, delete.

The falcon resources in handlers.py parse requests and call these. The rules
every kind shares (metadata, namespaces, resourceVersions, deletion) live here;
each kind's own rules live in its strategy (control/api/strategies/), which the
verbs consult and never name a kind. Patches and the scale subresource are in
patching.py. The app and the handlers reach the store only through this service.
"""

import random
import uuid

from control import errors
from control.api import (
    admission,
    deletion,
    fieldmanager,
    fields,
    filters,
    patching,
    served_versions,
    watch,
    writeoptions,
)
from control.api.allocators import (
    DEFAULT_CLUSTER_IP_RANGE,
    DEFAULT_NODE_PORT_RANGE,
    ServiceAllocator,
)
from control.api.strategies import strategy_for
from control.objects import defaults, kinds, meta
from control.registry import Registry

#: Namespaces every cluster has, created when the API server starts.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
#: Times a delete is tried again when the object changed underneath it.
DELETE_RETRIES = 5
#: Seconds /readyz waits for the store to answer.
READY_TIMEOUT = 2


def for_store(store_client, toleration_seconds=None, cluster_ip_range=DEFAULT_CLUSTER_IP_RANGE,
              node_port_range=DEFAULT_NODE_PORT_RANGE, encryption=None):
    """Return the object service over a store client, allocating Services' addresses.

    ``encryption`` (control/api/encryption.py) encrypts the resources it lists at rest.
    """
    registry = Registry(store_client, encryption=encryption)
    return ObjectService(registry, toleration_seconds=toleration_seconds,
                         allocator=ServiceAllocator(registry, cluster_ip_range, node_port_range))


class ObjectService(patching.PatchVerbs):
    """Apply the Kubernetes object rules on top of the registry."""

    def __init__(self, registry, clock=meta.utcnow, new_uid=lambda: str(uuid.uuid4()),
                 random_source=None, toleration_seconds=None, allocator=None):
        self.registry = registry
        #: Fills in and claims Services' clusterIPs and nodePorts (allocators.py); None: off.
        self.allocator = allocator
        #: Pods' default tolerationSeconds per node-failure taint (None: 300 s each).
        self.toleration_seconds = toleration_seconds
        self.clock = clock
        self.new_uid = new_uid
        self.random = random_source or random.Random()
        #: Admission plugins (control/api/admission/): mutate, then validate, every write.
        self.admission = admission.Chain.build(admission.DEFAULT_PLUGINS, self)

    def use_admission(self, names):
        """Enable the named admission plugins (--enable-admission-plugins) instead."""
        self.admission = admission.Chain.build(names, self)

    # -- the server's life ------------------------------------------------------------
    def bootstrap(self):
        """Create the system namespaces and make allocation claims match the Services."""
        self.ensure_system_namespaces()
        if self.allocator is not None:
            self.allocator.repair()

    def ensure_system_namespaces(self):
        """Create default, kube-system, kube-public and kube-node-lease if missing."""
        for name in SYSTEM_NAMESPACES:
            try:
                self.create(kinds.NAMESPACES, None, {"metadata": {"name": name}})
            except errors.AlreadyExists:
                pass

    def store_ready(self):
        """Raise unless the store answers (what /readyz reports)."""
        self.registry.ready(timeout=READY_TIMEOUT)

    def watch_source(self):
        """Return a source of watches (control/api/watch.py) with its own watch caches."""
        return watch.WatchSource(self.registry)

    # -- reads ------------------------------------------------------------------------
    def get(self, resource, namespace, name):
        """Return one object (404 if there is none)."""
        if resource.conversion is not None:
            return served_versions.get(self, resource, namespace, name)
        return self.registry.get(resource, namespace, name)

    @staticmethod
    def selector(resource, label_selector=None, field_selector=None):
        """Return ``matches(obj)`` for a list's or watch's selectors (400 if malformed)."""
        return filters.matcher(resource, label_selector, field_selector)

    def list(self, resource, namespace=None, *, label_selector=None, field_selector=None,
             limit=0, continue_token=None):
        """List objects matching the selectors; return (items, revision, continue token).

        As kube-apiserver does, ``limit`` bounds the objects read, so a page may hold
        fewer matches than the limit and still carry a continue token.
        """
        if resource.conversion is not None:
            return served_versions.list_(self, resource, namespace, limit=limit,
                                         continue_token=continue_token,
                                         label_selector=label_selector,
                                         field_selector=field_selector)
        matches = self.selector(resource, label_selector, field_selector)
        items, revision, token = self.registry.list(resource, namespace, limit=limit,
                                                    continue_token=continue_token)
        return [obj for obj in items if matches(obj)], revision, token

    # -- writes -----------------------------------------------------------------------
    def create(self, resource, namespace, body, field_validation=None, warnings=None,
               options=writeoptions.DEFAULT, managed_fields=None):
        """Store a new object (POST); ``warnings`` (a list) receives the API warnings.

        ``options`` (writeoptions.py) name the field manager and ask for a dry run
        (the would-be object is returned, nothing is stored or kept allocated);
        ``managed_fields`` are the entries of a create by server-side apply.
        """
        if resource.conversion is not None:
            return served_versions.create(self, resource, namespace, body, field_validation,
                                          warnings, options=options,
                                          managed_fields=managed_fields)
        fields.check_kind(resource, body)
        body = fields.check_fields(resource, body, field_validation, warnings)
        strategy = strategy_for(resource)
        if resource.namespaced:
            body_ns = body.get("metadata", {}).get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.BadRequest(
                    f"the namespace of the object ({body_ns}) does not match the namespace "
                    f"on the request ({namespace})")
            namespace = namespace or body_ns or "default"
            self._check_namespace_open(namespace)
        obj = meta.prepare_create(body, resource, namespace, self.clock(), self.new_uid,
                                  self.random)
        obj = strategy.prepare_for_create(defaults.apply_defaults(obj, self.toleration_seconds))
        attrs = admission.Attributes("CREATE", resource, namespace, obj,
                                     dry_run=bool(options.dry_run))
        obj = self.admission.admit(attrs)
        strategy.validate(obj)
        self.admission.validate(attrs)
        if warnings is not None:
            warnings.extend(strategy.warnings(obj))
        if managed_fields is None:
            fieldmanager.on_create(resource, obj, options.manager, self.clock())
        else:
            obj["metadata"]["managedFields"] = managed_fields
        undo = strategy.begin_create(obj, self.allocator)
        if options.dry_run:
            undo()      # what a Service would get is shown, nothing stays claimed
            return obj
        try:
            return self.registry.create(resource, obj)
        except BaseException:
            undo()
            raise

    def update(self, resource, namespace, name, body, subresource=None, field_validation=None,
               warnings=None, options=writeoptions.DEFAULT, managed_fields=None):
        """Replace an object (PUT); with subresource='status' replace only its status.

        ``options`` and ``managed_fields`` as for ``create``. A write that changes
        nothing is not stored (no new resourceVersion), as kube-apiserver skips it.
        """
        if resource.conversion is not None:
            return served_versions.update(self, resource, namespace, name, body, subresource,
                                          field_validation, warnings, options=options,
                                          managed_fields=managed_fields)
        fields.check_kind(resource, body)
        body = fields.check_fields(resource, body, field_validation, warnings)
        strategy = strategy_for(resource, subresource)
        body_meta = body.setdefault("metadata", {})
        if body_meta.get("name", name) != name:
            raise errors.BadRequest(f"the name of the object ({body_meta.get('name')}) does "
                                    f"not match the name on the URL ({name})")
        old = self.registry.get(resource, namespace, name)
        if not body_meta.get("resourceVersion"):
            # Unconditional update, as kube-apiserver allows for these kinds.
            body_meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        # Default the body, not the merged object: the generation check compares
        # the new spec with the stored (already defaulted) one.
        body = defaults.apply_defaults({**body, "apiVersion": resource.api_version,
                                        "kind": resource.kind,
                                        "metadata": {"name": name, **body_meta}},
                                       self.toleration_seconds)
        obj = strategy.prepare_for_update(old, body)
        attrs = admission.Attributes("UPDATE", resource, namespace, obj, old, subresource,
                                     dry_run=bool(options.dry_run))
        obj = self.admission.admit(attrs)
        strategy.validate_update(obj, old)
        self.admission.validate(attrs)
        if managed_fields is None:
            fieldmanager.on_update(resource, old, obj, options.manager, subresource,
                                   self.clock())
        else:
            obj["metadata"]["managedFields"] = managed_fields
        if options.dry_run:
            if warnings is not None:
                warnings.extend(strategy.warnings(obj))
            return self._dry_update(strategy, old, obj)
        if deletion.should_delete_during_update(strategy, old, obj):
            self.registry.delete(resource, namespace, name,
                                 int(obj["metadata"]["resourceVersion"]))
            strategy.after_delete(old, self.allocator)
            return obj
        if fieldmanager.unchanged(old, obj):
            if warnings is not None:
                warnings.extend(strategy.warnings(obj))
            return old
        undo, release_old = strategy.begin_update(old, obj, self.allocator)
        try:
            updated = self.registry.update(resource, obj)
        except BaseException:
            undo()
            raise
        release_old()
        if warnings is not None:
            # After the write: a patch retried on a conflict warns once.
            warnings.extend(strategy.warnings(obj))
        return updated

    def delete(self, resource, namespace, name, options=None):
        """Delete an object, or mark it for deletion (grace period, finalizers)."""
        return self.remove(resource, namespace, name, options)[0]

    def remove(self, resource, namespace, name, options=None):
        """Like ``delete``; return (object, whether it is gone from the store)."""
        if resource.conversion is not None:
            return served_versions.remove(self, resource, namespace, name, options)
        options = options or deletion.DeleteOptions()
        strategy = strategy_for(resource)
        for _ in range(DELETE_RETRIES):
            obj = self.registry.get(resource, namespace, name)
            deletion.check_preconditions(resource, obj, options.preconditions)
            action, obj = deletion.plan(strategy, obj, options, self.clock())
            if action == deletion.PENDING or options.dry_run:
                return obj, action == deletion.DELETE
            try:
                if action == deletion.UPDATE:
                    return self.registry.update(resource, obj), False
                gone = self.registry.delete(resource, namespace, name,
                                            int(obj["metadata"]["resourceVersion"]))
                strategy.after_delete(gone, self.allocator)
                return gone, True
            except errors.Conflict:
                if options.preconditions.get("resourceVersion"):
                    raise
        raise errors.Conflict("the object kept changing while it was deleted; try again",
                              name=name, kind=resource.plural)

    def delete_collection(self, resource, namespace=None, options=None, *, label_selector=None,
                          field_selector=None):
        """Delete every object matching the selectors; return (those deleted, list revision).

        An object that goes meanwhile is skipped, as kube-apiserver's DeleteCollection does.
        """
        items, revision, _ = self.list(resource, namespace, label_selector=label_selector,
                                       field_selector=field_selector)
        deleted = []
        for obj in items:
            try:
                deleted.append(self.delete(resource, namespace or obj["metadata"].get(
                    "namespace"), obj["metadata"]["name"], options))
            except errors.NotFound:
                pass
        return deleted, revision

    # -- rules ------------------------------------------------------------------------
    def _dry_update(self, strategy, old, obj):
        """Return what an update would store: its claims are made and given back."""
        if not deletion.should_delete_during_update(strategy, old, obj):
            undo, _ = strategy.begin_update(old, obj, self.allocator)
            undo()
        return obj

    def _check_namespace_open(self, namespace):
        try:
            ns = self.registry.get(kinds.NAMESPACES, None, namespace)
        except errors.NotFound:
            raise errors.NotFound(f'namespaces "{namespace}" not found', name=namespace,
                                  kind="namespaces") from None
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.Forbidden(
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated", name=namespace, kind="namespaces",
                causes=[{"reason": "NamespaceTerminating",
                         "message": f"namespace {namespace} is being terminated",
                         "field": "metadata.namespace"}])
