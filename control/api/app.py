"""Build the API server's falcon app: ``create_app(store_client)``.

Routes mirror kube-apiserver's: the core group under /api/v1, named groups under
/apis/{group}/{version}, each with cluster-wide and per-namespace collections,
items and subresources; discovery and health alongside.
"""

import functools
import logging

import falcon

from control import errors
from control.api import (
    audit,
    bodies,
    discovery,
    encryption,
    guard,
    limits,
    masterservice,
    metrics,
    metrics_api,
    nodeproxy,
    openapi,
    priority,
    streaming,
    subresources,
    systemnamespaces,
    timeouts,
)
from control.api.allocators import DEFAULT_CLUSTER_IP_RANGE, DEFAULT_NODE_PORT_RANGE
from control.api.auth import bootstrap as auth_bootstrap
from control.api.auth import setup as auth_setup
from control.api.crd import sync as crd_sync
from control.api.handlers import CollectionResource, ItemResource, SubresourceResource
from control.api.service import for_store
from control.objects import defaults
from control.ui import app as dashboard

log = logging.getLogger("steer.apiserver")


class Static:
    """Serve a discovery document computed by a function of the URL parameters."""

    def __init__(self, document):
        self.document = document

    def on_get(self, req, resp, **params):
        bodies.write_json(resp, self.document(**params))


class OpenAPIv3:
    """The v3 index, and one document per group/version (immutable: cache it)."""

    def on_get(self, req, resp, group="", version=None):
        if version is None:
            return bodies.write_json(resp, openapi.v3_index())
        if (group, version) not in openapi.group_versions():
            raise errors.NotFound(f"no OpenAPI document for {group or 'core'}/{version}")
        body, digest = openapi.v3_document(group, version)
        resp.content_type = "application/json"
        resp.set_header("Etag", f'"{digest}"')
        resp.cache_control = ["public", "immutable"] if req.get_param("hash") else ["no-cache"]
        resp.data = body


class OpenAPIv2:
    def on_get(self, req, resp):
        if not openapi.v2_acceptable(req.get_header("Accept")):
            raise errors.NotAcceptable(
                "/openapi/v2 is served only as application/json; ask for it, or read "
                "/openapi/v3")
        resp.content_type = "application/json"
        resp.data = openapi.v2_document()


class Health:
    def __init__(self, check=None):
        self.check = check

    def on_get(self, req, resp):
        if self.check is not None:
            self.check()
        resp.content_type = "text/plain"
        resp.text = "ok"


def _api_error(req, resp, exc, params):
    bodies.write_json(resp, exc.status(), falcon.code_to_http_status(exc.code))
    if exc.retry_after is not None:
        resp.set_header("Retry-After", str(exc.retry_after))
    if getattr(exc, "allowed", None):
        resp.set_header("Allow", ", ".join(exc.allowed))


def _internal_error(req, resp, exc, params):
    """Any other exception: log it, answer a 500 Status (never a traceback)."""
    log.exception("event=internal_error method=%s path=%s", req.method, req.path[:200])
    body = errors.ApiError("an internal error occurred; the server log has the "
                           f"details ({type(exc).__name__})").status()
    bodies.write_json(resp, body, falcon.HTTP_500)


def _http_error(req, resp, exc, params):
    """Falcon's own errors (unknown route, bad method) as Status objects too."""
    code = int(exc.status.split()[0]) if isinstance(exc.status, str) else int(exc.status)
    reason = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest"}.get(code, "Unknown")
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": exc.title if code != 404 else "the server could not find the requested resource",
            "reason": reason, "code": code}
    bodies.write_json(resp, body, falcon.code_to_http_status(code))
    for name, value in (exc.headers or {}).items():
        if name.lower() == "allow":     # 405: the methods the resource does answer
            resp.set_header(name, value)


def create_app(store_client, service=None, bootstrap=True,
               max_requests_inflight=limits.DEFAULT_MAX_INFLIGHT,
               max_mutating_requests_inflight=limits.DEFAULT_MAX_MUTATING_INFLIGHT,
               default_not_ready_toleration_seconds=defaults.DEFAULT_TOLERATION_SECONDS,
               default_unreachable_toleration_seconds=defaults.DEFAULT_TOLERATION_SECONDS,
               service_cluster_ip_range=DEFAULT_CLUSTER_IP_RANGE,
               service_node_port_range=DEFAULT_NODE_PORT_RANGE,
               max_watches=limits.DEFAULT_MAX_WATCHES,
               max_long_running=limits.DEFAULT_MAX_LONG_RUNNING,
               body_timeout=bodies.BODY_READ_TIMEOUT, allowed_origins=(), allowed_hosts=None,
               system_namespaces_interval=0,
               encryption_provider_config=None, audit_policy_file=None, audit_log_path=None,
               audit_log_maxsize=100, audit_log_maxbackup=0, kubelet_tls=None,
               auth_options=None, admission_plugins=None, advertise_address=None,
               advertise_port=None, request_timeout=timeouts.DEFAULT_REQUEST_TIMEOUT,
               enable_priority_and_fairness=False):
    """Return the WSGI app serving the Kubernetes API over ``store_client``.

    ``kubelet_tls`` (subresources.kubelet_client_context) reaches the node agents over
    mutual TLS for pods/log (None: pods/log answers 503). The in-flight limits are per worker process, 0 for none. The toleration seconds
    are what pods get for the not-ready and unreachable NoExecute taints
    (kube-apiserver's DefaultTolerationSeconds plugin; used when no ``service``
    is given), and Services get their clusterIPs and nodePorts from the two ranges.
    Watches and long-running streams have limits of their own; a body must arrive
    within ``body_timeout`` seconds; ``allowed_origins`` and ``allowed_hosts`` are
    guard.py's; the system namespaces are re-created every
    ``system_namespaces_interval`` seconds (0: only at start).
    ``encryption_provider_config`` (an EncryptionConfiguration file) encrypts the
    resources it lists at rest; with ``audit_policy_file`` and ``audit_log_path``
    requests are audited (control/api/audit.py). ``auth_options``
    (control/api/auth/setup.py AuthOptions) configures authentication and authorization.
    ``request_timeout`` seconds (0: none) answer a non-long-running request 504
    (timeouts.py); ``enable_priority_and_fairness`` admits reads and writes by
    priority level (priority.py) out of the two in-flight limits' sum.
    """
    if service is None:
        service = for_store(store_client, toleration_seconds={
            "node.kubernetes.io/not-ready": default_not_ready_toleration_seconds,
            "node.kubernetes.io/unreachable": default_unreachable_toleration_seconds},
            cluster_ip_range=service_cluster_ip_range, node_port_range=service_node_port_range,
            encryption=(encryption.load(encryption_provider_config)
                        if encryption_provider_config else None))
    if admission_plugins is not None:
        # --enable-admission-plugins (control/api/admission/); None keeps the defaults.
        service.use_admission(admission_plugins)
    if bootstrap:
        service.bootstrap()
        auth_bootstrap.ensure_policy(service)
        # default/kubernetes -> --advertise-address:--advertise-port (masterservice.py).
        master = functools.partial(masterservice.ensure, service, service_cluster_ip_range,
                                   advertise_address, advertise_port or 443)
        master()
        if system_namespaces_interval:
            systemnamespaces.start(service, system_namespaces_interval, also=(master,))
    levels = (priority.PriorityLevels(max_requests_inflight + max_mutating_requests_inflight,
                                      queue_wait=(request_timeout or 60) / 4)
              if enable_priority_and_fairness else None)
    inflight = limits.InflightLimits(max_requests_inflight, max_mutating_requests_inflight,
                                     max_watches, max_long_running, body_timeout, levels)
    api_metrics = metrics.ApiMetrics(inflight.inflight,
                                     extra=levels.metrics() if levels is not None else ())
    # Metrics first: it also sees (and counts) the 429s the limits raise; the audit
    # before it, to see every request (a 401, a 429) with its final code.
    auth = auth_setup.build(auth_options or auth_setup.AuthOptions(), service)
    auditing = audit.middleware(audit_policy_file, audit_log_path, audit_log_maxsize,
                                audit_log_maxbackup)
    # The request timeout covers authentication, queueing and the handler (timeouts.py).
    timeout = timeouts.RequestTimeout(request_timeout)
    app = falcon.App(media_type="application/json",
                     middleware=auditing + [api_metrics, timeout, auth.protobuf_reviews,
                                               guard.RequestGuard(allowed_origins, allowed_hosts),
                                               auth.middleware,
                                               inflight,
                                               timeout.disarm])
    # As kube-apiserver (go-restful trims a right slash): /version/ is /version and
    # /api/v1/namespaces/ the namespaces' list.
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _internal_error)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(errors.ApiError, _api_error)

    app.add_route("/version", Static(lambda: discovery.VERSION))
    app.add_route("/api", Static(discovery.api_versions))
    app.add_route("/apis", Static(discovery.api_group_list))
    app.add_route("/api/v1", Static(lambda: discovery.resource_list("", "v1")))
    app.add_route("/apis/{group}", Static(discovery.api_group))
    app.add_route("/apis/{group}/{version}", Static(discovery.resource_list))
    app.add_route("/openapi/v3", OpenAPIv3())
    app.add_route("/openapi/v3/api/{version}", OpenAPIv3())
    app.add_route("/openapi/v3/apis/{group}/{version}", OpenAPIv3())
    app.add_route("/openapi/v2", OpenAPIv2())
    for path in ("/healthz", "/livez"):
        app.add_route(path, Health())
    app.add_route("/readyz", Health(service.store_ready))
    app.add_route("/metrics", api_metrics)

    sub = SubresourceResource(service, subresources.PodLogs(service, kubelet_tls),
                              streaming.PodStreams(service, kubelet_tls))
    # CustomResourceDefinitions: this process serves what the stored CRDs define.
    crd_sync.start(service)
    watches = metrics.CountedWatches(service.watch_source(), api_metrics.watchers)
    collection = CollectionResource(service, watches, sub)
    item = ItemResource(service)
    auth_setup.add_routes(app, auth, service)
    metrics_api.add_routes(app, service, kubelet_tls)      # metrics.k8s.io from the agents
    nodeproxy.add_routes(app, service, kubelet_tls)        # nodes/proxy: the agents' metrics
    for base in ("/api/{version}", "/apis/{group}/{version}"):
        app.add_route(base + "/{plural}", collection)
        app.add_route(base + "/{plural}/{name}", item)
        app.add_route(base + "/{plural}/{name}/{sub}", sub)
        app.add_route(base + "/namespaces/{ns}/{plural}", collection)
        app.add_route(base + "/namespaces/{ns}/{plural}/{name}", item)
        app.add_route(base + "/namespaces/{ns}/{plural}/{name}/{sub}", sub)
    # The web dashboard under /ui/: its pages are subrequests to this app as the user.
    return dashboard.mount(app, (auth_options or auth_setup.AuthOptions())
                           .service_account_signing_key_file)
