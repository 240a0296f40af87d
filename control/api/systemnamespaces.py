"""Keep the system namespaces: re-create any of them that was deleted, periodically.

kube-apiserver runs the same loop (its system namespaces controller): default,
kube-system and kube-public cannot be deleted (NamespaceStrategy refuses it), but
kube-node-lease may be, and node agents need it for their Leases.
"""

import logging
import threading
import time

from control import errors

log = logging.getLogger("steer.apiserver")


def start(service, interval, sleep=time.sleep, also=()):
    """Run ``service.ensure_system_namespaces()`` every ``interval`` seconds, in the background.

    ``also`` are more callables run each round (the `kubernetes` Service, masterservice.py).

    A gevent worker makes the thread a greenlet. Failures (the store away) are
    logged and tried again at the next round.
    """
    thread = threading.Thread(target=run, args=(service, interval, sleep, None, also),
                              daemon=True,
                              name="system-namespaces")
    thread.start()
    return thread


def run(service, interval, sleep=time.sleep, rounds=None, also=()):
    """Re-create missing system namespaces every ``interval`` seconds (``rounds`` times)."""
    done = 0
    while rounds is None or done < rounds:
        sleep(interval)
        try:
            service.ensure_system_namespaces()
        except errors.ApiError as exc:
            log.warning("event=system_namespaces_failed error=%r", exc.message)
        for task in also:
            task()
        done += 1
