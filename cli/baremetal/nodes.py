"""`steer node join USER@HOST` and `steer node remove NAME` on a bare-metal cluster.

join: the new host is one more worker of the recorded cluster, brought up by the
same steps as `steer cluster create` (cli/baremetal/orchestrate.py) over the bigger
host list: the hosts already there are checked and found unchanged, the new one is
checked, installed and started, and only it is torn down if the join fails. Its
agent certificate is issued here, on the admin's side, by the cluster CA (the
bootstrap-token path, where the node asks for its own certificate by a CSR that the
controller manager approves, is not wired into `steer node join` yet).

remove: drain the node as `kubectl drain --ignore-daemonsets --delete-emptydir-data
--force` does (it is leaving: its pods are recreated elsewhere by their
controllers), delete the Node, stop and remove every service and file on the host,
forget it. Control hosts leave through `steer store member replace`.
"""

import time

from cli.baremetal import topology as topo
from cli.baremetal.api import AdminApi, ApiError
from cli.baremetal.commands import ClusterDir, host_ops, release_version, say, write_kubeconfig
from cli.baremetal.fleet import StepError
from cli.baremetal.reach import Reach
from cli.errors import CommandError
from cli.node_cmd import classify


def cmd_join(args):
    from cli.baremetal.credentials import ClusterCredentials
    from cli.baremetal.health import Health
    from cli.baremetal.orchestrate import Create

    home = ClusterDir(args.name)
    topology = home.require()
    try:
        added = topo.make_host(args.target)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if release_version() != topology.version:
        raise CommandError(f"cluster {args.name} runs {topology.version}, this steer is "
                           f"{release_version()}: a new node must run the cluster's release "
                           "(`steer cluster upgrade` first, or join with that steer)")
    if any(h.name == added.name for h in topology.hosts):
        raise CommandError(f"{added.name} is already in cluster {args.name}")
    topology.hosts.append(added)
    say(f"joining {added.name} to cluster {args.name} as a worker; its certificate is issued "
        "by the cluster CA on this machine (no bootstrap token)")
    credentials = ClusterCredentials(home.pki_dir)
    started = time.monotonic()
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)
        health = Health(credentials, reach, timeout=args.timeout)
        try:
            Create(topology, ops, health, say, new_hosts={added.name},
                   keep_on_failure=args.keep_on_failure).run()
        except StepError as exc:
            raise CommandError(f"join failed on {exc}") from None
    home.save(topology, created=True)
    write_kubeconfig(home.kubeconfig, credentials, topology)
    say(f"node {added.name} joined and Ready in {time.monotonic() - started:.1f}s")
    return 0


def drain(api, name, timeout, clock=time.monotonic, sleep=time.sleep):
    """Cordon ``name`` and delete its pods (DaemonSet pods stay); wait until they are gone."""
    api.merge_patch(f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}})
    say(f"node/{name} cordoned")
    pods = api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={name}").get("items", [])
    victims, _, _ = classify(pods, ignore_daemonsets=True, force=True, delete_emptydir=True)
    for pod in victims:
        meta = pod["metadata"]
        say(f"evicting pod {meta['namespace']}/{meta['name']}")
        try:
            api.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}")
        except ApiError as exc:
            if exc.status != 404:
                raise
    deadline = clock() + timeout
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in victims}
    while names:
        left = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in api.get(
            "/api/v1/pods", fieldSelector=f"spec.nodeName={name}").get("items", [])}
        names &= left
        if names and clock() > deadline:
            raise CommandError(f"pods still on {name} after {timeout:g}s: "
                               + ", ".join("/".join(n) for n in sorted(names)))
        if names:
            sleep(0.5)
    say(f"node/{name} drained")


def cmd_remove(args):
    from cli.baremetal.credentials import ClusterCredentials

    home = ClusterDir(args.name)
    topology = home.require()
    try:
        host = topology.host(args.node)
    except KeyError:
        raise CommandError(f"no host {args.node!r} in cluster {args.name} (its hosts: "
                           f"{', '.join(h.name for h in topology.hosts)})") from None
    if host.control:
        raise CommandError(f"{host.name} is a control host (a store member): replace it with "
                           f"`steer store member replace {host.name} --with USER@HOST`")
    credentials = ClusterCredentials(home.pki_dir)
    with Reach(args.via_netns) as reach:
        api = AdminApi(credentials, reach, topology.control)
        try:
            drain(api, host.name, args.timeout)
            api.delete(f"/api/v1/nodes/{host.name}")
            say(f"node/{host.name} deleted")
        except ApiError as exc:
            if exc.status != 404:
                raise CommandError(f"removing node {host.name}: {exc}") from None
        except OSError as exc:
            raise CommandError(f"cannot reach the API server to drain {host.name}: {exc}") \
                from None
        ops = host_ops(args, credentials, reach)
        try:
            conn = ops.connect(host)
        except Exception as exc:        # a dead host: forget it anyway, say what is left
            say(f"{host.name}: cannot connect ({exc}); its services were not stopped\n"
                f"  fix: {ops.fix_for(exc)}")
            conn = None
        if conn is not None:
            try:
                ops.teardown(conn, host)
            finally:
                conn.close()
            say(f"{host.name}: services stopped, files removed")
    topology.hosts = [h for h in topology.hosts if h.name != host.name]
    home.save(topology, created=True)
    say(f"{host.name} removed from cluster {args.name}")
    return 0
