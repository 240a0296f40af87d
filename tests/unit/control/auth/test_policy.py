"""The RBAC snapshot: reloaded after its ttl, served stale while one request reloads it."""

from control.api.auth.policy import Policy


class Store:
    """RBAC objects by resource; counts reads; can pause inside a read."""

    def __init__(self):
        self.objects, self.reads, self.during_read = {}, 0, None

    def list_all(self, resource):
        self.reads += 1
        if self.during_read is not None:
            hook, self.during_read = self.during_read, None
            hook()
        return list(self.objects.get(resource.kind, ()))


def role(name):
    return {"metadata": {"name": name}, "rules": [{"verbs": ["get"]}]}


def make(clock):
    store = Store()
    return store, Policy(store.list_all, ttl=1.0, clock=lambda: clock[0])


def test_a_snapshot_is_reused_within_its_ttl_and_reloaded_after():
    clock = [0.0]
    store, policy = make(clock)
    first = policy.current()
    assert store.reads == 4 and policy.current() is first
    clock[0] = 1.5
    assert policy.current() is not first and store.reads == 8


def test_a_stale_snapshot_is_served_while_another_request_reloads_it():
    clock = [0.0]
    store, policy = make(clock)
    old = policy.current()
    clock[0] = 5.0
    seen = []
    store.during_read = lambda: seen.append(policy.current())   # a request arriving meanwhile
    fresh = policy.current()
    assert seen == [old] and fresh is not old


def test_invalidate_makes_the_next_request_read_the_store():
    clock = [0.0]
    store, policy = make(clock)
    policy.current()
    store.objects["ClusterRole"] = [role("new")]
    policy.invalidate()
    assert "new" in policy.current().cluster_role_rules


def test_a_reload_begun_before_an_invalidation_is_not_kept():
    clock = [0.0]
    store, policy = make(clock)
    policy.current()
    clock[0] = 5.0
    store.during_read = policy.invalidate          # an RBAC write lands mid-reload
    policy.current()
    store.objects["ClusterRole"] = [role("after")]
    assert "after" in policy.current().cluster_role_rules
