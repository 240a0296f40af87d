"""The exactly-once cache is bounded in bytes as well as in entries, deterministically."""

from store.dedupe import RequestCache, result_size


def big(n, size=1000):
    return {"revision": n, "responses": [{"op": "range", "kvs": [{"value": b"x" * size}]}]}


def test_results_over_the_byte_bound_evict_the_least_recently_active_first():
    cache = RequestCache(max_bytes=5 * result_size(big(1)))
    for req in range(1, 4):
        cache.remember(1, req, big(req))
    for req in range(1, 4):
        cache.remember(2, req, big(req))
    assert cache.bytes <= cache.max_bytes
    assert cache.lookup(1, 1) is None, "client 1's oldest result should be gone"
    assert cache.lookup(2, 3) == big(3) and cache.lookup(2, 1) == big(1)


def test_one_result_larger_than_the_bound_is_not_kept():
    cache = RequestCache(max_bytes=100)
    cache.remember(1, 1, big(1))
    assert cache.bytes == 0 and cache.lookup(1, 1) is None
    cache.remember(1, 2, {"revision": 2})
    assert cache.lookup(1, 2) == {"revision": 2}


def test_the_byte_count_survives_dump_and_load_and_replicas_agree():
    first, second = RequestCache(max_bytes=4000), RequestCache(max_bytes=4000)
    for cache in (first, second):
        for req in range(10):
            cache.remember(req % 3, req, big(req, 300 + req))
    assert first.dump() == second.dump() and first.bytes == second.bytes
    loaded = RequestCache(max_bytes=4000)
    loaded.load(first.dump())
    assert loaded.bytes == first.bytes
    loaded.remember(7, 1, big(1, 2000))
    first.remember(7, 1, big(1, 2000))
    assert loaded.dump() == first.dump()


def test_remembering_the_same_request_again_does_not_count_it_twice():
    cache = RequestCache()
    cache.remember(1, 1, {"revision": 1})
    once = cache.bytes
    cache.remember(1, 1, {"revision": 1})
    assert cache.bytes == once
