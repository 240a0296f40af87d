"""The paths and operations of one group/version, named as kube-apiserver names them.

For each resource: the collection (list, create, deletecollection), the
cluster-wide list of a namespaced resource (``...ForAllNamespaces``), the item
(read, replace, patch, delete) and its subresources (status, scale, binding,
eviction, log, exec/attach/portforward, finalize, token, approval). Watches are a
list with ``?watch=true``; the deprecated /watch/ paths are not served. Schemas
are referred to through a ``Refs`` (openapi.py), so that built-in kinds and
custom resources share this code.
"""

from dataclasses import dataclass

from control.api import openapi_params as params
from control.api.protobuf import schema as protobuf_schema

JSON = "application/json"
#: What request bodies may be sent as (bodies.py reads YAML too).
BODY_TYPES = (JSON, "application/yaml")
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")
LIST_TYPES = (JSON, "application/json;stream=watch")
#: Built-in kinds are also answered in protobuf (control/api/protobuf/), as kube-apiserver
#: advertises them; custom resources are JSON only.
PROTOBUF = "application/vnd.kubernetes.protobuf"
PROTOBUF_ALSO = {JSON: (PROTOBUF,), "application/json;stream=watch": (f"{PROTOBUF};stream=watch",)}
UNAUTHORIZED = {"description": "Unauthorized"}


@dataclass(frozen=True)
class Refs:
    """Schema references for the operations of one resource."""

    object: dict            # the kind, e.g. {"$ref": ".../V1Pod"}
    list: dict              # its List
    ref: object             # type name -> {"$ref": ...}


def _words(group):
    return group.removesuffix(".k8s.io").split(".") if group else ["core"]


def _capital(word):
    return word[:1].upper() + word[1:]


def group_prefix(group, version):
    """``CoreV1``, ``AppsV1``, ``RbacAuthorizationV1``: the operationId infix."""
    return "".join(_capital(w) for w in _words(group)) + _capital(version)


def tag(group, version):
    """``core_v1``, ``apps_v1``, ``rbacAuthorization_v1``, as kube-apiserver tags."""
    first, *rest = _words(group)
    return first + "".join(_capital(w) for w in rest) + "_" + version


def _content(schema, media_types=(JSON,)):
    return {media: {"schema": schema} for media in media_types}


def _responses(schema, codes, media_types=(JSON,)):
    out = {code: {"description": _REASONS[code], "content": _content(schema, media_types)}
           for code in codes}
    out["401"] = UNAUTHORIZED
    return out


_REASONS = {"200": "OK", "201": "Created", "202": "Accepted"}


def _op(op_id, action, gvk, tags, query=(), body=None, responses=None, body_types=BODY_TYPES):
    op = {"operationId": op_id, "tags": tags, "x-kubernetes-action": action,
          "x-kubernetes-group-version-kind": gvk, "parameters": params.query(*query),
          "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _content(body, body_types)}
    return op


def resource_paths(resource, refs):
    """Return {path: path item} for one resource and its subresources."""
    g, v = resource.group, resource.version
    base = f"/apis/{g}/{v}" if g else f"/api/{v}"
    gvk = {"group": g, "version": v, "kind": resource.kind}
    tags = [tag(g, v)]
    prefix, ns = group_prefix(g, v), "Namespaced" if resource.namespaced else ""
    ns_path = "/namespaces/{namespace}" if resource.namespaced else ""
    scope = [params.NAMESPACE] if resource.namespaced else []
    kind_ref = refs.object
    verbs = set(resource.verbs)
    paths = {}

    collection = {"parameters": scope + [params.PRETTY]}
    if "list" in verbs:
        collection["get"] = _op(f"list{prefix}{ns}{resource.kind}", "list", gvk, tags,
                                params.LIST, responses=_responses(refs.list, ("200",), LIST_TYPES))
    if "create" in verbs:
        collection["post"] = _op(f"create{prefix}{ns}{resource.kind}", "post", gvk, tags,
                                 params.WRITE, kind_ref, _responses(kind_ref, ("200", "201", "202")))
    if "deletecollection" in verbs:
        collection["delete"] = _op(
            f"delete{prefix}Collection{ns}{resource.kind}", "deletecollection", gvk, tags,
            params.DELETE_COLLECTION, refs.ref("V1DeleteOptions"),
            _responses(refs.ref("V1Status"), ("200",)))
    paths[f"{base}{ns_path}/{resource.plural}"] = collection
    if resource.namespaced and "list" in verbs:
        paths[f"{base}/{resource.plural}"] = {
            "parameters": [params.PRETTY],
            "get": _op(f"list{prefix}{resource.kind}ForAllNamespaces", "list", gvk, tags,
                       params.LIST, responses=_responses(refs.list, ("200",), LIST_TYPES))}
    if "get" not in verbs:
        return _with_protobuf(paths) if _has_protobuf(resource) else paths

    item_path = f"{base}{ns_path}/{resource.plural}/{{name}}"
    item_params = [params.NAME] + scope + [params.PRETTY]
    name = f"{prefix}{ns}{resource.kind}"
    paths[item_path] = {
        "parameters": item_params,
        "get": _op(f"read{name}", "get", gvk, tags, responses=_responses(kind_ref, ("200",))),
        "put": _op(f"replace{name}", "put", gvk, tags, params.WRITE, kind_ref,
                   _responses(kind_ref, ("200", "201"))),
        "patch": _patch(f"patch{name}", gvk, tags, kind_ref, refs),
        "delete": _op(f"delete{name}", "delete", gvk, tags, params.DELETE,
                      refs.ref("V1DeleteOptions"),
                      _responses(_deleted_schema(resource, refs), ("200", "202")))}
    for sub in resource.subresources:
        built = _subresource(sub, prefix, ns + resource.kind, gvk, tags, refs)
        if built is not None:
            # Connections (exec, attach, portforward) take no ?pretty.
            sub_params = item_params[:-1] if sub in params.CONNECT else item_params
            paths[f"{item_path}/{sub}"] = {"parameters": sub_params, **built}
    return _with_protobuf(paths) if _has_protobuf(resource) else paths


def _has_protobuf(resource):
    return (resource.custom is None
            and protobuf_schema.message_name(resource.api_version, resource.kind) is not None)


def _with_protobuf(paths):
    """Add the protobuf media types beside each JSON answer of a built-in kind's paths."""
    for item in paths.values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            for answer in op.get("responses", {}).values():
                content = answer.get("content", {})
                for media, extra in PROTOBUF_ALSO.items():
                    if media in content:
                        content.update({e: content[media] for e in extra})
    return paths


#: Kinds whose delete answers the object itself (kube-apiserver's ReturnDeletedObject);
#: the others are documented as answering a Status.
RETURNS_DELETED_OBJECT = {("", "Pod"), ("", "Service"), ("", "ServiceAccount")}


def _deleted_schema(resource, refs):
    if (resource.group, resource.kind) in RETURNS_DELETED_OBJECT:
        return refs.object
    return refs.ref("V1Status")


def _patch(op_id, gvk, tags, target, refs):
    return _op(op_id, "patch", gvk, tags, params.PATCH, refs.ref("V1Patch"),
               _responses(target, ("200", "201")), body_types=PATCH_TYPES)


def _read_replace_patch(suffix, name, gvk, tags, target, refs):
    return {"get": _op(f"read{name}{suffix}", "get", gvk, tags,
                       responses=_responses(target, ("200",))),
            "put": _op(f"replace{name}{suffix}", "put", gvk, tags, params.WRITE, target,
                       _responses(target, ("200", "201"))),
            "patch": _patch(f"patch{name}{suffix}", gvk, tags, target, refs)}


def _subresource(sub, prefix, rest, gvk, tags, refs):
    """Return the operations of one subresource, or None for one not documented.

    ``prefix`` + ``rest`` name the item (``CoreV1`` + ``NamespacedPod``).
    """
    name = prefix + rest
    if sub in ("status", "approval"):
        return _read_replace_patch(sub.capitalize(), name, gvk, tags, refs.object, refs)
    if sub == "scale":
        scale_gvk = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        return _read_replace_patch("Scale", name, scale_gvk, tags, refs.ref("V1Scale"), refs)
    if sub == "finalize":
        return {"put": _op(f"replace{name}Finalize", "put", gvk, tags, params.WRITE,
                           refs.object, _responses(refs.object, ("200", "201")))}
    if sub == "binding":
        # kube-apiserver documents a Binding but answers a Status: document the answer.
        binding_gvk = {"group": "", "version": "v1", "kind": "Binding"}
        return {"post": _op(f"create{name}Binding", "post", binding_gvk, tags, params.WRITE,
                            refs.ref("V1Binding"),
                            _responses(refs.ref("V1Status"), ("200", "201", "202")))}
    if sub == "eviction":
        eviction_gvk = {"group": "policy", "version": "v1", "kind": "Eviction"}
        return {"post": _op(f"create{name}Eviction", "post", eviction_gvk, tags, params.WRITE,
                            refs.ref("V1Eviction"),
                            _responses(refs.ref("V1Status"), ("200", "201", "202")))}
    if sub == "token":
        token = refs.ref("AuthenticationV1TokenRequest")
        token_gvk = {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}
        return {"post": _op(f"create{name}Token", "post", token_gvk, tags, params.WRITE, token,
                            _responses(token, ("200", "201", "202")))}
    if sub == "log":
        text = {"type": "string"}
        return {"get": _op(f"read{name}Log", "get", gvk, tags, params.LOG,
                           responses=_responses(text, ("200",), ("text/plain",)))}
    if sub in params.CONNECT:
        kind = {"group": "", "version": "v1", "kind": f"Pod{sub.capitalize()}Options"}
        text = {"type": "string"}
        return {method.lower(): _op(
            f"connect{prefix}{method}{rest}{sub.capitalize()}", "connect", kind, tags,
            params.CONNECT[sub], responses=_responses(text, ("200",), ("*/*",)))
            for method in ("Get", "Post")}
    return None



def legacy_bindings(ref):
    """POST /api/v1/namespaces/{namespace}/bindings: the older form of pods/binding."""
    gvk = {"group": "", "version": "v1", "kind": "Binding"}
    return {"/api/v1/namespaces/{namespace}/bindings": {
        "parameters": [params.NAMESPACE, params.PRETTY],
        "post": _op("createCoreV1NamespacedBinding", "post", gvk, [tag("", "v1")],
                    params.WRITE, ref("V1Binding"),
                    _responses(ref("V1Status"), ("200", "201", "202")))}}
