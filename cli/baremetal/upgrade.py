"""`steer cluster upgrade`: a new release onto every host, one host at a time.

Control hosts first (their store members, one by one, so a majority always runs),
then the workers. On each host: install the release under its version
(/opt/steersman/<version>, the old one stays for a rollback), apply the host's plan
for that version (the units name the version, so exactly the services of the new
release restart), and wait before the next: for a control host, the store's quorum
and every API server's /readyz; for a worker, its Node Ready. A failure stops the
upgrade there, naming the host and step; the hosts before it run the new release,
the ones after it the old one, and running the command again carries on.
"""

import dataclasses
import time

from cli.baremetal.commands import ClusterDir, host_ops, release_version, say, write_kubeconfig
from cli.baremetal.fleet import StepError
from cli.baremetal.reach import Reach
from cli.errors import CommandError


def cmd_upgrade(args):
    from cli.baremetal.credentials import ClusterCredentials
    from cli.baremetal.health import Health

    home = ClusterDir(args.name)
    before = home.require()
    version = args.version or release_version()
    after = dataclasses.replace(before, version=version, hosts=list(before.hosts))
    say(f"cluster {args.name}: {before.version} -> {version}, one host at a time")
    credentials = ClusterCredentials(home.pki_dir)
    started = time.monotonic()
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)
        health = Health(credentials, reach, timeout=args.timeout)
        try:
            Upgrade(after, ops, health).run()
        except StepError as exc:
            raise CommandError(f"upgrade stopped on {exc}\n  the hosts before it run "
                               f"{version}; run the upgrade again to carry on") from None
    home.save(after, created=True)
    write_kubeconfig(home.kubeconfig, credentials, after)
    say(f"cluster {args.name} runs {version} ({time.monotonic() - started:.1f}s)")
    return 0


class Upgrade:
    def __init__(self, topology, ops, health):
        self.topology, self.ops, self.health = topology, ops, health

    def order(self):
        """Control hosts (store members) first, then the workers, each once."""
        control = self.topology.control
        return control + [h for h in self.topology.hosts if not h.control]

    def run(self):
        wheelhouse = self.ops.wheelhouse()
        self.ops.credentials(self.topology)
        for host in self.order():
            self._host(host, wheelhouse)

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
