"""OpenAPI documents of the served API: /openapi/v3 (index + one per group/version), /openapi/v2.

kubectl 1.32 reads the v3 index, then one document per group/version, for
`apply` (it looks for the ``fieldValidation`` query parameter on each kind's
PATCH to decide that the server validates) and for `explain` (it finds a kind's
schema by its ``x-kubernetes-group-version-kind``). Paths, operationIds,
parameters and responses follow kube-apiserver's (openapi_paths.py), so that
generated clients and fuzzers can use them. v2 (swagger 2.0, JSON only) holds the
same paths and definitions (openapi_v2.py).

Resources a CustomResourceDefinition serves (kinds.Resource with ``custom``, whose
``schema`` is the version's openAPIV3Schema) are documented like built-in ones;
other packages may add more with ``register_source``. Documents are built on
first use and kept, with their hash, until the custom resources change.
"""

import hashlib
import json
import threading

from control.api import openapi_paths, openapi_schemas, openapi_v2
from control.objects import kinds, schema

V3_REF = "#/components/schemas/"
_sources = []
_cache = {}
_lock = threading.Lock()


def register_source(source):
    """Add ``source``, called as ``source()`` whenever a document is asked for.

    It returns an iterable of ``(resource, open_api_v3_schema)`` pairs: ``resource``
    is a ``control.objects.kinds.Resource`` (group, version, kind, plural, namespaced,
    subresources such as "status" and "scale", verbs) and the schema is the object's
    OpenAPI v3 schema (a CRD version's ``schema.openAPIV3Schema``; None for any
    object). Its group/version then appears in the v3 index and in v2, with every
    path kube-apiserver serves for it; a changed answer rebuilds the documents
    (and their hashes). A source must be cheap and must not raise.
    """
    with _lock:
        _sources.append(source)
        _cache.clear()


def unregister_source(source):
    """Remove a source added by ``register_source`` (tests)."""
    with _lock:
        if source in _sources:
            _sources.remove(source)
        _cache.clear()


def _custom_entries():
    """(resource, schema) of every custom resource: CRDs' (kinds.Resource.custom), sources'."""
    entries = [(r, getattr(r.custom, "schema", None)) for r in kinds.served()
               if r.custom is not None]
    for source in list(_sources):
        entries.extend(source())
    return entries


def group_versions():
    """Every group/version with a document: the built-in ones, then the sources'."""
    found = list(kinds.group_versions())
    for resource, _ in _custom_entries():
        if (resource.group, resource.version) not in found:
            found.append((resource.group, resource.version))
    return found


def _fingerprint(entries):
    described = [(r.group, r.version, r.kind, r.plural, r.namespaced, list(r.subresources),
                  list(r.verbs), s) for r, s in entries]
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _ref_maker(ref_prefix):
    return lambda name: {"$ref": ref_prefix + name}


def _builtin_refs(resource, ref):
    type_name = schema.kind_type(resource.api_version, resource.kind)
    list_name = schema.kind_type(resource.api_version, resource.list_kind)
    any_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return openapi_paths.Refs(object=ref(type_name) if type_name else any_object,
                              list=ref(list_name) if list_name else any_object, ref=ref)


def _build(entries, wanted, ref_prefix):
    """Return (paths, schemas) for the group/versions in ``wanted`` (None: all)."""
    ref = _ref_maker(ref_prefix)
    schemas = openapi_schemas.builtin(ref_prefix)
    custom = {(r.group, r.version, r.plural): (r, s) for r, s in entries}
    paths = {}
    for group, version in group_versions():
        if wanted is not None and (group, version) != wanted:
            continue
        for resource in kinds.resources_in(group, version):
            if (group, version, resource.plural) not in custom:
                paths.update(openapi_paths.resource_paths(resource, _builtin_refs(resource, ref)))
        if (group, version) == ("", "v1"):
            paths.update(openapi_paths.legacy_bindings(ref))
    for (group, version, _), (resource, open_api_schema) in custom.items():
        if wanted is not None and (group, version) != wanted:
            continue
        schemas.update(openapi_schemas.custom(resource, open_api_schema, ref_prefix))
        object_name, list_name = openapi_schemas.custom_names(resource)
        refs = openapi_paths.Refs(object=ref(object_name), list=ref(list_name), ref=ref)
        paths.update(openapi_paths.resource_paths(resource, refs))
    return paths, schemas


def _cached(key, entries, build):
    fingerprint = _fingerprint(entries)
    hit = _cache.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    value = build()
    with _lock:
        _cache[key] = (fingerprint, value)
    return value


def _encode(doc):
    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return body, hashlib.sha512(body).hexdigest()[:32].upper()


def v3_document(group, version):
    """The OpenAPI 3.0 document of one group/version, as bytes, and its hash."""
    entries = [e for e in _custom_entries() if (e[0].group, e[0].version) == (group, version)]

    def build():
        paths, schemas = _build(entries, (group, version), V3_REF)
        return _encode({"openapi": "3.0.0",
                        "info": {"title": "Kubernetes", "version": "v1.32.0"},
                        "paths": paths, "components": {"schemas": schemas}})
    return _cached(("v3", group, version), entries, build)


def v3_index():
    """The /openapi/v3 index: each group/version's document URL with its hash."""
    paths = {}
    for group, version in group_versions():
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        _, digest = v3_document(group, version)
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


def v2_document():
    """The swagger 2.0 document of every group/version, as JSON bytes."""
    entries = _custom_entries()

    def build():
        paths, schemas = _build(entries, None, openapi_v2.REF)
        return _encode(openapi_v2.document(paths, schemas))[0]
    return _cached(("v2",), entries, build)


#: What kubectl asks /openapi/v2 for; the server has only the JSON form.
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def v2_acceptable(accept):
    """Whether an Accept header takes JSON (no header, */*, application/*, or JSON).

    A client asking only for the protobuf form gets 406, as kube-apiserver answers
    a form it cannot produce; kubectl then reports that it could not download
    the OpenAPI (it reads /openapi/v3 first, which is served).
    """
    if not accept or not accept.strip():
        return True
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("*/*", "application/*", "application/json"):
            return True
    return False
