"""Falcon resources: one for collections, one for items, one for subresources.

Each turns the URL into a ``Resource`` (control/objects/kinds.py) and a namespace,
reads the body or the query, calls ``ObjectService`` and renders its answer: they
speak HTTP, the service speaks objects. Core-group URLs (/api/v1/...) and
named-group URLs (/apis/{group}/{version}/...) share them.
"""

import functools

import falcon

from control import errors
from control.api import bodies, deletion, streaming, subresources, table, watch, writeoptions
from control.api.eviction import Evictions
from control.api.protobuf import negotiation
from control.objects import kinds

COLLECTION_METHODS = ("GET", "POST", "DELETE")
APPLY_PATCH = "application/apply-patch+yaml"
#: Integers in query parameters are Go int64s in Kubernetes.
MAX_INT64 = 2**63 - 1
#: Warnings sent with one response, and characters per warning (kube-apiserver truncates too).
MAX_WARNINGS, MAX_WARNING_CHARS = 50, 512


def resolve(params):
    """Find the resource named by the URL parameters, or 404."""
    group, version = params.get("group", ""), params.get("version", "v1")
    resource = kinds.lookup(group, version, params["plural"])
    if resource is None:
        gv = f"{group}/{version}" if group else version
        raise errors.NotFound(f"the server could not find the requested resource "
                              f"({params['plural']} in {gv})")
    namespace = params.get("ns")
    if namespace and not resource.namespaced:
        raise errors.NotFound(f"{resource.plural} are not namespaced: "
                              f"drop namespaces/{namespace} from the URL")
    return resource, namespace


def namespace_subresource(params):
    """Return subresource URL parameters for /api/v1/namespaces/{name}/{status|finalize}.

    Falcon routes those to the namespaced collection route (ns={name},
    plural={sub}); no resource is called "status" or "finalize", so they are
    unambiguous.
    """
    namespaces = kinds.lookup("", params.get("version", ""), "namespaces")
    if ("group" in params or not params.get("ns") or namespaces is None
            or params["plural"] not in namespaces.subresources):
        return None
    return {"version": params["version"], "plural": "namespaces", "name": params["ns"],
            "sub": params["plural"]}


def _delete_options(req):
    """Read DeleteOptions from the body or, without one, the query."""
    body = bodies.read_object(req) if bodies.has_body(req) else None
    # Parsed first: it refuses (400) a body whose fields have the wrong types.
    options = deletion.parse(body, {name: req.get_param(name) for name in (
        "gracePeriodSeconds", "propagationPolicy", "orphanDependents", "dryRun")})
    dry_run = (body or {}).get("dryRun") or req.get_param_as_list("dryRun") or []
    writeoptions.check_delete_dry_run(dry_run if isinstance(dry_run, list) else [dry_run])
    return options


def _int_param(req, name, default=0):
    """Read a non-negative integer query parameter that fits in an int64 (400 if not)."""
    value = req.get_param(name)
    if value in (None, ""):
        return default
    if len(value) > 20:
        raise errors.BadRequest(f"query parameter {name} is too long to be an integer")
    try:
        number = int(value)
    except ValueError:
        raise errors.BadRequest(f"query parameter {name}={value!r} must be an integer") from None
    if number < 0:
        raise errors.BadRequest(f"query parameter {name} must not be negative")
    if number > MAX_INT64:
        raise errors.BadRequest(f"query parameter {name}={value} is out of range: at most "
                                f"{MAX_INT64}")
    return number


def _selectors(req):
    """Return the request's labelSelector and fieldSelector as the service's keywords."""
    return {"label_selector": req.get_param("labelSelector"),
            "field_selector": req.get_param("fieldSelector")}


def _write_warned(req, resp, write, status=None, verb="Update"):
    """Run ``write`` (a create, update or patch) and send its result and warnings.

    The request's fieldValidation and write options (dryRun, fieldManager, force:
    writeoptions.py) go to the write; each warning is sent as kube-apiserver
    does: ``Warning: 299 - "text"``.
    """
    warnings = []
    options = writeoptions.from_request(req, verb,
                                        verb == "Patch" and _media_type(req) == APPLY_PATCH)
    result = write(field_validation=req.get_param("fieldValidation"), warnings=warnings,
                   options=options)
    for text in warnings[:MAX_WARNINGS]:
        resp.append_header("Warning", warning_header(text))
    if len(warnings) > MAX_WARNINGS:
        resp.append_header("Warning", warning_header(
            f"{len(warnings) - MAX_WARNINGS} more warnings not shown"))
    bodies.write_json(resp, result, status)


def warning_header(text):
    """Return ``299 - "text"`` with the text escaped to printable ASCII (a valid header).

    A field name may hold a quote, a line break or any Unicode: a header with those
    is refused by the server after the write has happened.
    """
    if len(text) > MAX_WARNING_CHARS:
        text = text[:MAX_WARNING_CHARS] + "..."
    escaped = []
    for char in text:
        if char in '"\\':
            escaped.append("\\" + char)
        elif " " <= char <= "~":
            escaped.append(char)
        else:
            escaped.append(char.encode("unicode_escape").decode("ascii"))
    return '299 - "' + "".join(escaped) + '"'


def _media_type(req):
    return bodies.media_type(req)


def not_allowed(message, allowed):
    """Return a 405 whose response carries ``Allow: <allowed methods>``."""
    exc = errors.MethodNotAllowed(message)
    exc.allowed = tuple(allowed)
    return exc


def _table_version(req):
    """Return the Table version the Accept header asks for, or None for plain JSON."""
    return table.wants_table(req.get_header("Accept"))


def _write_printed(req, resp, resource, body, items, metadata):
    """Write ``body``, or a Table of ``items`` when the Accept header asks for one."""
    version = _table_version(req)
    if version is None:
        return bodies.write_json(resp, body)
    include = table.include_mode(req.get_param("includeObject"))
    bodies.write_json(resp, table.to_table(resource, items, metadata, include, version=version))
    resp.content_type = table.content_type(version)


def _watch_transform(req, resource):
    """Return the watch event transform for a Table Accept header, or None."""
    version = _table_version(req)
    if version is None:
        return _in_version(resource) if resource.custom is not None else None
    return table.watch_transform(resource, table.include_mode(req.get_param("includeObject")),
                                 version)


def _in_version(resource):
    """Show a custom object's watch events in the version asked for (they are stored in
    their CRD's storage version; conversion None rewrites only the apiVersion)."""
    def transform(event_type, obj):
        if "apiVersion" in obj:
            obj["apiVersion"] = resource.api_version
        return obj
    return transform


def list_body(resource, items, revision, token):
    metadata = {"resourceVersion": str(revision)}
    if token:
        metadata["continue"] = token
    return {"kind": resource.list_kind, "apiVersion": resource.api_version,
            "metadata": metadata, "items": items}


class CollectionResource:
    """GET (list or watch), POST (create) and DELETE (deletecollection)."""

    def __init__(self, service, watches, subresources=None):
        self.service = service
        self.watches = watches
        self.subresources = subresources

    def _forward(self, method, req, resp, params):
        """Serve a namespace subresource that falcon routed here; False if not one."""
        sub_params = namespace_subresource(params)
        if sub_params is None or self.subresources is None:
            return False
        getattr(self.subresources, method)(req, resp, **sub_params)
        return True

    def on_put(self, req, resp, **params):
        if not self._forward("on_put", req, resp, params):
            raise not_allowed("PUT is not allowed on a collection", COLLECTION_METHODS)

    def on_patch(self, req, resp, **params):
        if not self._forward("on_patch", req, resp, params):
            raise not_allowed("PATCH is not allowed on a collection", COLLECTION_METHODS)

    def on_get(self, req, resp, **params):
        if self._forward("on_get", req, resp, params):
            return
        resource, namespace = resolve(params)
        selectors = _selectors(req)
        if req.get_param_as_bool("watch"):
            matches = self.service.selector(resource, **selectors)
            since = _int_param(req, "resourceVersion")
            transform = _watch_transform(req, resource)
            timeout = _int_param(req, "timeoutSeconds")
            # Opened before the response starts: a refusal is then its status (504).
            opened = watch.open_watch(self.watches, resource, namespace, since)
            encode, resp.content_type = negotiation.watch_encoding(
                req, resource.api_version, resource.kind, transform is not None)
            resp.stream = watch.stream(self.watches, resource, namespace, since, timeout,
                                       req.get_param_as_bool("allowWatchBookmarks"), matches,
                                       transform=transform, opened=opened, encode=encode)
            return
        items, revision, token = self.service.list(
            resource, namespace, **selectors, limit=_int_param(req, "limit"),
            continue_token=req.get_param("continue"))
        body = list_body(resource, items, revision, token)
        _write_printed(req, resp, resource, body, body["items"], body["metadata"])

    def on_post(self, req, resp, **params):
        if "group" not in params and params["plural"] == "bindings" and params.get("ns"):
            # The older form of pods/binding, still used by some schedulers.
            status = subresources.bind(self.service, params["ns"], None,
                                       bodies.read_object(req))
            return bodies.write_json(resp, status, falcon.HTTP_201)
        resource, namespace = resolve(params)
        _write_warned(req, resp, functools.partial(self.service.create, resource, namespace,
                                                   bodies.read_object(req)), falcon.HTTP_201,
                      verb="Create")

    def on_delete(self, req, resp, **params):
        resource, namespace = resolve(params)
        deleted, revision = self.service.delete_collection(resource, namespace,
                                                           _delete_options(req), **_selectors(req))
        bodies.write_json(resp, list_body(resource, deleted, revision, None))


class ItemResource:
    """GET, PUT and DELETE of one object."""

    def __init__(self, service):
        self.service = service

    def on_get(self, req, resp, **params):
        resource, namespace = resolve(params)
        obj = self.service.get(resource, namespace, params["name"])
        metadata = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
        _write_printed(req, resp, resource, obj, [obj], metadata)

    def on_put(self, req, resp, **params):
        resource, namespace = resolve(params)
        _write_warned(req, resp, functools.partial(self.service.update, resource, namespace,
                                                   params["name"], bodies.read_object(req)))

    def on_patch(self, req, resp, **params):
        resource, namespace = resolve(params)
        if _media_type(req) == APPLY_PATCH:
            # Server-side apply answers 201 when it created the object.
            created = []
            _write_warned(req, resp, functools.partial(
                self.service.apply, resource, namespace, params["name"], bodies.read_value(req),
                created=created), verb="Patch")
            if created:
                resp.status = falcon.HTTP_201
            return
        _write_warned(req, resp, functools.partial(self.service.patch, resource, namespace,
                                                   params["name"], _media_type(req),
                                                   bodies.read_value(req)), verb="Patch")

    def on_delete(self, req, resp, **params):
        resource, namespace = resolve(params)
        deleted, gone = self.service.remove(resource, namespace, params["name"],
                                            _delete_options(req))
        # 202 while the object waits for its finalizers or its grace period.
        bodies.write_json(resp, deleted, None if gone else falcon.HTTP_202)


class SubresourceResource:
    """Subresources: status and scale (GET, PUT, PATCH), namespaces/finalize (PUT),
    pods/binding (POST), pods/log (GET, streamed from the node agent) and pods/exec,
    attach and portforward (GET or POST upgrades proxied to it: control/api/streaming.py)."""

    #: The methods each served subresource answers.
    SERVED = {"status": ("GET", "PUT", "PATCH"), "scale": ("GET", "PUT", "PATCH"),
              "finalize": ("PUT",), "binding": ("POST",), "log": ("GET",),
              "eviction": ("POST",),                  # pods (control/api/eviction.py)
              "approval": ("GET", "PUT", "PATCH"),     # certificatesigningrequests
              **{sub: ("GET", "POST") for sub in streaming.SUBRESOURCES}}

    def __init__(self, service, logs=None, streams=None):
        self.service = service
        self.logs = logs or subresources.PodLogs(service)
        self.streams = streams or streaming.PodStreams(service)
        self.evictions = Evictions(service)

    def _check(self, req, params):
        resource, namespace = resolve(params)
        sub = params["sub"]
        if sub not in resource.subresources:
            raise errors.NotFound(f"{resource.plural} have no {sub} subresource")
        if sub not in self.SERVED:
            raise errors.NotFound(f"the {sub} subresource is not served yet")
        if req.method not in self.SERVED[sub]:
            raise not_allowed(f"{req.method} is not supported on {resource.plural}/{sub}",
                              self.SERVED[sub])
        return resource, namespace, sub

    def on_get(self, req, resp, **params):
        resource, namespace, sub = self._check(req, params)
        if sub in streaming.SUBRESOURCES:
            return self.streams.serve(req, resp, sub, namespace, params["name"])
        if sub == "scale":
            return bodies.write_json(resp, self.service.get_scale(resource, namespace,
                                                                  params["name"]))
        if sub == "log":
            resp.content_type = "text/plain"
            resp.stream = self.logs.open(namespace, params["name"], req.params)
            return
        bodies.write_json(resp, self.service.get(resource, namespace, params["name"]))

    def on_post(self, req, resp, **params):
        _, namespace, sub = self._check(req, params)
        if sub in streaming.SUBRESOURCES:
            return self.streams.serve(req, resp, sub, namespace, params["name"])
        if sub == "eviction":
            status = self.evictions.evict(namespace, params["name"], bodies.read_object(req),
                                          req.get_param_as_list("dryRun") or [])
            return bodies.write_json(resp, status, falcon.HTTP_201)
        status = subresources.bind(self.service, namespace, params["name"],
                                   bodies.read_object(req))
        bodies.write_json(resp, status, falcon.HTTP_201)

    def on_put(self, req, resp, **params):
        resource, namespace, sub = self._check(req, params)
        if sub == "scale":
            return bodies.write_json(resp, self.service.update_scale(
                resource, namespace, params["name"], bodies.read_object(req),
                writeoptions.from_request(req, "Update")))
        _write_warned(req, resp, functools.partial(self.service.update, resource, namespace,
                                                   params["name"], bodies.read_object(req),
                                                   subresource=sub))

    def on_patch(self, req, resp, **params):
        resource, namespace, sub = self._check(req, params)
        if sub == "scale":
            return bodies.write_json(resp, self.service.patch_scale(
                resource, namespace, params["name"], _media_type(req), bodies.read_value(req),
                writeoptions.from_request(req, "Patch")))
        _write_warned(req, resp, functools.partial(self.service.patch, resource, namespace,
                                                   params["name"], _media_type(req),
                                                   bodies.read_value(req), subresource=sub),
                      verb="Patch")
