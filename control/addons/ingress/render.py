"""Render nginx.conf from Ingresses, Services, EndpointSlices and Secrets (no I/O).

How each Ingress path becomes nginx locations, so that nginx's own matching (an
exact ``=`` location first, else the longest prefix) gives Kubernetes' answer:

    Exact  /foo            location = /foo
    Prefix /foo (or /foo/) location = /foo  and  location /foo/   -- element-wise:
                           /foo, /foo/ and /foo/bar match; /foobar does not
    Prefix /               location /
    ImplementationSpecific location /foo    -- a plain string prefix, as ingress-nginx

A location two paths both want goes to the Exact one, else to the oldest
Ingress (ingress-nginx's rule). Each host gets a server block with its rules;
rules without a host, and requests for no known host, go to the default server.
A request no path matches goes to the Ingress's ``spec.defaultBackend``, else 404;
a backend with no ready endpoint answers 503. A host named in a ``tls`` entry
whose Secret (type kubernetes.io/tls) holds a certificate and key also listens
on 443 with it; the default server refuses TLS handshakes for unknown names.
Anything that cannot be rendered safely (a path with characters nginx would read
as syntax, a Secret without a key pair) is left out and reported in ``problems``.
"""

import base64
import hashlib
import re
from dataclasses import dataclass, field

from control.addons.ingress.backends import index_slices, upstream_for

TLS_SECRET_TYPE = "kubernetes.io/tls"
#: Path characters written into a quoted location; others are refused, never escaped.
SAFE_PATH = re.compile(r"^/[A-Za-z0-9/\-._~%!$&'()*+,;=:@]*$")
SAFE_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_TYPE_RANK = {"Exact": 0, "Prefix": 1, "ImplementationSpecific": 2}


@dataclass(frozen=True)
class Settings:
    """Where nginx listens and keeps its files (the defaults are the DaemonSet's)."""

    run_dir: str = "/run/ingress"
    tls_dir: str = "/run/ingress/tls"
    http_port: int = 80
    https_port: int = 443
    status_port: int = 10254
    listen_address: str = ""           # "" listens on every address
    mime_types: str = ""               # a mime.types file to include, "" for none
    worker_processes: int = 2


@dataclass
class Rendered:
    """nginx.conf's text, the TLS files it names ({file name: bytes}), what was left out."""

    text: str
    files: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)   # [(ingress, reason, message)]


@dataclass(frozen=True)
class _Route:
    rank: tuple            # (path type rank, ingress order, rule, path index): lower wins
    modifier: str          # "=" or ""
    path: str
    upstream: object       # backends.Upstream


def ingress_order(ingress):
    meta = ingress.get("metadata") or {}
    return (meta.get("creationTimestamp") or "", meta.get("namespace") or "", meta.get("name"))


def locations_for(path_type, path):
    """The (modifier, path) nginx locations one Ingress path becomes (see the table above)."""
    if path_type == "Exact":
        return [("=", path)]
    if path_type == "Prefix":
        trimmed = path.rstrip("/")
        return [("", "/")] if not trimmed else [("=", trimmed), ("", trimmed + "/")]
    return [("", path or "/")]


def _tls_pem(secret):
    """The certificate and key of a kubernetes.io/tls Secret as one PEM file, or a problem."""
    if secret is None:
        return None, "does not exist"
    if secret.get("type") != TLS_SECRET_TYPE:
        return None, f"is of type {secret.get('type')!r}, not {TLS_SECRET_TYPE}"
    data = secret.get("data") or {}
    try:
        cert = base64.b64decode(data.get("tls.crt") or "", validate=True)
        key = base64.b64decode(data.get("tls.key") or "", validate=True)
    except ValueError:
        return None, "holds data that is not base64"
    if b"-----BEGIN CERTIFICATE-----" not in cert or b"PRIVATE KEY-----" not in key:
        return None, "does not hold a PEM certificate (tls.crt) and private key (tls.key)"
    return cert.rstrip(b"\n") + b"\n" + key.rstrip(b"\n") + b"\n", None


def _server_name(host):
    if host.startswith("*."):
        # Kubernetes' wildcard matches exactly one label; nginx's "*.x" any number.
        return '"~^[^.]+' + re.escape(host[1:]).replace("\\-", "-") + '$"'
    return host


class _Builder:
    def __init__(self, services, slices, secrets):
        self.services = {_key(s): s for s in services}
        self.slices = index_slices(slices)
        self.secrets = {_key(s): s for s in secrets}
        self.routes = {}          # host -> [_Route]
        self.fallback = {}        # host -> Upstream (the first Ingress's defaultBackend)
        self.certificates = {}    # host -> TLS file name
        self.files, self.problems, self.upstreams = {}, [], {}

    def upstream(self, namespace, backend):
        service = backend.get("service")
        if service is None:       # a resource backend: nothing nginx can proxy to
            return None
        found = upstream_for(namespace, service, self.services, self.slices)
        self.upstreams[found.name] = found
        return found

    def add(self, order, ingress):
        meta, spec = ingress.get("metadata") or {}, ingress.get("spec") or {}
        namespace, ref = meta.get("namespace") or "default", f"{meta.get('namespace')}/" \
            f"{meta.get('name')}"
        hosts = set()
        for r, rule in enumerate(spec.get("rules") or []):
            host = rule.get("host") or ""
            if host and not SAFE_HOST.match(host):
                self.problems.append((ref, "InvalidHost", f"host {host!r} left out"))
                continue
            hosts.add(host)
            self.routes.setdefault(host, [])
            for p, entry in enumerate((rule.get("http") or {}).get("paths") or []):
                path, path_type = entry.get("path") or "", entry.get("pathType") or ""
                if path and not SAFE_PATH.match(path):
                    self.problems.append((ref, "InvalidPath", f"path {path!r} of host "
                                          f"{host or '*'} left out: characters nginx cannot "
                                          "take in a location"))
                    continue
                upstream = self.upstream(namespace, entry.get("backend") or {})
                for modifier, location in locations_for(path_type, path):
                    self.routes[host].append(_Route(
                        (_TYPE_RANK.get(path_type, 3), order, r, p), modifier, location,
                        upstream))
        default = spec.get("defaultBackend")
        if default is not None:
            upstream = self.upstream(namespace, default)
            for host in hosts | {""}:
                self.fallback.setdefault(host, upstream)
        self.add_tls(namespace, ref, spec.get("tls") or [], hosts)

    def add_tls(self, namespace, ref, entries, rule_hosts):
        for entry in entries:
            name = entry.get("secretName") or ""
            if not name:
                continue
            pem, problem = _tls_pem(self.secrets.get((namespace, name)))
            if problem:
                self.problems.append((ref, "InvalidSecret",
                                      f"TLS Secret {namespace}/{name} {problem}"))
                continue
            # Named by content: a new key pair is a new file, so the running
            # configuration's file never changes under it.
            digest = hashlib.sha256(pem).hexdigest()[:12]
            file_name = re.sub(r"[^A-Za-z0-9.-]", "_", f"{namespace}-{name}") + f"-{digest}.pem"
            self.files[file_name] = pem
            for host in entry.get("hosts") or sorted(rule_hosts - {""}):
                if SAFE_HOST.match(host):
                    self.certificates.setdefault(host, file_name)
                    self.routes.setdefault(host, [])


def _key(obj):
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _location(modifier, path, upstream, indent="        "):
    head = f'location {modifier + " " if modifier else ""}"{path}"'
    if upstream is None:
        body = "return 404;"
    elif not upstream.servers:
        body = "return 503;"
    else:
        body = f"proxy_pass http://{upstream.name};"
    return f"{indent}{head} {{\n{indent}    {body}\n{indent}}}\n"


def _server(host, routes, fallback, certificate, settings):
    listen = f"{settings.listen_address}:" if settings.listen_address else ""
    default = " default_server" if host == "" else ""
    lines = [f"    server {{\n        listen {listen}{settings.http_port}{default};\n"]
    if certificate or host == "":
        lines.append(f"        listen {listen}{settings.https_port} ssl{default};\n")
    lines.append(f"        server_name {_server_name(host) if host else '_'};\n")
    if certificate:
        path = f"{settings.tls_dir}/{certificate}"
        lines.append(f"        ssl_certificate {path};\n        ssl_certificate_key {path};\n")
    elif host == "":
        lines.append("        ssl_reject_handshake on;\n")
    chosen = {}
    for route in sorted(routes, key=lambda r: r.rank):
        chosen.setdefault((route.modifier, route.path), route)
    for (modifier, path), route in sorted(chosen.items(),
                                          key=lambda kv: (-len(kv[0][1]), kv[0][0] != "=",
                                                          kv[0][1])):
        lines.append(_location(modifier, path, route.upstream))
    if ("", "/") not in chosen:
        lines.append(_location("", "/", fallback))
    lines.append("    }\n")
    return "".join(lines)


def _upstream_block(upstream):
    servers = "".join(f"        server {s} max_fails=0;\n" for s in upstream.servers)
    return f"    upstream {upstream.name} {{\n{servers}        keepalive 64;\n    }}\n"


def _head(settings):
    run = settings.run_dir
    mime = f"    include {settings.mime_types};\n" if settings.mime_types else ""
    temp = "".join(f"    {kind}_temp_path {run}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"worker_processes {settings.worker_processes};\npid {run}/nginx.pid;\n"
            "error_log stderr notice;\n"
            "events {\n    worker_connections 4096;\n}\n"
            "http {\n" + mime + "    default_type application/octet-stream;\n" + temp +
            "    access_log off;\n    server_tokens off;\n    tcp_nodelay on;\n"
            "    keepalive_requests 10000;\n    server_names_hash_bucket_size 128;\n"
            "    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n"
            "    proxy_set_header Host $host;\n    proxy_set_header X-Real-IP $remote_addr;\n"
            "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
            "    proxy_set_header X-Forwarded-Proto $scheme;\n"
            "    proxy_set_header X-Forwarded-Host $host;\n"
            "    proxy_connect_timeout 5s;\n    proxy_next_upstream error timeout;\n"
            "    proxy_next_upstream_tries 3;\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache shared:SSL:10m;\n")


def render(ingresses, services, slices, secrets, settings=Settings(), ready=True):
    """Return the Rendered nginx configuration of ``ingresses`` (those of this class).

    The status server answers /healthz (nginx runs) and /readyz: 200 when ``ready``
    (the caches have synced), else 503 (the configuration before the first sync).
    """
    builder = _Builder(services, slices, secrets)
    for order, ingress in enumerate(sorted(ingresses, key=ingress_order)):
        builder.add(order, ingress)
    builder.routes.setdefault("", [])
    parts = [_head(settings)]
    for name in sorted(builder.upstreams):
        if builder.upstreams[name].servers:
            parts.append(_upstream_block(builder.upstreams[name]))
    listen = f"{settings.listen_address}:" if settings.listen_address else ""
    parts.append(f"    server {{\n        listen {listen}{settings.status_port};\n"
                 "        location = /healthz {\n            return 200 \"ok\\n\";\n"
                 "        }\n        location = /readyz {\n"
                 f"            return {200 if ready else 503} \"{'ok' if ready else 'syncing'}\\n\";\n"
                 "        }\n        location / {\n            return 404;\n        }\n    }\n")
    for host in sorted(builder.routes):
        parts.append(_server(host, builder.routes[host], builder.fallback.get(host),
                             builder.certificates.get(host), settings))
    parts.append("}\n")
    return Rendered("".join(parts), builder.files, builder.problems)
