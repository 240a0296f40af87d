"""Run ``steer-controller-manager``: the controllers, behind leader election by default.

Only the holder of the Lease kube-system/steer-controller-manager runs
controllers. Like kube-controller-manager, a copy starts its informers only once
it leads, and exits non-zero when it loses the Lease, so that its supervisor
restarts it as a clean standby (no half-stopped controllers left behind).
"""

import argparse
import logging
import signal
import sys
import threading

from control.client import Informer, LeaderElector, namespace_index
from control.client.component import add_common_flags, configure_logging, rest_client
from control.controllers.daemonset import DAEMONSETS, NODES, DaemonSetController
from control.controllers.history import CONTROLLER_REVISIONS
from control.controllers.replicaset import PODS, REPLICASETS, ReplicaSetController
from control.controllers.statefulset import STATEFULSETS, StatefulSetController

log = logging.getLogger("steer-controller-manager")

LEASE_NAMESPACE, LEASE_NAME = "kube-system", "steer-controller-manager"


class SharedInformers:
    """One informer per resource, shared by every controller (client-go's factory)."""

    def __init__(self, rest):
        self.rest = rest
        self._informers = {}

    def informer(self, resource):
        """The informer of ``resource``, indexed by namespace; created on first use."""
        if resource not in self._informers:
            informer = Informer(self.rest, resource)
            informer.add_index("namespace", namespace_index)
            self._informers[resource] = informer
        return self._informers[resource]

    def start(self):
        for informer in self._informers.values():
            informer.start()

    def stop(self):
        for informer in self._informers.values():
            informer.stop()


def _replicaset(rest, informers, options):
    return ReplicaSetController(rest, informers.informer(REPLICASETS), informers.informer(PODS))


def _daemonset(rest, informers, options):
    return DaemonSetController(rest, informers.informer(DAEMONSETS), informers.informer(PODS),
                               informers.informer(NODES), informers.informer(CONTROLLER_REVISIONS))


def _statefulset(rest, informers, options):
    return StatefulSetController(rest, informers.informer(STATEFULSETS), informers.informer(PODS),
                                 informers.informer(CONTROLLER_REVISIONS))


#: Every controller this manager can run, by its --controllers name: a factory
#: (rest client, SharedInformers, parsed options) -> Controller. A controller's own
#: flags are added in parse_args and read from ``options``.
CONTROLLERS = {"replicaset": _replicaset, "daemonset": _daemonset,
               "statefulset": _statefulset}


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="steer-controller-manager",
                                     description=__doc__.splitlines()[0])
    add_common_flags(parser, "controllers")
    parser.add_argument("--controllers", default=",".join(CONTROLLERS),
                        help=f"comma-separated controllers to run (default all: "
                             f"{','.join(CONTROLLERS)})")
    parser.add_argument("--workers", type=int, default=5,
                        help="worker threads per controller (--concurrent-*-syncs)")
    args = parser.parse_args(argv)
    args.controllers = [n.strip() for n in args.controllers.split(",") if n.strip()]
    unknown = [n for n in args.controllers if n not in CONTROLLERS]
    if unknown:
        parser.error(f"unknown controllers: {', '.join(unknown)} "
                     f"(available: {', '.join(CONTROLLERS)})")
    return args


class Manager:
    """Build the chosen controllers over shared informers; run them until stopped."""

    def __init__(self, rest, names, workers, options=None):
        self.informers = SharedInformers(rest)
        self.controllers = [CONTROLLERS[name](rest, self.informers, options) for name in names]
        self.workers = workers
        self.stop_event = threading.Event()
        self._threads = []

    def start(self):
        """Start informers and one thread per controller; return at once."""
        self.informers.start()
        for controller in self.controllers:
            thread = threading.Thread(target=controller.run, args=(self.workers, self.stop_event),
                                      name=f"controller-{controller.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self):
        self.stop_event.set()
        for thread in self._threads:
            thread.join(10)
        self.informers.stop()


def main(argv=None):
    """Run until SIGTERM/SIGINT, or until leadership is lost; return the exit status."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    rest = rest_client(args)
    manager = Manager(rest, args.controllers, args.workers, args)
    terminated = threading.Event()
    elector = None

    def terminate(signum, frame):
        terminated.set()
        if elector is not None:
            elector.stop()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    try:
        if not args.leader_elect:
            manager.start()
            terminated.wait()
            return 0
        elector = LeaderElector(rest, LEASE_NAMESPACE, LEASE_NAME, args.identity,
                                args.lease_duration, args.renew_deadline, args.retry_period,
                                on_started_leading=manager.start,
                                on_stopped_leading=manager.stop_event.set)
        if not terminated.is_set():     # a signal may have come before the elector existed
            elector.run()
        # run() returns when leadership ends; unless we were asked to stop, that is a loss.
        if terminated.is_set():
            return 0
        log.error("%s lost the lease %s/%s; exiting", args.identity, LEASE_NAMESPACE,
                  LEASE_NAME)
        return 1
    finally:
        manager.stop()


if __name__ == "__main__":
    sys.exit(main())
