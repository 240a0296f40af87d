"""Run a controller's API calls in parallel: slow-start batches and a shared thread pool.

Kubernetes' slowStartBatch and its bounded parallel helpers: one pool of threads
(with their keep-alive connections) serves every controller of the process.
"""

import concurrent.futures
import threading

#: Threads per batch of API calls; bounded so one sync cannot open hundreds of connections.
MAX_PARALLEL = 16


def slow_start_batch(count, initial, func):
    """Call ``func()`` ``count`` times in batches of 1, 2, 4, ...; stop after a failing batch.

    Returns (successes, the first error or None). A quota or admission failure thus
    costs one request, not ``count``, as in Kubernetes' slowStartBatch.
    """
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        errors = _call_batch(func, batch)
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def _call_batch(func, size):
    """Call ``func()`` ``size`` times at once; return the exceptions raised."""
    errors = []

    def call(_):
        try:
            func()
        except Exception as exc:    # noqa: BLE001 - reported to the caller
            errors.append(exc)

    parallel(call, range(size))
    return errors


_POOL_PREFIX = "api-calls"
_pool = None
_pool_lock = threading.Lock()


def _shared_pool():
    """One pool for every controller's parallel API calls.

    Its threads live on, and with them their keep-alive connections to the API
    server (RestClient keeps one per thread): a pool per batch would open a new
    TCP connection for every call.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(MAX_PARALLEL,
                                                          thread_name_prefix=_POOL_PREFIX)
        return _pool


def parallel(func, items):
    """Call ``func(item)`` for every item, on up to MAX_PARALLEL threads; wait for all."""
    items = list(items)
    # From inside the pool, waiting on the pool could deadlock: run in line instead.
    if len(items) <= 1 or threading.current_thread().name.startswith(_POOL_PREFIX):
        for item in items:
            func(item)
        return
    for future in [_shared_pool().submit(func, item) for item in items]:
        future.result()
