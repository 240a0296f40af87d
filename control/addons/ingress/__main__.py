"""Run the Ingress controller: ``python -m control.addons.ingress`` (the DaemonSet's command).

In a pod it reaches the API server with its ServiceAccount (control/client/
incluster); elsewhere give --kubeconfig. nginx runs as its child; SIGTERM stops
nginx gracefully (open requests finish) and then the controller.
"""

import argparse
import logging
import os
import shutil
import signal
import socket
import sys
import threading

from control.addons.ingress.controller import IngressController
from control.addons.ingress.nginx import Nginx
from control.addons.ingress.render import Settings
from control.client import RestClient, incluster
from control.client.component import add_connection_flags, configure_logging, connect

log = logging.getLogger("steer-ingress")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="steer-ingress", description=__doc__.split("\n")[0])
    add_connection_flags(p)
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx",
                   help="the nginx binary")
    p.add_argument("--run-dir", default="/run/ingress",
                   help="nginx.conf, its pid file and temporary files (TLS files: tls/)")
    p.add_argument("--http-port", type=int, default=80)
    p.add_argument("--https-port", type=int, default=443)
    p.add_argument("--status-port", type=int, default=10254, help="serves /healthz")
    p.add_argument("--listen-address", default="", help="one address to listen on (all)")
    p.add_argument("--mime-types", default="", help="a mime.types file nginx includes")
    p.add_argument("--worker-processes", type=int, default=2)
    p.add_argument("--pod-namespace", default=os.environ.get("POD_NAMESPACE", "ingress-nginx"),
                   help="namespace of this controller's pods (their nodes make the status)")
    p.add_argument("--pod-selector", default="app.kubernetes.io/name=ingress-nginx",
                   help="label selector of this controller's pods")
    p.add_argument("--pod-name", default=os.environ.get("POD_NAME", ""),
                   help="this pod's name (it publishes its address in an annotation)")
    p.add_argument("--publish-address", default="auto",
                   help='the address clients reach this node on: "auto" (the source '
                        "address of the route to the API server), an IP, or \"\" for the "
                        "pod's hostIP")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def client(args):
    if args.kubeconfig or args.api_server or not incluster.available():
        return connect(args)
    try:
        return RestClient.from_config(incluster.load())
    except incluster.InClusterError as exc:
        raise SystemExit(f"error: {exc}") from None


def route_source_address(host, port=443):
    """The local address this node sends from towards ``host`` ("" if it has no route).

    A UDP connect sends nothing: it only asks the kernel which route and source
    address it would use.
    """
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                           socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return probe.getsockname()[0]
    except OSError:
        return ""


def publish_address(args, rest):
    if args.publish_address != "auto":
        return args.publish_address
    host = os.environ.get("KUBERNETES_SERVICE_HOST") or rest.host or ""
    found = route_source_address(host) if host else ""
    return "" if found.startswith("127.") or found == "::1" else found


def main(argv=None):
    args = parse_args(argv)
    configure_logging(args.log_level)
    settings = Settings(run_dir=args.run_dir, tls_dir=os.path.join(args.run_dir, "tls"),
                        http_port=args.http_port, https_port=args.https_port,
                        status_port=args.status_port, listen_address=args.listen_address,
                        mime_types=args.mime_types, worker_processes=args.worker_processes)
    nginx = Nginx(args.nginx, settings.run_dir, settings.tls_dir)
    rest = client(args)
    address = publish_address(args, rest)
    controller = IngressController(rest, nginx, settings, args.pod_namespace,
                                   args.pod_selector, pod_name=args.pod_name,
                                   own_address=address)
    stopping = threading.Event()

    def stop(signum, frame):
        stopping.set()
        controller.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    controller.start()
    log.info("msg=watching http=%d https=%d status=%d run_dir=%s address=%s", args.http_port,
             args.https_port, args.status_port, args.run_dir, address or "hostIP")
    code = 0
    try:
        controller.run()
    except Exception:       # noqa: BLE001 - logged, then exit non-zero to be restarted
        log.exception("msg=the controller failed")
        code = 1
    finally:
        nginx.stop()
        controller.stop()
    sys.exit(code)


if __name__ == "__main__":
    main()
