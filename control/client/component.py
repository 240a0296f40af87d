"""What every control-plane process shares: flags, logging, its API client.

The scheduler and the controller manager (and later agents) take the same
connection and leader-election flags and build their REST client the same way.
"""

import argparse
import logging
import os
import socket

from control.client.rest import RestClient


def add_common_flags(parser, what):
    """Add --api-server, --token-file, leader election, --identity and --log-level."""
    parser.add_argument("--api-server", required=True, help="API server URL, http(s)://host:port")
    parser.add_argument("--token-file", help="file holding the bearer token")
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help=f"run {what} only while holding the Lease (default on)")
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--identity", default=f"{socket.gethostname()}_{os.getpid()}",
                        help="this copy's name in the Lease (default hostname_pid)")
    parser.add_argument("--log-level", default="INFO")


def configure_logging(level):
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def rest_client(args):
    """Build the process's REST client from its flags."""
    token = None
    if args.token_file:
        with open(args.token_file) as f:
            token = f.read().strip()
    # Requests must time out well within the renew deadline (see LeaderElector.run).
    timeout = max(1.0, args.renew_deadline / 2) if args.leader_elect else 30.0
    return RestClient(args.api_server, token=token, timeout=timeout)
