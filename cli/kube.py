"""One run's connection to the cluster: a REST client, discovery, resource names.

``Session`` is what every verb gets: ``rest`` (a RestClient that can also ask for
server-side Tables and plain-text streams), ``namespace``, and ``resolve(name)``,
which maps what a user types (``po``, ``pods``, ``pod``, ``Pod``,
``deployments.apps``) to a resource using the server's discovery documents, read
once per run as kubectl caches them.
"""

import argparse
import ssl
import sys
import threading

from cli import config
from cli.errors import CommandError
from control.client import errors as api_errors
from control.client.rest import RestClient
from control.client.watch import Watch
from control.objects import kinds

TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


class CliClient(RestClient):
    """A RestClient whose requests may carry another Accept header (Tables, logs)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._accept = threading.local()

    def request(self, method, path, query=None, body=None, content_type="application/json",
                idempotent=None, accept=None):
        self._accept.value = accept
        try:
            return super().request(method, path, query=query, body=body,
                                   content_type=content_type, idempotent=idempotent)
        finally:
            self._accept.value = None

    def _headers(self, content_type):
        headers = super()._headers(content_type)
        accept = getattr(self._accept, "value", None)
        if accept:
            headers["Accept"] = accept
        return headers

    def table(self, resource, namespace=None, name=None, label_selector=None,
              field_selector=None):
        """GET a list (or one object) as a meta.k8s.io Table with the objects included."""
        query = {"labelSelector": label_selector, "fieldSelector": field_selector,
                 "includeObject": "Object"}
        return self.request("GET", self.path(resource, namespace, name), query=query,
                            accept=TABLE_ACCEPT)

    def watch_table(self, resource, namespace=None, resource_version=None,
                    label_selector=None, field_selector=None):
        """A Watch whose event objects are one-row Tables, as `kubectl get -w` reads."""
        query = {"watch": "true", "resourceVersion": resource_version,
                 "labelSelector": label_selector, "fieldSelector": field_selector,
                 "includeObject": "Object"}
        headers = super()._headers(None)
        headers["Accept"] = TABLE_ACCEPT
        return Watch(self._new_connection(3600 + self.timeout),
                     self._url(self.path(resource, namespace), query), headers)

    def stream(self, path, query=None):
        """Open a GET whose answer is read as it comes (logs -f); return the response."""
        conn = self._new_connection(None)
        headers = super()._headers(None)
        headers["Accept"] = "*/*"
        try:
            conn.request("GET", self._url(path, query), headers=headers)
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise api_errors.ConnectionFailed(f"GET {path}: {exc}") from exc
        if response.status >= 400:
            data = response.read()
            conn.close()
            raise api_errors.from_status(response.status, data)
        return response


def resource_from_discovery(group, version, entry):
    """Build a kinds.Resource from one APIResourceList entry."""
    return kinds.Resource(group, version, entry["kind"], entry["name"],
                          bool(entry.get("namespaced")), tuple(entry.get("shortNames") or ()),
                          (), tuple(entry.get("categories") or ()))


class Discovery:
    """The server's resources, in discovery order; fetched lazily, once."""

    def __init__(self, rest):
        self.rest = rest
        self._resources = None
        self.verbs = {}         # Resource -> list of verbs

    def resources(self):
        if self._resources is None:
            found = []
            for group, version in self._group_versions():
                path = "/api/v1" if not group else f"/apis/{group}/{version}"
                listing = self.rest.request("GET", path)
                for entry in listing.get("resources") or []:
                    if "/" in entry["name"]:
                        continue
                    resource = resource_from_discovery(group, version, entry)
                    self.verbs[resource] = entry.get("verbs") or []
                    found.append(resource)
            self._resources = found
        return self._resources

    def _group_versions(self):
        versions = [("", v) for v in (self.rest.request("GET", "/api").get("versions") or [])]
        for group in self.rest.request("GET", "/apis").get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("version")
            if not preferred and group.get("versions"):
                preferred = group["versions"][0]["version"]
            versions.append((group["name"], preferred))
        return versions

    def resolve(self, text):
        """Map a user's resource name to a Resource; CommandError if the server has none."""
        wanted = text.lower()
        name, _, rest = wanted.partition(".")
        group, version = None, None
        if rest:
            head, _, tail = rest.partition(".")
            if tail and head.startswith("v") and head[1:2].isdigit():
                version, group = head, tail
            else:
                group = rest
        for resource in self.resources():
            if group is not None and resource.group != group:
                continue
            if version is not None and resource.version != version:
                continue
            if name in (resource.plural, resource.singular) or name in resource.short_names:
                return resource
        raise CommandError(f"the server doesn't have a resource type \"{text}\"")

    def by_category(self, category):
        return [r for r in self.resources() if category in r.categories]

    def for_kind(self, api_version, kind):
        """The Resource serving ``kind`` in ``api_version``, or None."""
        group, _, version = api_version.rpartition("/")
        for resource in self.resources():
            if resource.group == group and resource.version == version and resource.kind == kind:
                return resource
        return None


class Session:
    """Everything a verb needs: client, namespace, discovery."""

    def __init__(self, args):
        client_config = config.load_client_config(args)
        self.server = client_config.server
        args.resolved_server = self.server      # for the "cannot reach" message
        try:
            self.rest = CliClient.from_config(client_config, timeout=30.0, retries=2,
                                              backoff_base=0.1, backoff_max=0.5)
        except ssl.SSLError as exc:
            raise CommandError(f"cannot use the TLS files of the kubeconfig: {exc}") from exc
        except OSError as exc:
            raise CommandError(f"cannot read a TLS file of the kubeconfig: {exc}") from exc
        except ValueError as exc:
            raise CommandError(f"invalid server address {self.server!r}: {exc}") from exc
        self.namespace = config.default_namespace(args)
        self.all_namespaces = bool(getattr(args, "all_namespaces", False))
        self.discovery = Discovery(self.rest)

    def resolve(self, text):
        return self.discovery.resolve(text)

    def namespace_for(self, resource, obj=None):
        """The namespace a request for ``resource`` goes to (None if cluster-scoped)."""
        if not resource.namespaced:
            return None
        if obj is not None and (obj.get("metadata") or {}).get("namespace"):
            return obj["metadata"]["namespace"]
        return self.namespace


def parse_targets(words):
    """Split kubectl's TYPE[,TYPE] [NAME...] or TYPE/NAME... arguments.

    Returns a list of (type, name-or-None) pairs, in the order typed.
    """
    if not words:
        print('You must specify the type of resource to get. Use "steer api-resources" for a '
              "complete list of supported resources.\n", file=sys.stderr)
        raise CommandError("Required resource not specified.")
    if all("/" in word for word in words):
        pairs = []
        for word in words:
            kind, _, name = word.partition("/")
            if not kind or not name:
                raise CommandError(f"arguments in resource/name form must have a single "
                                   f"resource and name: {word!r}")
            pairs.append((kind, name))
        return pairs
    if any("/" in word for word in words):
        raise CommandError("there is no need to specify a resource type as a separate argument "
                           "when passing arguments in resource/name form (e.g. 'steer get "
                           "resource/<resource_name>' instead of 'steer get resource "
                           "resource/<resource_name>')")
    types = [t for t in words[0].split(",") if t]
    names = words[1:]
    if names and len(types) > 1:
        return [(t, n) for t in types for n in names]
    if not names:
        return [(t, None) for t in types]
    return [(types[0], n) for n in names]


def display_name(resource, name):
    """``deployment.apps/web`` or ``pod/x``: how kubectl names an object in messages."""
    kind = resource.kind.lower()
    return f"{kind}.{resource.group}/{name}" if resource.group else f"{kind}/{name}"


def add_connection_flags(parser, all_namespaces=False, top_level=False):
    """--server, --token(-file), --kubeconfig, -n (and -A): accepted before or after the verb.

    On verb parsers the defaults are SUPPRESS, so a flag given before the verb is
    not overwritten by the verb parser's default.
    """
    default = None if top_level else argparse.SUPPRESS
    parser.add_argument("--server", "-s", default=default, metavar="URL",
                        help="the API server (default: $STEER_SERVER, ~/.steer/config, kubeconfig)")
    parser.add_argument("--token", default=default,
                        help="bearer token for the API server (visible in /proc: "
                             "prefer --token-file)")
    parser.add_argument("--token-file", default=default, metavar="PATH",
                        help="file holding the bearer token for the API server")
    parser.add_argument("--certificate-authority", default=default, metavar="PATH",
                        help="CA file to verify the API server's certificate with")
    parser.add_argument("--kubeconfig", default=default, metavar="PATH",
                        help="read the server from this kubeconfig instead")
    parser.add_argument("--context", default=default, help="the kubeconfig context to use")
    parser.add_argument("-n", "--namespace", default=default,
                        help="namespace (default: the config's, else \"default\")")
    if all_namespaces:
        parser.add_argument("-A", "--all-namespaces", action="store_true", default=default,
                            help="across all namespaces")
