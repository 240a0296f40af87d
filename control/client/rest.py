"""Call the Kubernetes REST API: verbs on resources, typed errors, retries, watches.

``RestClient`` speaks to any server with kube-apiserver's URL layout
(/api/v1/..., /apis/{group}/{version}/...). Only the standard library is used:
one keep-alive ``http.client`` connection per thread, and a dedicated one per watch.

Retries follow client-go: a 429 means the server did not act on the request, so
it is retried for every verb, waiting as long as ``Retry-After`` says; a 5xx or a
connection lost after the request went out is retried only for idempotent verbs
(GET, LIST, DELETE, PUT carrying a resourceVersion), because a POST or PATCH may
already have taken effect. A connection that could not even be opened is safe to
retry for any verb.
"""

import http.client
import json
import logging
import os
import random
import select
import ssl
import threading
import time
import urllib.parse

from control.client import errors
from control.client.kubeconfig import client_ssl_context
from control.client.watch import Watch
from control.objects import kinds

log = logging.getLogger(__name__)

PATCH_TYPES = {"merge": "application/merge-patch+json",
               "json": "application/json-patch+json",
               "strategic": "application/strategic-merge-patch+json"}
USER_AGENT = "steersman-client/0.1"
#: Longest wait a server may ask for with Retry-After before we cap it.
MAX_RETRY_AFTER = 60.0


def resource_for(obj):
    """Return the Resource for an object's apiVersion and kind (ValueError if unknown)."""
    resource = kinds.by_api_version_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
    if resource is None:
        raise ValueError(f"no served resource for {obj.get('apiVersion')}/{obj.get('kind')}")
    return resource


def object_key(obj):
    """Return the cache key of an object: ``namespace/name``, or ``name`` if cluster-scoped."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


class _NotSent(Exception):
    """The connection failed before any byte of the request left: safe to retry."""


class RestClient:
    """A client for one API server; safe to share between threads.

    Over https the server is verified against ``ca_file`` (else the system's trust
    store) and, with ``cert_file``/``key_file``, the client presents its certificate;
    ``ssl_context`` replaces all three.
    """

    def __init__(self, base_url, token=None, timeout=30.0, retries=5, backoff_base=0.2,
                 backoff_max=5.0, ssl_context=None, sleep=time.sleep, rng=None,
                 ca_file=None, cert_file=None, key_file=None):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], not {base_url!r}")
        self.scheme, self.host = parsed.scheme, parsed.hostname
        self.port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self.prefix = parsed.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        if ssl_context is None and parsed.scheme == "https":
            ssl_context = client_ssl_context(ca_file, cert_file, key_file)
        self.ssl_context = ssl_context
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._local = threading.local()

    @classmethod
    def from_config(cls, config, **kwargs):
        """Build a client from a ``kubeconfig.ClientConfig`` (more keywords pass through).

        Its client certificate files are watched: renewed ones (`steer up` re-issues
        before expiry) are presented by the next new connection.
        """
        client = cls(config.server, token=config.token, ssl_context=config.ssl_context(),
                     **kwargs)
        if client.ssl_context is not None and config.cert_file and config.key_file:
            client.reload_certificates_from(config.cert_file, config.key_file)
        return client

    def reload_certificates_from(self, cert_file, key_file, interval=1.0):
        """Re-read ``cert_file``/``key_file`` into the TLS context when they change."""
        self._cert_files = (cert_file, key_file)
        self._cert_check_interval = interval
        self._cert_stamp, self._cert_checked = _file_stamp(self._cert_files), time.monotonic()

    def _refresh_client_certificate(self):
        files = getattr(self, "_cert_files", None)
        now = time.monotonic()
        if files is None or now - self._cert_checked < self._cert_check_interval:
            return
        self._cert_checked = now
        stamp = _file_stamp(files)
        if stamp is None or stamp == self._cert_stamp:
            return
        try:
            self.ssl_context.load_cert_chain(*files)
        except (OSError, ssl.SSLError):
            return      # caught mid-write: read again on a later connection
        self._cert_stamp = stamp
        self.certificates_changed()

    def certificates_changed(self):
        """Make every thread reconnect: the server checks a certificate only in the handshake,
        and stops trusting a connection at the old certificate's notAfter."""
        self._cert_generation = getattr(self, "_cert_generation", 0) + 1

    # -- URLs -------------------------------------------------------------------------
    def path(self, resource, namespace=None, name=None, subresource=None):
        """Return the URL path of a collection, an object, or an object's subresource."""
        if not isinstance(resource, kinds.Resource):
            raise TypeError(f"resource must be a control.objects.kinds.Resource, not {resource!r}")
        if namespace and not resource.namespaced:
            raise ValueError(f"{resource.qualified} are cluster-scoped: pass no namespace")
        if name is not None and resource.namespaced and not namespace:
            raise ValueError(f"{resource.qualified} are namespaced: pass a namespace")
        parts = [self.prefix, "/api/v1" if not resource.group
                 else f"/apis/{resource.group}/{resource.version}"]
        if namespace:
            parts.append(f"/namespaces/{_quote(namespace)}")
        parts.append(f"/{resource.plural}")
        if name is not None:
            parts.append(f"/{_quote(name)}")
            if subresource:
                parts.append(f"/{subresource}")
        return "".join(parts)

    # -- verbs --------------------------------------------------------------------------
    def get(self, resource, namespace, name):
        return self.request("GET", self.path(resource, namespace, name))

    def list(self, resource, namespace=None, label_selector=None, field_selector=None,
             limit=0, continue_=None, resource_version=None):
        """Return one page of a list: the whole List object (items, metadata.continue)."""
        query = {"labelSelector": label_selector, "fieldSelector": field_selector,
                 "limit": limit or None, "continue": continue_,
                 "resourceVersion": resource_version}
        return self.request("GET", self.path(resource, namespace), query=query)

    def list_all(self, resource, namespace=None, label_selector=None, field_selector=None,
                 page_size=500):
        """Page through a list; return (items, the list's resourceVersion).

        Every page is read at the first page's revision. If the continue token has
        expired (410), start again without paging, as client-go's pager does.
        """
        items, token = [], None
        while True:
            try:
                page = self.list(resource, namespace, label_selector, field_selector,
                                 limit=page_size, continue_=token)
            except errors.Gone:
                if token is None:
                    raise
                page = self.list(resource, namespace, label_selector, field_selector)
                return page.get("items") or [], page["metadata"]["resourceVersion"]
            items.extend(page.get("items") or [])
            token = page["metadata"].get("continue")
            if not token:
                return items, page["metadata"]["resourceVersion"]

    def create(self, resource, namespace, body):
        if resource.namespaced:
            namespace = namespace or body.get("metadata", {}).get("namespace")
            if not namespace:
                raise ValueError(f"{resource.qualified} are namespaced: pass a namespace")
        return self.request("POST", self.path(resource, namespace), body=body)

    def update(self, resource, namespace, body, subresource=None):
        """PUT an object; with metadata.resourceVersion set, a stale copy gets Conflict."""
        name = body["metadata"]["name"]
        return self.request("PUT", self.path(resource, namespace, name, subresource), body=body,
                            idempotent=bool(body["metadata"].get("resourceVersion")))

    def update_status(self, resource, namespace, body):
        return self.update(resource, namespace, body, subresource="status")

    def patch(self, resource, namespace, name, patch, patch_type="merge", subresource=None):
        if patch_type not in PATCH_TYPES:
            raise ValueError(f"patch_type must be one of {', '.join(PATCH_TYPES)}")
        return self.request("PATCH", self.path(resource, namespace, name, subresource),
                            body=patch, content_type=PATCH_TYPES[patch_type])

    def delete(self, resource, namespace, name, grace_period_seconds=None,
               propagation_policy=None, preconditions=None):
        """Delete an object; return what the server answered (the object, or a Status)."""
        options = {k: v for k, v in (("gracePeriodSeconds", grace_period_seconds),
                                     ("propagationPolicy", propagation_policy),
                                     ("preconditions", preconditions)) if v is not None}
        body = {"kind": "DeleteOptions", "apiVersion": "v1", **options} if options else None
        return self.request("DELETE", self.path(resource, namespace, name), body=body)

    def get_scale(self, resource, namespace, name):
        return self.request("GET", self.path(resource, namespace, name, "scale"))

    def update_scale(self, resource, namespace, name, scale):
        return self.request("PUT", self.path(resource, namespace, name, "scale"), body=scale,
                            idempotent=bool(scale.get("metadata", {}).get("resourceVersion")))

    def create_binding(self, namespace, pod_name, node_name):
        """Bind a pod to a node: POST a v1 Binding to pods/{name}/binding."""
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod_name, "namespace": namespace},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        return self.request("POST", self.path(kinds.PODS, namespace, pod_name, "binding"),
                            body=body)

    def watch(self, resource, namespace=None, resource_version=None, timeout_seconds=None,
              label_selector=None, field_selector=None, allow_bookmarks=True):
        """Return a ``Watch``: iterate it for (type, object) events after ``resource_version``.

        The request is sent when iteration starts (or on ``open()``), so the Watch can
        be handed to another thread to ``close()`` before the server has answered.
        HTTP errors (404, a 410 on some servers) raise from there as ApiException.
        The iteration ends when the server closes the stream (after
        ``timeout_seconds``) or ``close()`` is called, and raises ``ConnectionFailed``
        if the stream breaks. An ERROR event (a 410 Status when the version is too
        old) is yielded, not raised: the caller decides what to do.
        """
        query = {"watch": "true", "resourceVersion": resource_version,
                 "timeoutSeconds": timeout_seconds, "labelSelector": label_selector,
                 "fieldSelector": field_selector,
                 "allowWatchBookmarks": "true" if allow_bookmarks else None}
        # Read timeout: the server ends the watch itself; allow it time to do so.
        read_timeout = (timeout_seconds or 3600) + self.timeout
        return Watch(self._new_connection(read_timeout),
                     self._url(self.path(resource, namespace), query), self._headers(None))

    # -- transport ----------------------------------------------------------------------
    def request(self, method, path, query=None, body=None, content_type="application/json",
                idempotent=None):
        """Send a request with retries; return the decoded JSON answer or raise ApiException."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "DELETE")
        url = self._url(path, query)
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        attempt = 0
        while True:
            wait = None
            try:
                status, headers, data = self._send(method, url, payload, content_type)
            except _NotSent as exc:
                failure = errors.ConnectionFailed(f"{method} {url}: {exc.__cause__}")
                wait = self._backoff(attempt)
            except (OSError, http.client.HTTPException) as exc:
                failure = errors.ConnectionFailed(f"{method} {url}: {exc}")
                if idempotent:
                    wait = self._backoff(attempt)
            else:
                if status < 400:
                    if not data:
                        return None
                    # /healthz and friends answer text/plain; everything else is JSON.
                    if "json" not in headers.get("content-type", "application/json"):
                        return data.decode("utf-8", "replace")
                    return json.loads(data)
                failure = errors.from_status(status, data, headers)
                if status == 429 or (status >= 500 and idempotent):
                    wait = _retry_after(headers)
                    if wait is None:
                        wait = self._backoff(attempt)
            if wait is None or attempt >= self.retries:
                raise failure
            log.debug("retrying %s %s in %.2fs after %s", method, url, wait, failure)
            self.sleep(wait)
            attempt += 1

    def _send(self, method, url, payload, content_type):
        conn = self._connection()
        if conn.sock is None:
            try:
                conn.connect()
            except OSError as exc:
                conn.close()
                raise _NotSent() from exc
        try:
            conn.request(method, url, body=payload, headers=self._headers(
                content_type if payload is not None else None))
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            raise
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _connection(self):
        """This thread's keep-alive connection, dropped if the server closed it while idle."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._new_connection(self.timeout)
        elif conn.sock is not None and _peer_closed(conn.sock):
            conn.close()
        if self.scheme == "https":
            self._refresh_client_certificate()
            generation = getattr(self, "_cert_generation", 0)
            if getattr(conn, "steer_cert_generation", 0) != generation:
                conn.close()    # the next request handshakes with the renewed certificate
                conn.steer_cert_generation = generation
        return conn

    def _new_connection(self, timeout):
        if self.scheme == "https":
            self._refresh_client_certificate()
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def close(self):
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()

    def _headers(self, content_type):
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _url(self, path, query):
        query = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        return path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _backoff(self, attempt):
        """Exponential backoff with jitter, so many clients do not retry in step."""
        delay = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return delay * (0.5 + self.rng.random() / 2)


def _file_stamp(paths):
    try:
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, paths))
    except OSError:
        return None


def _quote(segment):
    return urllib.parse.quote(segment, safe="")


def _retry_after(headers):
    value = headers.get("retry-after")
    try:
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None     # an HTTP-date: fall back to our own backoff


def _peer_closed(sock):
    """True if an idle keep-alive socket is readable: the server closed (or broke) it.

    Over TLS a readable socket may only hold protocol records (TLS 1.3 session
    tickets arrive after the handshake): a non-blocking read tells those, which
    leave the connection usable, from the end of the stream.
    """
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable or not isinstance(sock, ssl.SSLSocket):
        return bool(readable)
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1)        # b"" at the end; any byte on an idle connection is wrong too
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)
    return True


