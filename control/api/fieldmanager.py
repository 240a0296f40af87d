"""Keep metadata.managedFields on every write, and serve server-side apply.

The object service (service.py) calls ``on_create`` and ``on_update`` just
before it stores; patching.py calls ``apply`` for ``application/apply-patch+yaml``.
The field-set rules are control/objects/managedfields.py's.
"""

from control import errors
from control.objects import fieldpath, managedfields, meta, schema


def scope_for(resource, subresource, now):
    """The managedfields.Scope of a write to ``resource`` (or its subresource)."""
    return managedfields.Scope(schema.kind_type(resource.api_version, resource.kind),
                               resource.api_version, "status" in resource.subresources,
                               subresource or "", meta.timestamp(now))


def _sent_entries(metadata, fallback):
    """The entries a write starts from: those it sent, else ``fallback``; None: reset.

    As Kubernetes: a missing or empty list keeps the stored entries, a list of
    empty entries ([{}]) clears them, entries that cannot be read are ignored.
    """
    sent = metadata.get("managedFields")
    if not sent:
        return fallback
    if isinstance(sent, list) and all(entry == {} for entry in sent):
        return None
    try:
        return managedfields.read(sent)
    except managedfields.ManagedFieldsError:
        return fallback


def stored_entries(obj):
    """The entries stored with ``obj`` ([] if it has none or they cannot be read)."""
    try:
        return managedfields.read(obj.get("metadata", {}).get("managedFields") or [])
    except managedfields.ManagedFieldsError:
        return []


def _store(obj, entries):
    rendered = managedfields.render(entries)
    if rendered:
        obj["metadata"]["managedFields"] = rendered
    else:
        obj["metadata"].pop("managedFields", None)


def on_create(resource, obj, manager, now):
    """Record ``manager`` as the owner of every field of a new object (in place)."""
    base = _sent_entries(obj["metadata"], [])
    if base is None:
        obj["metadata"].pop("managedFields", None)
        return
    _store(obj, managedfields.record_update(base, None, obj, manager,
                                            scope_for(resource, None, now)))


def on_update(resource, old, obj, manager, subresource, now):
    """Move the fields ``manager`` changed to it (in place)."""
    base = _sent_entries(obj["metadata"], stored_entries(old))
    if base is None:
        obj["metadata"].pop("managedFields", None)
        return
    _store(obj, managedfields.record_update(base, old, obj, manager,
                                            scope_for(resource, subresource, now)))


def apply(resource, live, config, manager, force, subresource, now):
    """Return (object to write, its rendered managedFields) for an applied configuration.

    ``live`` None: the object is created. 409 with one cause per conflicting
    field (as kubectl prints them), 422 for a configuration that is no field set.
    """
    scope = scope_for(resource, subresource, now)
    entries = stored_entries(live) if live is not None else []
    try:
        merged, entries = managedfields.apply(live, config, entries, manager, force, scope)
    except managedfields.ApplyConflict as exc:
        raise errors.Conflict(exc.message(), causes=exc.causes()) from None
    except fieldpath.FieldPathError as exc:
        raise errors.UnprocessablePatch(f"the applied configuration is invalid: {exc}") \
            from None
    return merged, managedfields.render(entries)


def unchanged(old, new):
    """Whether writing ``new`` over ``old`` changes nothing but managedFields' times.

    A stale resourceVersion is a change: the write goes on to fail with a 409.
    """
    return _comparable(old) == _comparable(new)


def _comparable(obj):
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    if "resourceVersion" in metadata:
        metadata["resourceVersion"] = str(metadata["resourceVersion"])
    entries = [{k: v for k, v in entry.items() if k != "time"}
               for entry in obj.get("metadata", {}).get("managedFields") or []
               if isinstance(entry, dict)]
    return {**obj, "metadata": metadata}, entries
