"""The verbs on objects, independent of HTTP: create, get, list, update, delete.

The falcon resources in handlers.py parse requests and call these; all the
Kubernetes rules about metadata, namespaces, status and deletion live here.
"""

import copy
import datetime
import random
import re
import uuid

from control import errors
from control.api import deletion
from control.objects import defaults, kinds, meta, patch, schema, selectors, support, validation

NAMESPACES = kinds.lookup("", "v1", "namespaces")
PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json",
               "application/strategic-merge-patch+json")
#: Times a patch is re-applied when the object changed underneath it.
PATCH_RETRIES = 5
#: kube-apiserver's default when the client does not say (fieldValidation=...).
DEFAULT_FIELD_VALIDATION = "Warn"
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")
#: Namespaces every cluster has, created when the API server starts.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _generate_job_selector(job):
    """kube-apiserver's Job PrepareForCreate: unless spec.manualSelector, label the
    template with the Job's name and uid and select the uid, so a Job's selector
    never matches another Job's pods. Returns the job re-defaulted, so that a Job
    without labels takes its template's (now generated) labels, as Kubernetes shows.
    """
    spec = job["spec"] = job.get("spec") or {}
    if spec.get("manualSelector"):
        return job
    name, uid = job["metadata"]["name"], job["metadata"]["uid"]
    template = spec["template"] = spec.get("template") or {}
    template_meta = template["metadata"] = template.get("metadata") or {}
    labels = template_meta["labels"] = template_meta.get("labels") or {}
    for key, value in (("job-name", name), ("batch.kubernetes.io/job-name", name),
                       ("controller-uid", uid), ("batch.kubernetes.io/controller-uid", uid)):
        labels.setdefault(key, value)
    selector = spec["selector"] = spec.get("selector") or {}
    match_labels = selector["matchLabels"] = selector.get("matchLabels") or {}
    match_labels.setdefault("batch.kubernetes.io/controller-uid", uid)
    return defaults.apply_defaults(job)


class ObjectService:
    """Apply the Kubernetes object rules on top of the registry."""

    def __init__(self, registry, clock=_utcnow, new_uid=lambda: str(uuid.uuid4()),
                 random_source=None, toleration_seconds=None, allocator=None):
        self.registry = registry
        #: Fills in and claims Services' clusterIPs and nodePorts (allocators.py); None: off.
        self.allocator = allocator
        #: Pods' default tolerationSeconds per node-failure taint (None: 300 s each).
        self.toleration_seconds = toleration_seconds
        self.clock = clock
        self.new_uid = new_uid
        self.random = random_source or random.Random()

    # -- bootstrap ------------------------------------------------------------------
    def ensure_system_namespaces(self):
        for name in SYSTEM_NAMESPACES:
            try:
                self.create(NAMESPACES, None, {"metadata": {"name": name}})
            except errors.AlreadyExists:
                pass

    # -- verbs ------------------------------------------------------------------------
    def create(self, resource, namespace, body, field_validation=None, warnings=None):
        self._check_kind(resource, body)
        body = self._check_fields(resource, body, field_validation, warnings)
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
        obj = defaults.apply_defaults(obj, self.toleration_seconds)
        if (resource.group, resource.kind) == ("batch", "Job"):
            obj = _generate_job_selector(obj)
        self._validate(resource, obj)
        if warnings is not None:
            warnings.extend(support.warnings_for(obj))
        if resource.kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {})["phase"] = "Active"
        if not self._allocates(resource):
            return self.registry.create(resource, obj)
        claims = self.allocator.on_create(obj)
        try:
            return self.registry.create(resource, obj)
        except BaseException:
            claims.rollback()
            raise

    def _allocates(self, resource):
        return self.allocator is not None and (resource.group, resource.kind) == ("", "Service")

    def get(self, resource, namespace, name):
        return self.registry.get(resource, namespace, name)

    def list(self, resource, namespace=None, limit=0, continue_token=None):
        return self.registry.list(resource, namespace, limit=limit, continue_token=continue_token)

    def update(self, resource, namespace, name, body, subresource=None, field_validation=None,
               warnings=None):
        """Replace an object (PUT); with subresource='status' replace only its status."""
        self._check_kind(resource, body)
        body = self._check_fields(resource, body, field_validation, warnings)
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
        obj = self._merge_for_update(resource, old, body, subresource)
        self._validate(resource, obj)
        if deletion.should_delete_during_update(resource, old, obj):
            self.registry.delete(resource, namespace, name,
                                 int(obj["metadata"]["resourceVersion"]))
            if self._allocates(resource):
                self.allocator.on_delete(old)
            return obj
        if self._allocates(resource) and subresource is None:
            claims, release_old = self.allocator.on_update(old, obj)
            try:
                updated = self.registry.update(resource, obj)
            except BaseException:
                claims.rollback()
                raise
            release_old()
        else:
            updated = self.registry.update(resource, obj)
        if warnings is not None and subresource is None:
            # After the write: a patch retried on a conflict warns once.
            warnings.extend(support.warnings_for(obj))
        return updated

    def patch(self, resource, namespace, name, content_type, body, subresource=None,
              field_validation=None, warnings=None):
        """Apply a PATCH to the current object, retrying if it changes meanwhile."""
        if content_type == "application/apply-patch+yaml":
            raise errors.UnsupportedMediaType(
                "server-side apply is not supported yet: use client-side `kubectl apply` "
                "(without --server-side)")
        if content_type not in PATCH_TYPES:
            raise errors.UnsupportedMediaType(
                f"the patch content type {content_type!r} is not supported; use one of "
                f"{', '.join(PATCH_TYPES)}")
        for _ in range(PATCH_RETRIES):
            current = self.registry.get(resource, namespace, name)
            patched = self._apply_patch(resource, current, content_type, body)
            pinned = patched.get("metadata", {}).get("resourceVersion")
            if pinned is None or pinned == current["metadata"]["resourceVersion"]:
                patched.setdefault("metadata", {})["resourceVersion"] = \
                    current["metadata"]["resourceVersion"]
            try:
                return self.update(resource, namespace, name, patched, subresource,
                                   field_validation, warnings)
            except errors.Conflict:
                if pinned not in (None, current["metadata"]["resourceVersion"]):
                    raise
        raise errors.Conflict(f"the object kept changing while the patch was applied "
                              f"{PATCH_RETRIES} times; try again", name=name, kind=resource.plural)

    @staticmethod
    def _apply_patch(resource, current, content_type, body):
        try:
            if content_type == "application/json-patch+json":
                result = patch.json_patch(current, body)
            elif content_type == "application/merge-patch+json":
                result = patch.merge_patch(current, body)
            else:
                type_name = schema.kind_type(resource.api_version, resource.kind)
                result = patch.strategic_merge_patch(current, body, type_name)
        except patch.PatchError as exc:
            raise errors.UnprocessablePatch(f"the patch cannot be applied: {exc}") from None
        if not isinstance(result, dict):
            raise errors.BadRequest("the patch must leave an object")
        return result

    # -- the scale subresource -----------------------------------------------------
    def get_scale(self, resource, namespace, name):
        return to_scale(self.registry.get(resource, namespace, name))

    def update_scale(self, resource, namespace, name, scale):
        """Set spec.replicas from an autoscaling/v1 Scale (PUT .../scale)."""
        replicas = scale.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.Invalid("Scale", name, [("spec.replicas", "FieldValueInvalid",
                                                  f"Invalid value: {replicas!r}: must be a "
                                                  "non-negative integer")], group="autoscaling")
        obj = self.registry.get(resource, namespace, name)
        pinned = scale.get("metadata", {}).get("resourceVersion")
        if pinned:
            obj["metadata"]["resourceVersion"] = pinned
        obj.setdefault("spec", {})["replicas"] = replicas
        return to_scale(self.update(resource, namespace, name, obj))

    def patch_scale(self, resource, namespace, name, content_type, body):
        """Apply a merge or JSON patch to the Scale view of an object."""
        if content_type not in PATCH_TYPES:
            raise errors.UnsupportedMediaType(f"the patch content type {content_type!r} is not "
                                              f"supported; use one of {', '.join(PATCH_TYPES)}")
        for _ in range(PATCH_RETRIES):
            current = self.get_scale(resource, namespace, name)
            try:
                if content_type == "application/json-patch+json":
                    patched = patch.json_patch(current, body)
                else:
                    patched = patch.merge_patch(current, body)
            except patch.PatchError as exc:
                raise errors.UnprocessablePatch(f"the patch cannot be applied: {exc}") from None
            try:
                return self.update_scale(resource, namespace, name, patched)
            except errors.Conflict:
                if patched.get("metadata", {}).get("resourceVersion") != \
                        current["metadata"]["resourceVersion"]:
                    raise
        raise errors.Conflict("the object kept changing while the scale was patched; try again",
                              name=name, kind=resource.plural)

    def delete(self, resource, namespace, name, options=None):
        """Delete an object, or mark it for deletion (grace period, finalizers)."""
        return self.remove(resource, namespace, name, options)[0]

    def remove(self, resource, namespace, name, options=None):
        """Like ``delete``; return (object, whether it is gone from the store)."""
        options = options or deletion.DeleteOptions()
        for _ in range(PATCH_RETRIES):
            obj = self.registry.get(resource, namespace, name)
            deletion.check_preconditions(resource, obj, options.preconditions)
            action, obj = deletion.plan(resource, obj, options, self.clock())
            if action == deletion.PENDING or options.dry_run:
                return obj, action == deletion.DELETE
            try:
                if action == deletion.UPDATE:
                    return self.registry.update(resource, obj), False
                gone = self.registry.delete(resource, namespace, name,
                                            int(obj["metadata"]["resourceVersion"]))
                if self._allocates(resource):
                    self.allocator.on_delete(gone)
                return gone, True
            except errors.Conflict:
                if options.preconditions.get("resourceVersion"):
                    raise
        raise errors.Conflict("the object kept changing while it was deleted; try again",
                              name=name, kind=resource.plural)

    # -- rules ------------------------------------------------------------------------
    def _merge_for_update(self, resource, old, body, subresource):
        has_status = "status" in resource.subresources
        if subresource == "status":
            merged = {**old, "status": body.get("status", {})}
            merged["metadata"] = {**old["metadata"],
                                  "resourceVersion": body["metadata"]["resourceVersion"]}
            return merged
        merged = meta.prepare_update(old, body, keep_status=has_status)
        if resource.kind == "Namespace" and subresource != "finalize":
            # Only the finalize subresource changes spec.finalizers, as in kube-apiserver.
            finalizers = old.get("spec", {}).get("finalizers")
            merged.setdefault("spec", {}).pop("finalizers", None)
            if finalizers is not None:
                merged["spec"]["finalizers"] = finalizers
        return merged

    def _check_namespace_open(self, namespace):
        try:
            ns = self.registry.get(NAMESPACES, None, namespace)
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

    @staticmethod
    def _check_fields(resource, body, mode, warnings):
        """Refuse (Strict) or drop and report (Warn, Ignore) fields Kubernetes does not know."""
        mode = mode or DEFAULT_FIELD_VALIDATION
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.BadRequest(f"fieldValidation={mode!r} is not one of Strict, Warn, Ignore")
        type_name = schema.kind_type(resource.api_version, resource.kind)
        if type_name is None:
            return body
        unknown, wrong_types = validation.check_fields(body, type_name)
        if wrong_types:
            raise errors.BadRequest(f"{resource.kind} in version \"{resource.version}\" cannot be "
                                    "handled: " + "; ".join(f"{path}: {message}"
                                                            for path, message in wrong_types))
        if not unknown:
            return body
        if mode == "Strict":
            raise errors.BadRequest("strict decoding error: " + ", ".join(
                f'unknown field "{path}"' for path in unknown))
        if mode == "Warn" and warnings is not None:
            warnings.extend(f'unknown field "{path}"' for path in unknown)
        return _without_paths(body, unknown)

    @staticmethod
    def _check_kind(resource, body):
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind and kind != resource.kind:
            raise errors.BadRequest(f"the kind of the object ({kind}) does not match the "
                                    f"resource of the request ({resource.plural}): send it to "
                                    "its own collection")
        if api_version and api_version != resource.api_version:
            raise errors.BadRequest(f"the apiVersion of the object ({api_version}) does not "
                                    f"match the request ({resource.api_version})")

    @staticmethod
    def _validate(resource, obj):
        problems = meta.name_errors(resource.kind, obj["metadata"].get("name", ""))
        if problems:
            raise errors.Invalid(resource.kind, obj["metadata"].get("name", ""), problems,
                                 group=resource.group)


def to_scale(obj):
    """The autoscaling/v1 Scale view of a Deployment, ReplicaSet or StatefulSet."""
    meta_ = obj["metadata"]
    selector = obj.get("spec", {}).get("selector")
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta_[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                               "creationTimestamp") if k in meta_},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 0)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": selectors.selector_to_string(selector) if selector else ""}}


def _without_paths(obj, paths):
    """Return a copy of ``obj`` without the fields at ``paths`` (spec.x[0].y form)."""
    obj = copy.deepcopy(obj)
    for path in paths:
        tokens = [name if name else (int(index) if index.isdigit() else index)
                  for name, index in _PATH_TOKEN.findall(path)]
        node = obj
        for token in tokens[:-1]:
            try:
                node = node[token]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node.pop(tokens[-1], None)
    return obj
