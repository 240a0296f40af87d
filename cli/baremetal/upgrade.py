"""`steer cluster upgrade`: a new release onto every host, one host at a time.

Control hosts first (their store members, one by one, so a majority always runs),
then the workers. On each host: install the release under its version
(/opt/steersman/<version>, the old one stays for a rollback), apply the host's plan
for that version (the units name the version, so exactly the services of the new
release restart), and wait before the next: for a control host, the store's quorum
and every API server's /readyz; for a worker, its Node Ready. A failure stops the
upgrade there, naming the host and step; the hosts before it run the new release,
the ones after it the old one, and running the command again carries on.

That rolling path needs old and new store members to talk. Across a change of the
store's peer protocol (store/version.py) they cannot, so ``--mode together`` (what
``auto`` picks then, cli/baremetal/peer_protocol.py) installs the release on every
control host, stops every store member, applies each control host's new plan (its
store member and API server start on the new release, the data dir kept) and waits
for the store's quorum and every API server before the workers go one at a time.
The API is down between the stop and the quorum.
"""

import dataclasses
import time

from cli.baremetal import peer_protocol
from cli.baremetal.commands import ClusterDir, host_ops, release_version, say, write_kubeconfig
from cli.baremetal.fleet import StepError, each, raise_first
from cli.baremetal.reach import Reach
from cli.errors import CommandError


def cmd_upgrade(args):
    from cli.baremetal.credentials import ClusterCredentials
    from cli.baremetal.health import Health

    home = ClusterDir(args.name)
    before = home.require()
    version = args.version or release_version()
    after = dataclasses.replace(before, version=version, hosts=list(before.hosts))
    say(f"cluster {args.name}: {before.version} -> {version}")
    credentials = ClusterCredentials(home.pki_dir)
    started = time.monotonic()
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)
        health = Health(credentials, reach, timeout=args.timeout)
        try:
            Upgrade(after, ops, health, mode=args.mode).run()
        except peer_protocol.ModeError as exc:
            raise CommandError(str(exc)) from None
        except StepError as exc:
            raise CommandError(f"upgrade stopped on {exc}\n  the hosts before it run "
                               f"{version}; run the upgrade again to carry on") from None
    home.save(after, created=True)
    write_kubeconfig(home.kubeconfig, credentials, after)
    say(f"cluster {args.name} runs {version} ({time.monotonic() - started:.1f}s)")
    return 0


class Upgrade:
    """One upgrade; ``mode``: rolling, together, or auto (together only across a change
    of the store's peer protocol)."""

    def __init__(self, topology, ops, health, mode="rolling"):
        self.topology, self.ops, self.health, self.mode = topology, ops, health, mode

    def order(self):
        """Control hosts (store members) first, then the workers, each once."""
        control = self.topology.control
        return control + [h for h in self.topology.hosts if not h.control]

    def run(self):
        wheelhouse = self.ops.wheelhouse()
        mode = self.decide(wheelhouse)
        self.ops.credentials(self.topology)
        if mode == "together":
            self._store_members_together(wheelhouse)
            rest = [h for h in self.order() if not h.control]
        else:
            say("rolling: one host at a time, store members first")
            rest = self.order()
        for host in rest:
            self._host(host, wheelhouse)

    def decide(self, wheelhouse):
        """The mode to use: asks each store member and the wheel for their peer protocol."""
        new = self.ops.release_protocol(wheelhouse)
        running = {}
        for host in self.topology.control:
            conn = self._connect(host)
            try:
                running[host.name] = self.ops.peer_protocol(conn)
            except Exception as exc:
                raise StepError(host.name, "read the store's peer protocol", str(exc),
                                self.ops.fix_for(exc)) from exc
            finally:
                conn.close()
        mode = peer_protocol.choose(self.mode, running, new)
        spoken = sorted({p.protocol for p in running.values() if p is not None})
        say(f"store peer protocol: running {', '.join(map(str, spoken)) or 'none'}, "
            f"new {new.protocol}: {mode} upgrade")
        return mode

    def _connect(self, host):
        try:
            return self.ops.connect(host)
        except Exception as exc:
            raise StepError(host.name, "connect", str(exc), self.ops.fix_for(exc)) from exc

    def _store_members_together(self, wheelhouse):
        """Install on every control host, stop every member, start all on the new release.

        Each phase runs on the control hosts at once (a thread and a connection each),
        so the members start together and the API is down as briefly as it can be.
        """
        control = self.topology.control
        conns = {}

        def on_each(step, action):
            def run(host):
                if host.name not in conns:
                    conns[host.name] = self._connect(host)
                return self._step(host, step, lambda: action(host, conns[host.name]))
            return raise_first(each(control, run), step, self.ops.fix_for)

        try:
            on_each("install", lambda h, conn: self.ops.install(
                conn, wheelhouse, self.topology.version))
            say("together: stopping every store member (the API is down until they are back)")
            on_each("stop the store member", lambda h, conn: self.ops.stop(
                conn, [peer_protocol.STORE_SERVICE]))
            changes = on_each("start on the new release", lambda h, conn: self.ops.apply(
                conn, self.ops.plan(self.topology, h)))
        finally:
            for conn in conns.values():
                conn.close()
        for host in control:
            what = self.ops.describe(changes[host.name])
            say(f"{host.name}: {self.topology.version}: " +
                (", ".join(what) if what else "unchanged"))
        self.health.store_quorum(self.topology, say)
        self.health.apiservers_ready(self.topology, say)
        workers = [h for h in control if h.worker]
        if workers:
            self.health.nodes_ready(self.topology, say, hosts=workers)

    def _step(self, host, step, action):
        try:
            return action()
        except StepError:
            raise
        except Exception as exc:
            raise StepError(host.name, step, str(exc), self.ops.fix_for(exc)) from exc

    def _host(self, host, wheelhouse):
        try:
            conn = self.ops.connect(host)
        except Exception as exc:
            raise StepError(host.name, "connect", str(exc), self.ops.fix_for(exc)) from exc
        try:
            try:
                self.ops.install(conn, wheelhouse, self.topology.version)
                changes = self.ops.apply(conn, self.ops.plan(self.topology, host))
            except StepError:
                raise
            except Exception as exc:
                raise StepError(host.name, "install and restart", str(exc),
                                self.ops.fix_for(exc)) from exc
        finally:
            conn.close()
        what = self.ops.describe(changes)
        say(f"{host.name}: {self.topology.version}: " + (", ".join(what) if what else "unchanged"))
        if host.control:
            self.health.store_quorum(self.topology, say)
            self.health.apiservers_ready(self.topology, say)
        if host.worker:
            self.health.nodes_ready(self.topology, say, hosts=[host])
