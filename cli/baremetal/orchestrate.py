"""The order of `steer cluster create`: from bare hosts to every node Ready, or nothing left.

    connect (host keys checked)  ->  host checks  ->  release  ->  PKI  ->  plans
    -> store members -> wait quorum -> API servers -> wait /readyz on each
    -> scheduler + controller manager -> workers (containerd, agent, proxy)
    -> wait until every node is Ready

Each phase applies, on every host at once, the host's plan cut down to the services
of this phase and the ones before (``cut``), so on bare hosts a service never starts
before what it needs answers; services a host already runs are always kept in, so a
re-run applies the same full plans and changes nothing. Nothing
here does I/O itself: ``ops`` (cli/baremetal/hostops.py over SSH, or a fake in the
unit tests) touches hosts and ``health`` waits for the cluster; this module only
decides what happens in which order, what is reported, and what is undone when a
create fails on hosts that were bare before it (their services stopped and files
removed); hosts of a cluster that already ran are never torn down by a failed re-run.
"""

import dataclasses
import time

from cli.baremetal.fleet import StepError, each, raise_first

#: (phase name, what its services are called: the words in a service's name).
PHASES = (
    ("store members", ("store",)),
    ("API servers", ("apiserver",)),
    ("scheduler and controller manager", ("scheduler", "controller-manager")),
    ("workers", ("containerd", "agent", "proxy")),
)


def phase_of(service_name):
    """The index in PHASES of a service (unknown ones start with the workers)."""
    for index, (_, words) in enumerate(PHASES):
        if any(word in service_name for word in words):
            return index
    return len(PHASES) - 1


def cut(plan, last_phase, existing=()):
    """``plan`` with the services of phases up to ``last_phase`` and those ``existing``.

    Every file stays. Services the host already runs stay too: applying a plan
    removes the services it does not name, and a re-run must not stop what a later
    phase would only start again.
    """
    services = [s for s in plan.services
                if phase_of(s.name) <= last_phase or s.name in existing]
    return dataclasses.replace(plan, services=services)


class Create:
    """One run of `steer cluster create` over ``topology``; ``run()`` returns a summary."""

    def __init__(self, topology, ops, health, say, new_hosts=None, keep_on_failure=False,
                 clock=time.monotonic, seed=None):
        """``new_hosts``: names of the hosts this run brings in (None: every host);
        ``seed(conn, host)``: run on each control host before its store member starts
        (a restore puts the snapshot in the member's data dir there)."""
        self.seed = seed
        self.topology, self.ops, self.health, self.say = topology, ops, health, say
        self.new_hosts = ({h.name for h in topology.hosts} if new_hosts is None
                          else set(new_hosts))
        self.keep_on_failure, self.clock = keep_on_failure, clock
        self.conns = {}
        self.plans = {}
        self.existing = {}      # host -> names of the services it already had
        self.new_release = set()    # hosts whose release was (re)installed by this run
        self.touched = set()
        self.changed = {}       # host -> [what changed]

    def run(self):
        started = self.clock()
        try:
            self._connect()
            self._check()
            self._install()
            self._plan()
            if self.seed is not None:
                _raise(each(self.topology.control,
                            lambda h: self.seed(self.conns[h.name], h)),
                       "seed the store member from the snapshot", self.ops.fix_for)
            for index, (phase, _) in enumerate(PHASES):
                self._apply_phase(index, phase)
                self._wait_after(index)
        except BaseException as exc:
            self._undo(exc)
            raise
        finally:
            for conn in self.conns.values():
                conn.close()
        for host in self.topology.hosts:
            what = self.changed.get(host.name) or []
            self.say(f"{host.name}: " + (f"changed ({', '.join(what)})" if what else "unchanged"))
        return {"seconds": self.clock() - started,
                "changed": {h: w for h, w in self.changed.items() if w}}

    # -- steps --------------------------------------------------------------------------
    def _hosts(self, hosts=None):
        return self.topology.hosts if hosts is None else hosts

    def _connect(self):
        outcomes = each(self._hosts(), self.ops.connect)
        for outcome in outcomes:
            if outcome.error is None:
                self.conns[outcome.host.name] = outcome.value
                self.say(f"{outcome.host.name}: connected ({outcome.host.roles})")
        _raise(outcomes, "connect", self.ops.fix_for)

    def _check(self):
        outcomes = each(self._hosts(), lambda h: self.ops.check(self.conns[h.name], h))
        _raise(outcomes, "host checks", self.ops.fix_for)
        failed = []
        for outcome in outcomes:
            bad = [f for f in outcome.value if not f.ok]
            self.say(f"{outcome.host.name}: host checks "
                     + ("passed" if not bad else f"{len(bad)} failed"))
            failed += bad
        if failed:
            for finding in failed:
                self.say(f"  {finding.host}: {finding.check}: {finding.message}\n"
                         f"    fix: {finding.fix}")
            first = failed[0]
            raise StepError(first.host, f"host check {first.check}",
                            f"{first.message} ({len(failed)} checks failed; nothing was "
                            "installed)", first.fix)

    def _install(self):
        wheelhouse = self.ops.wheelhouse()
        self.touched.update(self.conns)

        def install(host):
            changed = self.ops.install(self.conns[host.name], wheelhouse, self.topology.version)
            self.say(f"{host.name}: release {self.topology.version} "
                     + ("installed" if changed else "already installed"))
            if changed:
                self.changed.setdefault(host.name, []).append("release")
                self.new_release.add(host.name)

        _raise(each(self._hosts(), install), "install the release", self.ops.fix_for)

    def _plan(self):
        try:
            self.ops.credentials(self.topology)
        except (OSError, ValueError) as exc:
            raise StepError("this machine", "make the cluster's certificates", str(exc),
                            "check ~/.steer/clusters/<name>/pki is writable") from exc
        for host in self.topology.hosts:
            try:
                self.plans[host.name] = self.ops.plan(self.topology, host)
            except ValueError as exc:       # the plan's PlanError says what to change
                raise StepError(host.name, "plan the host", str(exc)) from exc
        outcomes = each(self.topology.hosts, lambda h: self.ops.existing_services(
            self.conns[h.name], self.plans[h.name]))
        self.existing = _raise(outcomes, "read the services in place", self.ops.fix_for)

    def _apply_phase(self, index, phase):
        hosts = [h for h in self.topology.hosts
                 if any(phase_of(s.name) == index for s in self.plans[h.name].services)]
        if not hosts:
            return

        def apply(host):
            plan = cut(self.plans[host.name], index, self.existing.get(host.name, ()))
            changes = self.ops.apply(self.conns[host.name], plan)
            what = self.ops.describe(changes)
            # Same version, new build: the units are unchanged, the code is not
            # (containerd is the host's own binary).
            stale = [s.name for s in plan.services
                     if phase_of(s.name) == index and host.name in self.new_release
                     and s.name.startswith("steersman-")
                     and s.name in self.existing.get(host.name, ())
                     and not any(s.name in w for w in what)]
            if stale:
                self.ops.restart(self.conns[host.name], stale)
                what += [f"restarted {n} (new build)" for n in stale]
            if what:
                self.changed.setdefault(host.name, []).extend(
                    w for w in what if w not in self.changed.get(host.name, []))
            self.say(f"{host.name}: {phase}: " + (", ".join(what) if what else "unchanged"))

        _raise(each(hosts, apply), f"start the {phase}", self.ops.fix_for)

    def _wait_after(self, index):
        waits = (self.health.store_quorum, self.health.apiservers_ready,
                 self.health.controllers_running, self.health.nodes_ready)
        waits[index](self.topology, self.say)

    # -- failure ------------------------------------------------------------------------
    def _undo(self, exc):
        undo = self.touched & self.new_hosts
        kept = self.touched - self.new_hosts
        if kept:
            self.say(f"{', '.join(sorted(kept))}: in the cluster before this run: left as they are")
        if not undo:
            return
        if self.keep_on_failure:
            self.say(f"--keep-on-failure: {', '.join(sorted(undo))} left as they are "
                     "(`steer cluster destroy` removes it all)")
            return
        self.say(f"failed: stopping services and removing files on {len(undo)} hosts ...")
        hosts = [h for h in self.topology.hosts if h.name in undo]
        for outcome in each(hosts, lambda h: self.ops.teardown(self.conns[h.name], h,
                                                               self.plans.get(h.name))):
            self.say(f"{outcome.host.name}: "
                     + ("removed" if outcome.error is None else f"cleanup failed: {outcome.error}"))


def _raise(outcomes, step, fix_for):
    return raise_first(outcomes, step, fix_for)
