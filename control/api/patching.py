"""PATCH, and the scale subresource: the verbs that read, change and write back.

Both re-read the object and apply the change again when it changed meanwhile
(a 409 on the write), unless the client pinned a resourceVersion. They are the
``PatchVerbs`` part of the object service (service.py), built on its ``get``
and ``update``.
"""

from control import errors
from control.api import decoding, fieldmanager, fields, writeoptions
from control.api.crd import scale as crd_scale
from control.objects import patch, schema, selectors

PATCH_TYPES = ("application/merge-patch+json", "application/json-patch+json",
               "application/strategic-merge-patch+json")
APPLY_PATCH = "application/apply-patch+yaml"
#: Times a patch is re-applied when the object changed underneath it.
PATCH_RETRIES = 5


class PatchVerbs:
    """patch, get_scale, update_scale and patch_scale over ``self.get`` and ``self.update``."""

    def patch(self, resource, namespace, name, content_type, body, subresource=None,
              field_validation=None, warnings=None, options=writeoptions.DEFAULT):
        """Apply a PATCH to the current object, retrying if it changes meanwhile."""
        if content_type == APPLY_PATCH:
            return self.apply(resource, namespace, name, body, subresource, field_validation,
                              warnings, options)
        _check_patch_type(content_type)
        for _ in range(PATCH_RETRIES):
            current = self.get(resource, namespace, name)
            patched = apply_patch(resource, current, content_type, body)
            pinned = patched.get("metadata", {}).get("resourceVersion")
            if pinned is None or pinned == current["metadata"]["resourceVersion"]:
                patched.setdefault("metadata", {})["resourceVersion"] = \
                    current["metadata"]["resourceVersion"]
            try:
                return self.update(resource, namespace, name, patched, subresource,
                                   field_validation, warnings, options)
            except errors.Conflict:
                if pinned not in (None, current["metadata"]["resourceVersion"]):
                    raise
        raise errors.Conflict(f"the object kept changing while the patch was applied "
                              f"{PATCH_RETRIES} times; try again", name=name, kind=resource.plural)

    def apply(self, resource, namespace, name, body, subresource=None, field_validation=None,
              warnings=None, options=writeoptions.DEFAULT, created=None):
        """Server-side apply: merge an applied configuration, creating the object if absent.

        The field-set rules are fieldmanager.py's; conflicts are a 409 naming
        each field and its manager, unless ``options.force``. ``created`` (a
        list) gets True appended when the apply created the object (a 201).
        """
        config = fields.check_fields(resource, _apply_config(resource, name, body),
                                     field_validation, warnings)
        pinned = config["metadata"].get("resourceVersion")
        for _ in range(PATCH_RETRIES):
            try:
                current = self.get(resource, namespace, name)
            except errors.NotFound:
                if subresource or pinned:
                    raise
                _, managed = fieldmanager.apply(resource, None, config, options.manager,
                                                options.force, None, self.clock())
                try:
                    obj = self.create(resource, namespace, config, "Ignore", None, options,
                                      managed_fields=managed)
                except errors.AlreadyExists:
                    continue
                if created is not None:
                    created.append(True)
                return obj
            merged, managed = fieldmanager.apply(resource, current, config, options.manager,
                                                 options.force, subresource, self.clock())
            merged["metadata"]["resourceVersion"] = pinned or \
                current["metadata"]["resourceVersion"]
            try:
                return self.update(resource, namespace, name, merged, subresource, "Ignore",
                                   None, options, managed_fields=managed)
            except errors.Conflict:
                if pinned:
                    raise
        raise errors.Conflict(f"the object kept changing while the configuration was applied "
                              f"{PATCH_RETRIES} times; try again", name=name, kind=resource.plural)

    # -- the scale subresource -----------------------------------------------------
    def get_scale(self, resource, namespace, name):
        if resource.custom is not None:     # at the paths the CRD names
            return crd_scale.to_scale(resource, self.get(resource, namespace, name))
        return to_scale(self.get(resource, namespace, name))

    def update_scale(self, resource, namespace, name, scale, options=writeoptions.DEFAULT):
        """Set spec.replicas from an autoscaling/v1 Scale (PUT .../scale)."""
        replicas = scale.get("spec", {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.Invalid("Scale", name, [("spec.replicas", "FieldValueInvalid",
                                                  f"Invalid value: {replicas!r}: must be a "
                                                  "non-negative integer")], group="autoscaling")
        obj = self.get(resource, namespace, name)
        pinned = scale.get("metadata", {}).get("resourceVersion")
        if pinned:
            obj["metadata"]["resourceVersion"] = pinned
        if resource.custom is not None:
            crd_scale.set_replicas(resource, obj, replicas)
            return crd_scale.to_scale(resource, self.update(resource, namespace, name, obj))
        obj.setdefault("spec", {})["replicas"] = replicas
        return to_scale(self.update(resource, namespace, name, obj, options=options))

    def patch_scale(self, resource, namespace, name, content_type, body,
                    options=writeoptions.DEFAULT):
        """Apply a merge or JSON patch to the Scale view of an object."""
        _check_patch_type(content_type)
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
                return self.update_scale(resource, namespace, name, patched, options)
            except errors.Conflict:
                if patched.get("metadata", {}).get("resourceVersion") != \
                        current["metadata"]["resourceVersion"]:
                    raise
        raise errors.Conflict("the object kept changing while the scale was patched; try again",
                              name=name, kind=resource.plural)


def _apply_config(resource, name, body):
    """Check an applied configuration: an object of the resource's kind, named as the URL."""
    if not isinstance(body, dict):
        raise errors.BadRequest("an applied configuration must be an object, not "
                                f"{type(body).__name__}")
    if not body.get("apiVersion") or not body.get("kind"):
        raise errors.BadRequest("an applied configuration needs apiVersion and kind: add "
                                f"apiVersion: {resource.api_version} and kind: {resource.kind}")
    fields.check_kind(resource, body)
    metadata = body.setdefault("metadata", {})
    if metadata.get("name", name) != name:
        raise errors.BadRequest(f"the name of the object ({metadata.get('name')}) does not "
                                f"match the name on the URL ({name})")
    metadata["name"] = name
    if metadata.get("managedFields") is not None:
        raise errors.BadRequest("metadata.managedFields must be nil in an applied "
                                "configuration: remove it")
    return body


def _check_patch_type(content_type):
    if content_type not in PATCH_TYPES:
        raise errors.UnsupportedMediaType(
            f"the patch content type {content_type!r} is not supported; use one of "
            f"{', '.join(PATCH_TYPES)}")


def apply_patch(resource, current, content_type, body):
    """Return ``current`` with a merge, JSON or strategic merge patch applied (422 if not).

    The result is checked as a request body would be (nesting depth, JSON values);
    its size is checked by the update it goes on to (fields.check_size).
    """
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
    except RecursionError:
        raise errors.UnprocessablePatch("the patch cannot be applied: the patched object "
                                        f"would be nested more than {decoding.MAX_DEPTH} "
                                        "levels deep") from None
    if not isinstance(result, dict):
        raise errors.BadRequest("the patch must leave an object")
    try:
        decoding.check_value(result, what="the patched object")
    except errors.BadRequest as exc:
        raise errors.UnprocessablePatch(f"the patch cannot be applied: {exc.message}") from None
    return result


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
