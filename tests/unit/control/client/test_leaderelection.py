"""LeaderElector logic with a fake clock and an in-memory Lease store."""

import copy
import datetime

import pytest

from control.client import errors
from control.client.leaderelection import LeaderElector
from control.objects.meta import micro_timestamp as micro_time


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def wall(self):
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(seconds=self.now)

    def advance(self, seconds):
        self.now += seconds

    def sleep(self, seconds):
        """Sleep in fake time; a loop that never ends fails instead of hanging."""
        self.advance(seconds)
        assert self.now < 10_000, "the elector loop ran for hours of fake time"


class FakeLeases:
    """Leases by name, with resourceVersions and 409 on a stale update, like the API."""

    def __init__(self):
        self.objects = {}
        self.revision = 0
        self.fail = False          # every call fails (the API server is unreachable)
        self.before_update = None  # hook: run just before an update is applied

    def _check(self):
        if self.fail:
            raise errors.ConnectionFailed("unreachable")

    def get(self, resource, namespace, name):
        self._check()
        if (namespace, name) not in self.objects:
            raise errors.NotFound(404, "NotFound", f'leases "{name}" not found')
        return copy.deepcopy(self.objects[namespace, name])

    def create(self, resource, namespace, body):
        self._check()
        name = body["metadata"]["name"]
        if (namespace, name) in self.objects:
            raise errors.AlreadyExists(409, "AlreadyExists", "exists")
        return self._store(namespace, name, body)

    def update(self, resource, namespace, body):
        self._check()
        if self.before_update:
            hook, self.before_update = self.before_update, None
            hook()
        name = body["metadata"]["name"]
        current = self.objects.get((namespace, name))
        if current is None:
            raise errors.NotFound(404, "NotFound", "gone")
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(409, "Conflict", "the object has been modified")
        return self._store(namespace, name, body)

    def _store(self, namespace, name, body):
        self.revision += 1
        obj = copy.deepcopy(body)
        obj["metadata"] = {**obj["metadata"], "namespace": namespace,
                           "resourceVersion": str(self.revision)}
        self.objects[namespace, name] = obj
        return copy.deepcopy(obj)

    def spec(self, name="lock"):
        return self.objects["ns", name]["spec"]


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def leases():
    return FakeLeases()


def elector(leases, clock, identity, **kwargs):
    settings = dict(lease_duration=15, renew_deadline=10, retry_period=2, clock=clock,
                    wall_clock=clock.wall, sleep=clock.sleep)
    settings.update(kwargs)
    return LeaderElector(leases, "ns", "lock", identity, **settings)


def test_micro_time_format():
    moment = datetime.datetime(2026, 1, 1, 0, 0, 0, 120, tzinfo=datetime.timezone.utc)
    assert micro_time(moment) == "2026-01-01T00:00:00.000120Z"


def test_first_candidate_creates_the_lease_and_the_second_waits(leases, clock):
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    spec = leases.spec()
    assert spec["holderIdentity"] == "a" and spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] == micro_time(clock.wall())


def test_renewal_keeps_the_lease_and_resets_the_rivals_expiry(leases, clock):
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.try_acquire_or_renew()
    acquired = leases.spec()["acquireTime"]
    for _ in range(20):           # 40 s: far past one lease duration, but always renewed
        clock.advance(2)
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert leases.spec()["acquireTime"] == acquired
    assert leases.spec()["renewTime"] == micro_time(clock.wall())


def test_takeover_only_after_expiry_measured_from_local_observation(leases, clock):
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.try_acquire_or_renew()
    clock.advance(10)
    # b first sees the record now: its 15 s count starts now, not at renewTime.
    assert not b.try_acquire_or_renew()
    clock.advance(14)
    assert not b.try_acquire_or_renew()
    clock.advance(1.5)
    assert b.try_acquire_or_renew()
    spec = leases.spec()
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert spec["acquireTime"] == micro_time(clock.wall())
    assert not a.try_acquire_or_renew(), "the old holder must see b's unexpired lease"


def test_remote_timestamps_are_not_compared_with_the_local_clock(leases, clock):
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.try_acquire_or_renew()
    leases.spec()["renewTime"] = "2000-01-01T00:00:00.000000Z"   # a very skewed host
    assert not b.try_acquire_or_renew()


def test_conflict_loses_when_both_see_an_expired_lease(leases, clock):
    a, b, c = (elector(leases, clock, i) for i in "abc")
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    c.try_acquire_or_renew()
    clock.advance(16)
    # c writes between b's read and b's write: b's resourceVersion is stale.
    leases.before_update = lambda: c.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert leases.spec()["holderIdentity"] == "c"
    assert not b.try_acquire_or_renew()


def test_two_candidates_racing_exactly_one_wins(leases, clock):
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    # Both find no lease; the second create is AlreadyExists.
    results = []
    original_get = leases.get

    def get_then_let_the_rival_create(*args):
        try:
            return original_get(*args)
        finally:
            leases.get = original_get       # only b's read is interleaved
            results.append(a.try_acquire_or_renew())

    leases.get = get_then_let_the_rival_create
    results.append(b.try_acquire_or_renew())
    assert results == [True, False]
    assert leases.spec()["holderIdentity"] == "a"


def test_run_leads_until_renewal_fails_for_the_renew_deadline(leases, clock):
    events = []
    a = elector(leases, clock, "a", on_started_leading=lambda: events.append(("start", clock())),
                on_stopped_leading=lambda: events.append(("stop", clock())))
    renewals = []
    original_update = leases.update

    def update(*args):
        renewals.append(clock())
        if len(renewals) == 5:
            leases.fail = True      # the API server becomes unreachable
        return original_update(*args)

    leases.update = update
    a.run()
    start, stop = events[0][1], events[1][1]
    assert [e[0] for e in events] == ["start", "stop"]
    last_renewal = renewals[3]
    # It steps down within renew_deadline of its next attempt, well before a rival
    # (waiting lease_duration from its last observation) could take over.
    assert stop - last_renewal <= 2 + 10 and stop - last_renewal < 15
    assert stop > start
    assert not a.is_leader()


def test_run_steps_down_at_once_when_another_holder_appears(leases, clock):
    events = []
    a = elector(leases, clock, "a", on_stopped_leading=lambda: events.append(clock()))

    def steal():
        leases.objects["ns", "lock"]["spec"]["holderIdentity"] = "thief"
        leases.revision += 1
        leases.objects["ns", "lock"]["metadata"]["resourceVersion"] = str(leases.revision)

    a.on_started_leading = lambda: setattr(leases, "before_update", steal)
    began = clock()
    a.run()
    assert events and events[0] - began <= 2 + 2, "it must not wait out the renew deadline"


def test_stop_releases_the_lease_so_a_rival_takes_over_at_once(leases, clock):
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    calls = []
    a.on_started_leading = lambda: a.stop()
    a.on_stopped_leading = lambda: calls.append("stopped")
    a.run()
    assert calls == ["stopped"] and not a.is_leader()
    spec = leases.spec()
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert b.try_acquire_or_renew(), "a released lease needs no waiting"
    assert leases.spec()["leaseTransitions"] == 1


def test_candidate_keeps_trying_while_the_api_is_down(leases, clock):
    a = elector(leases, clock, "a")
    leases.fail = True
    attempts = []

    def sleep(seconds):
        attempts.append(seconds)
        clock.sleep(seconds)
        if len(attempts) == 3:
            leases.fail = False
        if a.is_leader():
            a.stop()

    a._sleep = sleep
    a.on_started_leading = lambda: a.stop()
    a.run()
    assert attempts[:3] == [2, 2, 2]
    assert leases.spec()["holderIdentity"] == ""      # acquired, then released on stop


def test_rejects_inconsistent_durations(leases, clock):
    with pytest.raises(ValueError):
        elector(leases, clock, "a", lease_duration=5, renew_deadline=10)
