"""``steer-agent``: the node agent (kubelet) of one machine.

    steer-agent --kubeconfig /etc/steer/agent.kubeconfig --node-name n1 --runtime process

Registers the Node, renews its Lease, runs the pods bound to it through the
chosen runtime, reports their status and serves their logs on --port. Stopping
the agent (SIGTERM) leaves containers running: the next agent re-adopts them.
"""

import argparse
import logging
import os
import signal
import socket
import threading
import time

from agent import backoff as backoffmod
from agent import logs, paths
from agent import runtime as runtimes
from agent.containers import POLL, Context
from agent.kubelet import ApiAdapter, PodManager
from agent.node import NodeAgent, default_node_ip, machine_pressure, parse_labels, parse_taints
from agent.probes import Prober
from agent.server import AgentServer, server_context
from control.client import ApiException
from control.client.component import (
    add_connection_flags,
    configure_logging,
    connect,
)
from control.client.events import EventRecorder

log = logging.getLogger("agent")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="steer-agent", description=__doc__.split("\n")[0])
    add_connection_flags(p)     # --kubeconfig, or --api-server and --token-file
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--node-ip", help="this node's InternalIP (default: the outgoing address)")
    p.add_argument("--runtime", choices=("process", "fake"), default="process")
    p.add_argument("--data-dir", default=os.path.expanduser("~/.steer/agent"),
                   help="pod directories, container state and logs")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--node-labels", default="", help="k=v,... added to the Node's labels")
    p.add_argument("--register-with-taints", default="", help="key=value:Effect,...")
    p.add_argument("--heartbeat-interval", type=float, default=10.0,
                   help="seconds between Lease renewals (kubelet: 10)")
    p.add_argument("--node-status-report-frequency", type=float, default=300.0,
                   help="post node status at least this often, even unchanged (seconds)")
    p.add_argument("--address", help="address the agent's HTTP port binds (default: node IP)")
    p.add_argument("--port", type=int, default=10250, help="agent HTTP port (0: pick a free one)")
    tls = p.add_argument_group("TLS of the agent's port (required unless --insecure-plain-http)")
    tls.add_argument("--tls-cert-file", help="serving certificate of the agent's port "
                     "(CN system:node:<node>, SANs the node name and IP)")
    tls.add_argument("--tls-private-key-file", help="key of --tls-cert-file")
    tls.add_argument("--client-ca-file", help="cluster CA: clients of the agent's port must "
                     "present a certificate it signed (the API server's kubelet client)")
    tls.add_argument("--insecure-plain-http", action="store_true",
                     help="serve the agent's port as plain HTTP with no check of the caller: "
                          "anyone who reaches it reads every pod's logs (tests only)")
    p.add_argument("--backoff-base", type=float, default=backoffmod.DEFAULT_BASE,
                   help="first crash-loop restart delay (kubelet: 10 s)")
    p.add_argument("--backoff-max", type=float, default=backoffmod.DEFAULT_MAX,
                   help="longest crash-loop restart delay (kubelet: 300 s)")
    p.add_argument("--backoff-reset", type=float, default=backoffmod.DEFAULT_RESET,
                   help="seconds of running after which the backoff starts over")
    p.add_argument("--sync-period", type=float, default=POLL,
                   help="seconds between a pod worker's looks at its containers")
    p.add_argument("--container-log-max-size", type=int, default=logs.DEFAULT_MAX_BYTES)
    p.add_argument("--container-log-max-files", type=int, default=logs.DEFAULT_MAX_FILES)
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def build_runtime(args):
    if args.runtime == "process":
        from agent.runtime.process import ProcessRuntime
        return ProcessRuntime(args.data_dir, args.container_log_max_size,
                              args.container_log_max_files)
    return runtimes.create(args.runtime, args.data_dir)


TLS_FLAGS = "--tls-cert-file, --tls-private-key-file and --client-ca-file"


def agent_port_tls(args):
    """The agent port's TLS context from the flags; None only with --insecure-plain-http."""
    given = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if args.insecure_plain_http:
        if any(given):
            raise SystemExit(f"steer-agent: --insecure-plain-http serves plain HTTP: drop "
                             f"{TLS_FLAGS}, or drop it")
        return None
    if not all(given):
        raise SystemExit(f"steer-agent: the agent's port needs TLS: pass {TLS_FLAGS} "
                         "(or --insecure-plain-http to serve plain HTTP on purpose)")
    return server_context(args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)


class Agent:
    """One node agent, wired from parsed flags; several can share a process (fake runtime)."""

    def __init__(self, args, rest=None, runtime=None):
        self.args = args
        ssl_context = agent_port_tls(args)     # refuse a half or missing TLS setup first
        self.node_ip = args.node_ip or default_node_ip()
        paths.make_private_dir(args.data_dir)      # pods' files, logs, container state: 0700
        self.rest = rest or connect(args, timeout=30)
        self.runtime = runtime or build_runtime(args)
        self.ctx = Context(runtime=self.runtime, api=ApiAdapter(self.rest),
                           recorder=EventRecorder(self.rest, "kubelet", instance=args.node_name),
                           backoff=backoffmod.Backoff(args.backoff_base, args.backoff_max,
                                                      args.backoff_reset),
                           prober=Prober(self.runtime), clock=time.time,
                           data_dir=args.data_dir, host_ip=self.node_ip,
                           node_name=args.node_name, poll=args.sync_period,
                           # Secret volumes on tmpfs (/dev/shm) where it is writable.
                           secret_dir=paths.tmpfs_dir(args.data_dir)
                           if args.runtime == "process" else None)
        self.pods = PodManager(self.rest, self.ctx, max_pods=args.max_pods)
        self.server = AgentServer(args.address or self.node_ip, args.port, self.pods.find_logs,
                                  metrics=self.pods.metrics, ssl_context=ssl_context)
        self.node = NodeAgent(self.rest, args.node_name, self.node_ip, self.server.port,
                              max_pods=args.max_pods, labels=parse_labels(args.node_labels),
                              taints=parse_taints(args.register_with_taints),
                              heartbeat=args.heartbeat_interval,
                              report_interval=args.node_status_report_frequency,
                              runtime_name=args.runtime,
                              pressure=lambda: machine_pressure(args.data_dir))

    def start(self, stop=None):
        """Serve, register the Node, start heartbeats and pod workers; return at once.

        Registration is retried (1 s doubling to 30 s) until the API server answers,
        as kubelet does, unless ``stop`` (an Event) is set meanwhile.
        """
        stop = stop or threading.Event()
        self.server.start()
        delay = 1.0
        while True:
            try:
                self.node.register()
                break
            except (ApiException, OSError) as exc:
                log.warning("node=%s msg=cannot register yet, retrying in %.0fs error=%s",
                            self.args.node_name, delay, exc)
                if stop.wait(delay):
                    return self
                delay = min(delay * 2, 30.0)
        self.node.start()
        self.pods.start()
        log.info("node=%s ip=%s port=%d runtime=%s msg=agent running", self.args.node_name,
                 self.node_ip, self.server.port, self.args.runtime)
        return self

    def stop(self):
        """Stop the agent's threads; containers keep running for the next agent."""
        self.node.stop()
        self.pods.stop()
        self.server.stop()
        self.runtime.close()
        paths.remove_tmpfs_dir_if_empty(self.ctx.secret_dir)


def main(argv=None):
    args = parse_args(argv)
    configure_logging(args.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent = Agent(args).start(stop)
    while not stop.wait(5.0):
        agent.pods.reap()
    log.info("node=%s msg=agent stopping; containers keep running", args.node_name)
    agent.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
