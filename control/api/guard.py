"""Refuse what only a web page would send: foreign Origins, rebound Hosts, form bodies.

Any web page a user opens can make the browser send requests to a server on the
user's machine (``steer up`` listens on 127.0.0.1). Browsers mark them: a
cross-site request carries ``Origin``, and a "simple" one (no preflight) may only
have a ``text/plain`` or form body. DNS rebinding points the page's own name at
127.0.0.1, so the request is same-origin but its ``Host`` is the page's name.
Kubernetes clients send none of these: no Origin, JSON/YAML/patch bodies, and a
Host that is an address or a name the server was told about.
"""

import ipaddress
import re

from control import errors
from control.api import bodies

#: The media types a body may have (none: JSON, as kube-apiserver assumes).
BODY_TYPES = frozenset((
    "", "application/json", "application/yaml", "application/x-yaml", "text/yaml",
    "application/merge-patch+json", "application/json-patch+json",
    "application/strategic-merge-patch+json", "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf"))
WRITES = frozenset(("POST", "PUT", "PATCH", "DELETE"))
#: Names always accepted in Host: they cannot be rebound by a web page's DNS.
LOCAL_NAMES = frozenset(("localhost",))


class RequestGuard:
    """Falcon middleware: 403 for a foreign Origin or Host, 415 for a non-API body type.

    ``allowed_origins`` are regular expressions an Origin must match (as
    kube-apiserver's --cors-allowed-origins); ``allowed_hosts`` are host names
    accepted in Host besides IP addresses and localhost (None: Host is not checked).
    """

    def __init__(self, allowed_origins=(), allowed_hosts=None):
        self.origins = [re.compile(pattern) for pattern in allowed_origins]
        self.hosts = None if allowed_hosts is None else \
            frozenset(h.lower().rstrip(".") for h in allowed_hosts) | LOCAL_NAMES

    def process_request(self, req, resp):
        origin = req.get_header("Origin")
        if origin is not None and not any(p.search(origin) for p in self.origins) \
                and not _is_self(origin, req.get_header("Host") or ""):
            raise errors.Forbidden(
                f"requests from web pages are refused (Origin: {_printable(origin)}); "
                "allow the origin with --cors-allowed-origins if it must reach the API")
        if self.hosts is not None:
            host = host_name(req.get_header("Host") or "")
            if host and not _is_address(host) and host not in self.hosts:
                raise errors.Forbidden(
                    f"the Host {_printable(host)!r} is not a name this server answers to; "
                    "use its address, or add the name with --allowed-hosts")
        # Only a body has a type (wsgiref reports text/plain for a DELETE without one).
        if req.method in WRITES and req.content_type is not None and bodies.has_body(req):
            media = req.content_type.split(";")[0].strip().lower()
            if media not in BODY_TYPES:
                raise errors.UnsupportedMediaType(
                    f"the body's content type {_printable(media)!r} is not accepted: send "
                    "application/json, application/yaml or a patch type")


def host_name(header):
    """Return the lower-case host of a Host header, without port or IPv6 brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    host = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return host.rstrip(".")


def _is_self(origin, host_header):
    """Whether Origin names this server by address: no web page can be that origin.

    websocket-client (the official Python client's exec ``stream()``) sends the URL it
    dials as Origin. A name could be rebound by a page's DNS; an address cannot.
    """
    scheme, sep, rest = origin.strip().lower().partition("://")
    host = host_name(host_header)
    return (bool(sep) and scheme in ("http", "https") and rest == host_header.strip().lower()
            and (_is_address(host) or host in LOCAL_NAMES))


def _is_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _printable(text, limit=100):
    return text[:limit].encode("ascii", "backslashreplace").decode("ascii")
