"""`steer-apiserver`: the falcon app under gunicorn, talking to the store cluster.

Each gunicorn worker process builds its own app and its own store client after
the fork (a client's sockets and threads must not cross a fork), and imports
them only then: the default gevent worker monkey-patches threads, sockets and
queues when it starts, and a watch is then a greenlet instead of a thread, so one
worker holds thousands of open watches while it keeps answering other requests.
"""

import argparse
import ipaddress
import logging
import os
import socket
import ssl
import sys

from gunicorn.app.base import BaseApplication

from control.api import tlsreload
from control.api.auth import flags as auth_flags

log = logging.getLogger("steer.apiserver")


class ApiServerApplication(BaseApplication):
    """Gunicorn application whose workers each create the app themselves."""

    def __init__(self, args):
        self.args = args
        super().__init__()

    def load_config(self):
        settings = {
            "bind": self.args.bind,
            "workers": self.args.workers,
            "worker_class": self.args.worker_class,
            "threads": self.args.threads,
            "worker_connections": self.args.worker_connections,
            # Watches are long-lived responses; a worker is only declared dead
            # when it stops heart-beating, which its own thread does.
            "timeout": 60,
            "graceful_timeout": 5,
            "keepalive": 75,
            # Request line and each header at most 8 KiB, at most 100 headers: a
            # larger request is answered 400 before the app sees it.
            "limit_request_line": 8190,
            "limit_request_fields": 100,
            "limit_request_field_size": 8190,
            "accesslog": "-" if self.args.access_log else None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "steer-apiserver",
        }
        settings.update(tls_settings(self.args))
        if self.args.tls_cert_file:
            # Renewed certificate files are read in the handshake (control/api/tlsreload.py).
            settings["ssl_context"] = tlsreload.gunicorn_ssl_context
        for key, value in settings.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self):
        from control.api.app import create_app
        from control.api.streaming import hijackable
        from store.client import StoreClient

        if self.args.worker_class == "gevent":
            from control.api import handshakes
            handshakes.install_for_gevent_worker()

        store = StoreClient(self.args.store_endpoints, timeout=self.args.store_timeout,
                            ca_file=self.args.store_cafile, cert_file=self.args.store_certfile,
                            key_file=self.args.store_keyfile)
        kubelet_context = kubelet_tls(self.args)
        for context, cert, key in ((kubelet_context, self.args.kubelet_client_certificate,
                                    self.args.kubelet_client_key),
                                   (store.ssl_context, self.args.store_certfile,
                                    self.args.store_keyfile)):
            if context is not None and cert and key:
                tlsreload.FILES.add(context, cert, key)
        app = create_app(store, kubelet_tls=kubelet_context,
                         max_requests_inflight=self.args.max_requests_inflight,
                         max_mutating_requests_inflight=self.args.max_mutating_requests_inflight,
                         max_watches=self.args.max_watches_inflight,
                         max_long_running=self.args.max_long_running_inflight,
                         body_timeout=self.args.request_body_timeout,
                         request_timeout=self.args.request_timeout,
                         enable_priority_and_fairness=(
                             self.args.enable_priority_and_fairness == "true"),
                         allowed_origins=[o for o in self.args.cors_allowed_origins.split(",")
                                          if o.strip()],
                         allowed_hosts=allowed_hosts(self.args),
                         system_namespaces_interval=self.args.system_namespaces_interval,
                         default_not_ready_toleration_seconds=(
                             self.args.default_not_ready_toleration_seconds),
                         default_unreachable_toleration_seconds=(
                             self.args.default_unreachable_toleration_seconds),
                         service_cluster_ip_range=self.args.service_cluster_ip_range,
                         service_node_port_range=self.args.service_node_port_range,
                         encryption_provider_config=self.args.encryption_provider_config,
                         audit_policy_file=self.args.audit_policy_file,
                         audit_log_path=self.args.audit_log_path,
                         audit_log_maxsize=self.args.audit_log_maxsize,
                         audit_log_maxbackup=self.args.audit_log_maxbackup,
                         auth_options=auth_flags.options(self.args),
                         admission_plugins=admission_names(self.args),
                         advertise_address=self.args.advertise_address,
                         advertise_port=advertise_port(self.args))
        # exec, attach and port-forward take their connection over (control/api/streaming.py).
        return hijackable(app)


KUBELET_FLAGS = ("--kubelet-client-certificate", "--kubelet-client-key",
                 "--kubelet-certificate-authority")


def kubelet_tls(args):
    """The context that reaches node agents over mutual TLS, or None (pods/log answers 503)."""
    from control.api.subresources import kubelet_client_context

    given = (args.kubelet_client_certificate, args.kubelet_client_key,
             args.kubelet_certificate_authority)
    if not any(given):
        return None
    if not all(given):
        raise ValueError(f"{', '.join(KUBELET_FLAGS)} go together: the agents verify the API "
                         "server's client certificate and it verifies theirs")
    return kubelet_client_context(args.kubelet_certificate_authority,
                                  args.kubelet_client_certificate, args.kubelet_client_key)


def tls_settings(args):
    """Gunicorn's TLS settings from the flags: serving certificate, client CA, optional client certs.

    A client certificate is verified against --client-ca-file when presented and is
    then available to the app as ``environ["gunicorn.socket"].getpeercert()``;
    clients with a bearer token need none (CERT_OPTIONAL, as kube-apiserver).
    """
    if args.insecure_plain_http:
        return {}
    return {"certfile": args.tls_cert_file, "keyfile": args.tls_private_key_file,
            "ca_certs": args.client_ca_file,
            "cert_reqs": ssl.CERT_OPTIONAL if args.client_ca_file else ssl.CERT_NONE}


def check_tls_flags(parser, args):
    """Refuse plain HTTP unless asked for by name; refuse half a TLS configuration."""
    if args.insecure_plain_http:
        if args.tls_cert_file or args.tls_private_key_file or args.client_ca_file:
            parser.error("--insecure-plain-http serves plain HTTP: drop --tls-cert-file, "
                         "--tls-private-key-file and --client-ca-file, or drop it")
        return
    if not (args.tls_cert_file and args.tls_private_key_file):
        parser.error("TLS is required: pass --tls-cert-file and --tls-private-key-file "
                     "(and --client-ca-file to accept client certificates), or "
                     "--insecure-plain-http to serve plain HTTP on purpose")
    for flag, path in (("--tls-cert-file", args.tls_cert_file),
                       ("--tls-private-key-file", args.tls_private_key_file),
                       ("--client-ca-file", args.client_ca_file)):
        if path and not os.path.isfile(path):
            parser.error(f"{flag}: no such file: {path}")


def allowed_hosts(args):
    """Return the Host names accepted besides addresses and localhost (None: any Host).

    DNS rebinding needs plain HTTP (over TLS the rebound name fails the browser's
    certificate check); Host is checked once --allowed-hosts names any host.
    """
    names = [name.strip() for name in args.allowed_hosts.split(",") if name.strip()]
    if not names or names == ["*"]:
        return None
    return names + [socket.gethostname()]


def advertise_port(args):
    """--advertise-port, else the port of --bind."""
    return args.advertise_port or int(args.bind.rpartition(":")[2])


def build_parser():
    p = argparse.ArgumentParser(prog="steer-apiserver",
                                description="Serve the Kubernetes API over a Steersman store.")
    p.add_argument("--bind", default="127.0.0.1:6443", help="host:port to listen on")
    p.add_argument("--store-endpoints", required=True,
                   help="comma-separated store client addresses host:port")
    tls = p.add_argument_group("TLS (required unless --insecure-plain-http)")
    tls.add_argument("--tls-cert-file", metavar="FILE", help="the server's certificate (PEM)")
    tls.add_argument("--tls-private-key-file", metavar="FILE", help="its private key (PEM)")
    tls.add_argument("--client-ca-file", metavar="FILE",
                     help="CA that signs client certificates; a presented certificate is "
                          "verified against it (CN user, O groups)")
    tls.add_argument("--insecure-plain-http", action="store_true",
                     help="serve plain HTTP without TLS: anyone on the network can read "
                          "and forge requests (tests, or behind a TLS proxy)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--worker-class", choices=("gevent", "gthread"), default="gevent",
                   help="gevent: a greenlet per connection (thousands of watches); "
                        "gthread: a thread per connection")
    p.add_argument("--worker-connections", type=int, default=4000,
                   help="gevent: connections (open watches included) per worker")
    p.add_argument("--threads", type=int, default=64,
                   help="gthread: threads per worker (each open watch holds one)")
    p.add_argument("--store-cafile", help="store CA: verifies the store members (TLS)")
    p.add_argument("--store-certfile", help="client certificate presented to the store")
    p.add_argument("--store-keyfile", help="key of --store-certfile")
    p.add_argument("--store-timeout", type=float, default=10.0,
                   help="seconds a store request may take, failover included")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--kubelet-certificate-authority", metavar="FILE",
                   help="CA that signs the agents' serving certificates: agents are reached "
                        "over TLS and must present a certificate for their node name (with "
                        "the two --kubelet-client-* flags; without them pods/log answers 503)")
    p.add_argument("--kubelet-client-certificate", metavar="FILE",
                   help="client certificate the API server presents to agents "
                        "(CN kube-apiserver-kubelet-client, O system:masters)")
    p.add_argument("--kubelet-client-key", metavar="FILE", help="key of --kubelet-client-certificate")
    p.add_argument("--max-requests-inflight", type=int, default=400,
                   help="non-mutating requests in flight per worker before 429 (0: no limit); "
                        "watches and logs are not counted")
    p.add_argument("--max-mutating-requests-inflight", type=int, default=200,
                   help="mutating requests in flight per worker before 429 (0: no limit)")
    p.add_argument("--max-watches-inflight", type=int, default=2000,
                   help="open watches per worker before 429 (0: no limit)")
    p.add_argument("--max-long-running-inflight", type=int, default=200,
                   help="open log, exec and proxy streams per worker before 429 (0: no limit)")
    p.add_argument("--request-body-timeout", type=float, default=30.0,
                   help="seconds a client has to send a request body (408 after)")
    p.add_argument("--request-timeout", type=_duration, default=60.0, metavar="DURATION",
                   help="time a request that is not a watch, log or exec stream may take "
                        "before it is answered 504 (e.g. 1m0s, 30s; 0: no limit); a "
                        "client's ?timeout= shortens it (gevent workers only)")
    p.add_argument("--enable-priority-and-fairness", type=str.lower, choices=("true", "false"),
                   default="true",
                   help="admit requests by priority level (API Priority and Fairness' default "
                        "configuration: system:masters exempt; nodes, leader election, system "
                        "components, service accounts and users each with their own share of "
                        "the two in-flight limits' sum); false: the two limits by kind")
    p.add_argument("--cors-allowed-origins", default="",
                   help="comma-separated regular expressions of web origins allowed to send "
                        "requests (a request with any other Origin header gets 403)")
    p.add_argument("--allowed-hosts", default="",
                   help="comma-separated host names accepted in the Host header besides IP "
                        "addresses, localhost and this machine's name (DNS rebinding over "
                        "plain HTTP); not given or '*': any Host")
    p.add_argument("--system-namespaces-interval", type=float, default=60.0,
                   help="seconds between re-creations of deleted system namespaces "
                        "(kube-node-lease); 0: only at start")
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the not-ready:NoExecute toleration every pod "
                        "gets unless it has one")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the unreachable:NoExecute toleration every pod "
                        "gets unless it has one")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="CIDR Services' clusterIPs are allocated from")
    p.add_argument("--advertise-address", metavar="IP",
                   help="the address pods reach this server at: the endpoint of the "
                        "default/kubernetes Service (none: that Service is not written)")
    p.add_argument("--advertise-port", type=int, metavar="PORT",
                   help="the port at --advertise-address (default: the --bind port)")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="ports (FIRST-LAST, inclusive) NodePort Services' nodePorts come from")
    p.add_argument("--enable-admission-plugins", metavar="NAMES",
                   help="comma-separated admission plugins to run (LimitRanger, "
                        "ServiceAccount, PodSecurity, ResourceQuota); default: LimitRanger,"
                        "ResourceQuota")
    at_rest = p.add_argument_group("encryption at rest and audit")
    at_rest.add_argument("--encryption-provider-config", metavar="FILE",
                         help="EncryptionConfiguration: the resources to encrypt in the store, "
                              "and the keys (the first provider encrypts, all decrypt)")
    at_rest.add_argument("--audit-policy-file", metavar="FILE",
                         help="audit.k8s.io/v1 Policy: which requests are logged, at what level")
    at_rest.add_argument("--audit-log-path", metavar="FILE",
                         help="file the audit events are appended to, one JSON a line ('-': "
                              "stdout); with --audit-policy-file")
    at_rest.add_argument("--audit-log-maxsize", metavar="MB", type=float, default=100,
                         help="megabytes the audit log grows to before it is rotated (0: never)")
    at_rest.add_argument("--audit-log-maxbackup", metavar="N", type=int, default=0,
                         help="rotated audit logs to keep (0: all)")
    auth_flags.add_arguments(p)
    return p


def _duration(text):
    """Seconds of a duration flag: a Go duration (1m0s) or a plain number of seconds."""
    from control.api.timeouts import parse_duration

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def admission_names(args):
    """Return the --enable-admission-plugins names, or None for the defaults."""
    from control.api import admission

    if args.enable_admission_plugins is None:
        return None
    return admission.parse(args.enable_admission_plugins)


def check_at_rest_flags(parser, args):
    """Refuse a bad encryption configuration or audit policy before any worker starts."""
    from control.api import audit, encryption

    if bool(args.audit_policy_file) != bool(args.audit_log_path):
        parser.error("--audit-policy-file and --audit-log-path go together")
    for flag, path, load, error in (
            ("--encryption-provider-config", args.encryption_provider_config, encryption.load,
             encryption.ConfigError),
            ("--audit-policy-file", args.audit_policy_file, audit.load_policy, audit.PolicyError)):
        try:
            if path:
                load(path)
        except error as exc:
            parser.error(f"{flag}: {exc}")


def main(argv=None):
    # Files the server writes (audit log, anything in its data) are its own: 0600/0700.
    os.umask(0o077)
    parser = build_parser()
    args = parser.parse_args(argv)
    # Checked here with the stdlib: the allocators (and the store client) may only be
    # imported in the workers, after the fork.
    try:
        ipaddress.ip_network(args.service_cluster_ip_range, strict=True)
    except ValueError as exc:
        parser.error(f"--service-cluster-ip-range: {exc}")
    try:
        admission_names(args)
    except ValueError as exc:
        parser.error(f"--enable-admission-plugins: {exc}")
    if args.advertise_address:
        try:
            ipaddress.ip_address(args.advertise_address)
        except ValueError as exc:
            parser.error(f"--advertise-address: {exc}")
    first, _, last = args.service_node_port_range.partition("-")
    if not (first.isdigit() and last.isdigit() and 0 < int(first) <= int(last) < 65536):
        parser.error("--service-node-port-range: want FIRST-LAST, e.g. 30000-32767")
    check_tls_flags(parser, args)
    check_at_rest_flags(parser, args)
    auth_flags.check(parser, args)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    ApiServerApplication(args).run()


if __name__ == "__main__":
    main()
