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
import sys

from gunicorn.app.base import BaseApplication

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
            "accesslog": "-" if self.args.access_log else None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "steer-apiserver",
        }
        for key, value in settings.items():
            if value is not None:
                self.cfg.set(key, value)

    def load(self):
        from control.api.app import create_app
        from store.client import StoreClient

        store = StoreClient(self.args.store_endpoints, timeout=self.args.store_timeout)
        return create_app(store, agent_token=read_token(self.args.agent_token_file),
                          max_requests_inflight=self.args.max_requests_inflight,
                          max_mutating_requests_inflight=self.args.max_mutating_requests_inflight,
                          default_not_ready_toleration_seconds=(
                              self.args.default_not_ready_toleration_seconds),
                          default_unreachable_toleration_seconds=(
                              self.args.default_unreachable_toleration_seconds),
                          service_cluster_ip_range=self.args.service_cluster_ip_range,
                          service_node_port_range=self.args.service_node_port_range)


def read_token(path):
    """Return the bearer token in ``path`` (surrounding whitespace dropped), or None."""
    if not path:
        return None
    with open(path) as f:
        return f.read().strip() or None


def build_parser():
    p = argparse.ArgumentParser(prog="steer-apiserver",
                                description="Serve the Kubernetes API over a Steersman store.")
    p.add_argument("--bind", default="127.0.0.1:6443", help="host:port to listen on")
    p.add_argument("--store-endpoints", required=True,
                   help="comma-separated store client addresses host:port")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--worker-class", choices=("gevent", "gthread"), default="gevent",
                   help="gevent: a greenlet per connection (thousands of watches); "
                        "gthread: a thread per connection")
    p.add_argument("--worker-connections", type=int, default=4000,
                   help="gevent: connections (open watches included) per worker")
    p.add_argument("--threads", type=int, default=64,
                   help="gthread: threads per worker (each open watch holds one)")
    p.add_argument("--store-timeout", type=float, default=10.0,
                   help="seconds a store request may take, failover included")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--agent-token-file",
                   help="file holding the bearer token sent to node agents (pod logs)")
    p.add_argument("--max-requests-inflight", type=int, default=400,
                   help="non-mutating requests in flight per worker before 429 (0: no limit); "
                        "watches and logs are not counted")
    p.add_argument("--max-mutating-requests-inflight", type=int, default=200,
                   help="mutating requests in flight per worker before 429 (0: no limit)")
    p.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the not-ready:NoExecute toleration every pod "
                        "gets unless it has one")
    p.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                   help="tolerationSeconds of the unreachable:NoExecute toleration every pod "
                        "gets unless it has one")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="CIDR Services' clusterIPs are allocated from")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="ports (FIRST-LAST, inclusive) NodePort Services' nodePorts come from")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    # Checked here with the stdlib: the allocators (and the store client) may only be
    # imported in the workers, after the fork.
    try:
        ipaddress.ip_network(args.service_cluster_ip_range, strict=True)
    except ValueError as exc:
        parser.error(f"--service-cluster-ip-range: {exc}")
    first, _, last = args.service_node_port_range.partition("-")
    if not (first.isdigit() and last.isdigit() and 0 < int(first) <= int(last) < 65536):
        parser.error("--service-node-port-range: want FIRST-LAST, e.g. 30000-32767")
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
    ApiServerApplication(args).run()


if __name__ == "__main__":
    main()
