"""Read what a request asks for from its URL, as kube-apiserver's RequestInfoFactory does.

Resource requests (/api/v1/..., /apis/{group}/{version}/...) get a verb (get, list,
watch, create, update, patch, delete, deletecollection), an API group, resource,
subresource, namespace and name; every other path is a non-resource request
whose verb is the lower-cased HTTP method.
"""

from dataclasses import dataclass

_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


@dataclass(frozen=True)
class RequestInfo:
    """The attributes an authorizer decides on."""

    verb: str
    path: str
    resource_request: bool = False
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    field_selector: str = ""

    @property
    def resource_and_sub(self):
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _truthy(value):
    return value not in (None, "", "0", "false", "False")


def _param(params, name):
    """Return a query parameter as one string (the last, when it is repeated)."""
    value = params.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    return value


def request_info(method, path, params):
    """Return the RequestInfo of ``method path?params`` (``params``: falcon's req.params)."""
    parts = [p for p in path.strip("/").split("/") if p]
    nonresource = RequestInfo(verb=method.lower(), path=path)
    if not parts or parts[0] not in ("api", "apis"):
        return nonresource
    if parts[0] == "api":
        group, rest = "", parts[1:]
    else:
        if len(parts) < 3:
            return nonresource
        group, rest = parts[1], parts[2:]
    if not rest:
        return nonresource
    version, rest = rest[0], rest[1:]
    if not rest:
        return nonresource      # discovery of one group/version
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        # /namespaces/{name}[/status|/finalize] is the namespace object itself, in
        # its own namespace; anything else after the name is a resource in it.
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    elif rest[0] == "watch":
        # The deprecated /watch/ prefix.
        verb, rest = "watch", rest[1:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb in ("get", "delete"):
        verb = {"get": "list", "delete": "deletecollection"}[verb]
    if verb in ("get", "list") and _truthy(_param(params, "watch")):
        verb = "watch"
    field_selector = _param(params, "fieldSelector") or ""
    if verb in ("list", "watch") and not name:
        # A list or watch of one object by name is a get of that name for authorization.
        name = _name_from_selector(field_selector)
    return RequestInfo(verb=verb, path=path, resource_request=True, api_group=group,
                       api_version=version, namespace=namespace, resource=resource,
                       subresource=subresource, name=name, field_selector=field_selector)


def _name_from_selector(field_selector):
    for term in field_selector.split(","):
        key, sep, value = term.partition("=")
        if key.strip() == "metadata.name" and sep and not value.startswith("="):
            return value.strip()
    return ""
