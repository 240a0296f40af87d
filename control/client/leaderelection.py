"""Elect one leader among many copies of a component with a coordination.k8s.io Lease.

The algorithm is client-go's leaderelection. A candidate takes the Lease when it
does not exist, is released (no holder), or has expired; the leader renews it
every ``retry_period`` and steps down if it cannot renew within ``renew_deadline``.

Expiry is judged by the *local* clock: a candidate notes when it last saw the
Lease record change and waits ``leaseDurationSeconds`` from then. Timestamps
written by other hosts are never compared with the local clock, so clock skew
between hosts does not matter, only the rate at which clocks run.

Every write carries the resourceVersion that was read, so of two candidates that
both see an expired Lease, the second write is a Conflict and only one leads.
"""

import logging
import threading
import time

from control.client import errors, metrics
from control.objects import kinds, meta

log = logging.getLogger(__name__)

#: 1 while this process leads the Lease ``name`` (Kubernetes' leader-election gauge).
MASTER_STATUS = metrics.gauge("leader_election_master_status",
                              "Gauge of if the reporting system is master of the relevant "
                              "lease, 0 indicates backup, 1 indicates master.", ("name",))


def _record(lease):
    """The election fields of a Lease spec, for comparing one observation with the next."""
    spec = lease.get("spec") or {}
    return {k: spec.get(k) for k in ("holderIdentity", "leaseDurationSeconds", "acquireTime",
                                     "renewTime", "leaseTransitions")}


class LeaderElector:
    """Run for leadership of the Lease ``namespace/name`` as ``identity``.

    ``on_started_leading()`` and ``on_stopped_leading()`` run on the thread that
    called ``run``; they must return promptly (start work elsewhere, then return),
    or renewal stalls and leadership is lost.
    """

    def __init__(self, rest, namespace, name, identity, lease_duration=15.0, renew_deadline=10.0,
                 retry_period=2.0, on_started_leading=None, on_stopped_leading=None,
                 release_on_stop=True, clock=time.monotonic, wall_clock=meta.utcnow, sleep=None):
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        if not identity:
            raise ValueError("identity must not be empty")
        self.rest, self.namespace, self.name, self.identity = rest, namespace, name, identity
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period = retry_period
        self.on_started_leading, self.on_stopped_leading = on_started_leading, on_stopped_leading
        self.release_on_stop = release_on_stop
        self.clock, self.wall_clock = clock, wall_clock
        self._stop = threading.Event()
        # Waiting on the stop event by default lets stop() interrupt a wait at once.
        self._sleep = sleep or self._stop.wait
        self._observed = None          # the last Lease record seen
        self._observed_time = None     # local clock time when it was first seen
        self._observed_rv = None
        self._leading = False

    # -- the public face ------------------------------------------------------------
    def is_leader(self):
        """True while this candidate holds the Lease as far as it last observed."""
        return self._leading and self._observed is not None and \
            self._observed["holderIdentity"] == self.identity

    def stop(self):
        """Make ``run`` return; a leader releases the Lease on its way out."""
        self._stop.set()

    def run(self):
        """Campaign until leading, lead until the Lease is lost or ``stop`` is called.

        Returns after leadership ends (like client-go's Run); call again to stand
        again, or exit and let a restarted copy stand. After ``stop`` it returns at once.
        Give ``rest`` a timeout well under ``renew_deadline``: a renewal stuck in a
        slow request cannot notice that its deadline has passed.
        """
        MASTER_STATUS.set(self.name, value=0)
        if not self._acquire():
            return
        self._leading = True
        MASTER_STATUS.set(self.name, value=1)
        log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
        try:
            if self.on_started_leading:
                self.on_started_leading()
            self._renew_loop()
        finally:
            self._leading = False
            MASTER_STATUS.set(self.name, value=0)
            if self._stop.is_set() and self.release_on_stop:
                self._release()
            log.info("%s stopped leading lease %s/%s", self.identity, self.namespace, self.name)
            if self.on_stopped_leading:
                self.on_stopped_leading()

    # -- the loops ------------------------------------------------------------------
    def _acquire(self):
        while not self._stop.is_set():
            if self.try_acquire_or_renew():
                return True
            self._sleep(self.retry_period)
        return False

    def _renew_loop(self):
        while not self._stop.is_set():
            started = self.clock()
            while not self.try_acquire_or_renew():
                if self._stop.is_set():
                    return
                if self._observed is not None and \
                        self._observed["holderIdentity"] not in (self.identity, "", None):
                    log.warning("%s: lease taken by %s", self.identity,
                                self._observed["holderIdentity"])
                    return
                if self.clock() - started + self.retry_period > self.renew_deadline:
                    log.warning("%s: could not renew lease within %.1fs", self.identity,
                                self.renew_deadline)
                    return
                self._sleep(self.retry_period)
            self._sleep(self.retry_period)

    # -- one attempt ------------------------------------------------------------------
    def try_acquire_or_renew(self):
        """Take or renew the Lease once; True on success (client-go's tryAcquireOrRenew)."""
        now = meta.micro_timestamp(self.wall_clock())
        try:
            lease = self.rest.get(kinds.LEASES, self.namespace, self.name)
        except errors.NotFound:
            return self._create(now)
        except errors.ApiException as exc:
            log.info("%s: cannot read lease: %s", self.identity, exc)
            return False

        record = _record(lease)
        if record != self._observed:
            self._observed, self._observed_time = record, self.clock()
        self._observed_rv = lease["metadata"].get("resourceVersion")
        holder = record["holderIdentity"]
        duration = record["leaseDurationSeconds"] or self.lease_duration
        if holder and holder != self.identity and \
                self._observed_time + duration > self.clock():
            return False            # someone else holds an unexpired lease

        spec = dict(lease.get("spec") or {})
        if holder == self.identity:
            spec.setdefault("acquireTime", now)
        else:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = (record["leaseTransitions"] or 0) + 1
        spec.update(holderIdentity=self.identity, renewTime=now,
                    leaseDurationSeconds=int(round(self.lease_duration)))
        body = {**lease, "spec": spec}
        try:
            # The resourceVersion we read is in body.metadata: a rival's write since is a 409.
            updated = self.rest.update(kinds.LEASES, self.namespace, body)
        except errors.ApiException as exc:
            log.info("%s: cannot update lease: %s", self.identity, exc)
            return False
        self._observe(updated)
        return True

    def _create(self, now):
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity,
                         "leaseDurationSeconds": int(round(self.lease_duration)),
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
        try:
            created = self.rest.create(kinds.LEASES, self.namespace, body)
        except errors.ApiException as exc:
            log.info("%s: cannot create lease: %s", self.identity, exc)
            return False
        self._observe(created)
        return True

    def _observe(self, lease):
        self._observed, self._observed_time = _record(lease), self.clock()
        self._observed_rv = lease["metadata"].get("resourceVersion")

    def _release(self):
        """Hand the Lease back (no holder, 1 s duration) so a rival need not wait it out."""
        if self._observed is None or self._observed["holderIdentity"] != self.identity:
            return
        now = meta.micro_timestamp(self.wall_clock())
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace,
                             "resourceVersion": self._observed_rv},
                "spec": {"holderIdentity": "", "leaseDurationSeconds": 1,
                         "acquireTime": now, "renewTime": now,
                         "leaseTransitions": self._observed["leaseTransitions"] or 0}}
        try:
            self._observe(self.rest.update(kinds.LEASES, self.namespace, body))
        except errors.ApiException as exc:
            log.info("%s: cannot release lease: %s", self.identity, exc)
