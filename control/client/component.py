"""What every control-plane process shares: flags, logging, its API client, its run loop.

The scheduler and the controller manager (and later agents) take the same
connection and leader-election flags, build their REST client the same way and
run the same way: leader-elected, until a signal or the loss of the Lease.
"""

import argparse
import dataclasses
import logging
import os
import signal
import socket
import ssl
import threading

from control.client import kubeconfig
from control.client.leaderelection import LeaderElector
from control.client.rest import RestClient

log = logging.getLogger(__name__)


def add_connection_flags(parser):
    """Add --kubeconfig (preferred), or --api-server with --token-file: how to reach the API."""
    parser.add_argument("--kubeconfig", metavar="FILE",
                        help="kubeconfig with the server, its CA and this component's "
                             "credentials (client certificate or token)")
    parser.add_argument("--api-server", help="API server URL, http(s)://host:port "
                                             "(overrides the kubeconfig's server)")
    parser.add_argument("--token-file", help="file holding the bearer token")
    parser.add_argument("--certificate-authority", metavar="FILE",
                        help="CA file to verify an https --api-server with")


def add_common_flags(parser, what):
    """Add the connection flags, leader election, --identity and --log-level."""
    add_connection_flags(parser)
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help=f"run {what} only while holding the Lease (default on)")
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--identity", default=f"{socket.gethostname()}_{os.getpid()}",
                        help="this copy's name in the Lease (default hostname_pid)")
    parser.add_argument("--log-level", default="INFO")


#: The umask of every component: files it creates are its own (0600, dirs 0700).
PRIVATE_UMASK = 0o077


def restrict_umask():
    """Make every file this process creates private to its user; return the old umask."""
    return os.umask(PRIVATE_UMASK)


def configure_logging(level):
    """Start a component's process: the private umask first, then logging to stderr."""
    restrict_umask()
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def read_token(path):
    """Return the bearer token kept in ``path`` (None without a path or in an empty file)."""
    if not path:
        return None
    with open(path) as f:
        return f.read().strip() or None


def connect(args, **kwargs):
    """Build a REST client from the connection flags (``kwargs`` go to RestClient).

    A --kubeconfig gives server, trust and credentials; --api-server replaces its
    server and --token-file its token. Exits with a usage message when neither a
    kubeconfig nor an --api-server says where the API server is.
    """
    if args.kubeconfig:
        try:
            config = kubeconfig.load(args.kubeconfig)
        except kubeconfig.KubeconfigError as exc:
            raise SystemExit(f"error: --kubeconfig: {exc}") from None
    elif args.api_server:
        config = kubeconfig.ClientConfig(server=args.api_server.rstrip("/"),
                                         ca_file=args.certificate_authority)
    else:
        raise SystemExit("error: where is the API server? pass --kubeconfig FILE "
                         "(or --api-server URL)")
    changes = {}
    if args.kubeconfig and args.api_server:
        changes["server"] = args.api_server.rstrip("/")
    if args.token_file:
        changes["token"] = read_token(args.token_file)
    config = dataclasses.replace(config, **changes) if changes else config
    try:
        return RestClient.from_config(config, **kwargs)
    except (OSError, ssl.SSLError) as exc:     # a CA, certificate or key file
        raise SystemExit(f"error: cannot load the TLS files for {config.server}: {exc}") \
            from None


def rest_client(args):
    """Build the process's REST client from its flags."""
    # Requests must time out well within the renew deadline (see LeaderElector.run).
    timeout = max(1.0, args.renew_deadline / 2) if args.leader_elect else 30.0
    return connect(args, timeout=timeout)


def run_leader_elected(rest, args, lease, start, stop, prepare=None, lease_namespace="kube-system"):
    """Run a component until SIGTERM/SIGINT or until it loses its Lease; return the exit status.

    ``prepare()`` (optional) runs first, with the signal handlers in place; if it
    returns False the component gives up with status 1. Then, with
    ``--leader-elect``, ``start()`` runs once this copy holds the Lease
    ``lease_namespace/lease``; without it, at once. ``stop()`` runs when
    leadership ends or a signal comes. A lost Lease is status 1, so that the
    supervisor restarts the process as a clean standby (as kube-scheduler and
    kube-controller-manager exit); a signal is status 0. The caller releases
    what it built (in a ``finally``).
    """
    terminated = threading.Event()
    elector = None

    def terminate(signum, frame):
        terminated.set()
        stop()
        if elector is not None:
            elector.stop()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    if prepare is not None and not prepare():
        return 1
    if not args.leader_elect:
        start()
        terminated.wait()
        return 0
    elector = LeaderElector(rest, lease_namespace, lease, args.identity, args.lease_duration,
                            args.renew_deadline, args.retry_period, on_started_leading=start,
                            on_stopped_leading=stop)
    if not terminated.is_set():     # a signal may have come before the elector existed
        elector.run()
    # run() returns when leadership ends; unless we were asked to stop, that is a loss.
    if terminated.is_set():
        return 0
    log.error("%s lost the lease %s/%s; exiting", args.identity, lease_namespace, lease)
    return 1
