"""Run ``steer-scheduler``: the scheduler loop, behind leader election by default.

Every copy keeps warm informer caches; only the holder of the Lease
kube-system/steer-scheduler schedules. A copy that loses the Lease exits (as
kube-scheduler does) so that its supervisor restarts it as a clean standby.
"""

import argparse
import logging
import random
import sys
import threading

from control.client.component import (
    add_common_flags,
    configure_logging,
    rest_client,
    run_leader_elected,
)
from control.client.secure_serving import add_secure_serving_flags, start_secure_serving
from control.scheduler.loop import DEFAULT_SCHEDULER, Scheduler
from control.scheduler.metrics import register_pending_pods

log = logging.getLogger("steer-scheduler")

LEASE_NAMESPACE, LEASE_NAME = "kube-system", "steer-scheduler"


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="steer-scheduler", description=__doc__.splitlines()[0])
    add_common_flags(parser, "the scheduler")
    parser.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER,
                        help="schedule pods whose spec.schedulerName is this")
    add_secure_serving_flags(parser, 10259)
    return parser.parse_args(argv)


def main(argv=None):
    """Run until SIGTERM/SIGINT, or until leadership is lost; return the exit status."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    rest = rest_client(args)
    # Ties between equally good nodes go to a random one, as kube-scheduler's selectHost.
    scheduler = Scheduler(rest, args.scheduler_name, rng=random.Random(),
                          identity=args.identity)
    register_pending_pods(scheduler)
    secure = start_secure_serving(args, rest)
    stop = threading.Event()
    worker = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler")

    def warm_caches():
        # Every copy keeps its caches warm, leader or not.
        if scheduler.start():
            return True
        log.error("informers did not sync with %s", args.api_server)
        return False

    try:
        return run_leader_elected(rest, args, LEASE_NAME, worker.start, stop.set,
                                  prepare=warm_caches, lease_namespace=LEASE_NAMESPACE)
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(10)
        scheduler.stop()
        if secure is not None:
            secure.stop()


if __name__ == "__main__":
    sys.exit(main())
