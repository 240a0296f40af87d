"""Run ``steer-scheduler``: the scheduler loop, behind leader election by default.

Every copy keeps warm informer caches; only the holder of the Lease
kube-system/steer-scheduler schedules. A copy that loses the Lease exits (as
kube-scheduler does) so that its supervisor restarts it as a clean standby.
"""

import argparse
import logging
import random
import signal
import sys
import threading

from control.client import LeaderElector
from control.client.component import add_common_flags, configure_logging, rest_client
from control.scheduler.loop import DEFAULT_SCHEDULER, Scheduler

log = logging.getLogger("steer-scheduler")

LEASE_NAMESPACE, LEASE_NAME = "kube-system", "steer-scheduler"


def parse_args(argv=None):
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="steer-scheduler", description=__doc__.splitlines()[0])
    add_common_flags(parser, "the scheduler")
    parser.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER,
                        help="schedule pods whose spec.schedulerName is this")
    return parser.parse_args(argv)


def main(argv=None):
    """Run until SIGTERM/SIGINT, or until leadership is lost; return the exit status."""
    args = parse_args(argv)
    configure_logging(args.log_level)
    rest = rest_client(args)
    # Ties between equally good nodes go to a random one, as kube-scheduler's selectHost.
    scheduler = Scheduler(rest, args.scheduler_name, rng=random.Random(),
                          identity=args.identity)
    stop, terminated = threading.Event(), threading.Event()
    elector = None

    def terminate(signum, frame):
        terminated.set()
        stop.set()
        if elector is not None:
            elector.stop()

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    if not scheduler.start():
        log.error("informers did not sync with %s", args.api_server)
        scheduler.stop()
        return 1
    worker = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler")
    status = 0
    try:
        if not args.leader_elect:
            worker.start()
            stop.wait()
            return 0
        elector = LeaderElector(rest, LEASE_NAMESPACE, LEASE_NAME, args.identity,
                                args.lease_duration, args.renew_deadline, args.retry_period,
                                on_started_leading=worker.start,
                                on_stopped_leading=stop.set)
        if not terminated.is_set():     # a signal may have come before the elector existed
            elector.run()
        # run() returns when leadership ends; unless we were asked to stop, that is a loss.
        status = 0 if terminated.is_set() else 1
        if status:
            log.error("%s lost the lease; exiting", args.identity)
        return status
    finally:
        stop.set()
        if worker.is_alive():
            worker.join(10)
        scheduler.stop()


if __name__ == "__main__":
    sys.exit(main())
