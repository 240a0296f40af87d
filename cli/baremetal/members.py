"""`steer store member replace OLD --with USER@HOST`: a dead (or retiring) control host out, a new one in.

The order keeps a majority at every step, as etcd's runbook for a failed member:

1. the new host is checked and the release installed (nothing changes in the cluster yet);
2. OLD is removed from the store's membership (3 members -> 2, both alive: quorum holds);
3. the new member is added (-> 3) and its host gets the whole control-host plan
   (store member, API server, scheduler, controller manager, and the worker services
   when OLD ran them); wait until every member agrees on a leader;
4. the other hosts' plans now name the new member (the store's peers, the API
   servers' store endpoints, the workers' API server): applied one control host at
   a time, each waiting for store quorum and its API server's /readyz, then the
   workers together;
5. OLD's Node is deleted and, if its host still answers, its services are stopped
   and its files removed.
"""

from cli.baremetal import topology as topo
from cli.baremetal.api import AdminApi, ApiError
from cli.baremetal.commands import ClusterDir, host_ops, say, write_kubeconfig
from cli.baremetal.fleet import StepError
from cli.baremetal.reach import Reach
from cli.errors import CommandError
from store.client import StoreClient, StoreError

STORE_PEER_PORT, STORE_CLIENT_PORT = 2380, 2379


def cmd_replace(args):
    from cli.baremetal.credentials import ClusterCredentials
    from cli.baremetal.health import Health

    home = ClusterDir(args.cluster)
    topology = home.require()
    try:
        old = topology.host(args.old)
    except KeyError:
        raise CommandError(f"no host {args.old!r} in cluster {args.cluster}") from None
    if not old.control:
        raise CommandError(f"{old.name} is not a store member (a control host); "
                           "`steer node remove` removes a worker")
    try:
        new = topo.make_host(args.with_target, control=True, worker=old.worker)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if any(h.name == new.name for h in topology.hosts):
        raise CommandError(f"{new.name} is already in cluster {args.cluster}")
    index = topology.hosts.index(old)
    replaced = topo.Topology.from_json(topology.to_json())
    replaced.hosts[index] = new
    credentials = ClusterCredentials(home.pki_dir)
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)
        health = Health(credentials, reach, timeout=args.timeout)
        try:
            Replace(topology, replaced, old, new, ops, health, credentials, reach).run()
        except StepError as exc:
            raise CommandError(f"replace failed on {exc}") from None
    home.save(replaced, created=True)
    write_kubeconfig(home.kubeconfig, credentials, replaced)
    say(f"store member {old.name} replaced by {new.name}")
    return 0


class Replace:
    def __init__(self, before, after, old, new, ops, health, credentials, reach):
        self.before, self.after, self.old, self.new = before, after, old, new
        self.ops, self.health, self.credentials, self.reach = ops, health, credentials, reach

    def store_client(self):
        survivors = [h for h in self.before.control if h.name != self.old.name]
        endpoints = [self.reach.endpoint(h.address, STORE_CLIENT_PORT) for h in survivors]
        return StoreClient(endpoints, timeout=15.0, **self.credentials.store_admin_tls())

    def _step(self, host, step, fn):
        try:
            return fn()
        except StepError:
            raise
        except (StoreError, OSError, ValueError, RuntimeError) as exc:
            raise StepError(host.name, step, str(exc), self.ops.fix_for(exc)) from exc

    def run(self):
        new = self.new
        conn = self._step(new, "connect", lambda: self.ops.connect(new))
        try:
            bad = [f for f in self._step(new, "host checks", lambda: self.ops.check(conn, new))
                   if not f.ok]
            if bad:
                raise StepError(new.name, f"host check {bad[0].check}", bad[0].message,
                                bad[0].fix)
            say(f"{new.name}: host checks passed")
            self._step(new, "install the release", lambda: self.ops.install(
                conn, self.ops.wheelhouse(), self.after.version))
            say(f"{new.name}: release {self.after.version} installed")
            self._membership()
            self.ops.credentials(self.after)
            plan = self.ops.plan(self.after, new)
            self._step(new, "start the store member and control plane",
                       lambda: self.ops.apply(conn, plan))
            say(f"{new.name}: started")
        finally:
            conn.close()
        self.health.store_quorum(self.after, say)
        self._rest()
        self._retire_old()

    def _membership(self):
        new, old = self.new, self.old
        with self.store_client() as client:
            names = {m["name"] for m in self._step(old, "list store members", client.members)}
            if old.name in names:
                self._step(old, "remove the store member",
                           lambda: client.member_remove(old.name))
                say(f"store: member {old.name} removed")
            if new.name not in names:
                self._step(new, "add the store member", lambda: client.member_add(
                    new.name, f"{new.address}:{STORE_PEER_PORT}",
                    client=f"{new.address}:{STORE_CLIENT_PORT}"))
                say(f"store: member {new.name} added")

    def _rest(self):
        """Bring every other host to its new plan: control hosts one by one, then workers."""
        others = [h for h in self.after.hosts if h.name != self.new.name]
        for host in [h for h in others if h.control] + [h for h in others if not h.control]:
            def apply(host=host):
                conn = self.ops.connect(host)
                try:
                    return self.ops.describe(self.ops.apply(conn, self.ops.plan(self.after, host)))
                finally:
                    conn.close()
            what = self._step(host, "apply the new membership", apply)
            say(f"{host.name}: " + (", ".join(what) if what else "unchanged"))
            if host.control:
                self.health.store_quorum(self.after, say)
                self.health.apiservers_ready(self.after, say)
        self.health.controllers_running(self.after, say)
        self.health.nodes_ready(self.after, say)

    def _retire_old(self):
        old = self.old
        if old.worker:
            api = AdminApi(self.credentials, self.reach, self.after.control)
            try:
                api.delete(f"/api/v1/nodes/{old.name}")
                say(f"node/{old.name} deleted")
            except ApiError as exc:
                if exc.status != 404:
                    say(f"node/{old.name}: not deleted ({exc})")
        try:
            conn = self.ops.connect(old)
        except Exception as exc:        # a dead host: nothing to stop there
            say(f"{old.name}: does not answer ({type(exc).__name__}); if it comes back, "
                f"`steer cluster destroy` will not know it: run the cleanup by hand")
            return
        try:
            self.ops.teardown(conn, old)
            say(f"{old.name}: services stopped, files removed")
        finally:
            conn.close()

