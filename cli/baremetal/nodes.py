"""`steer node join USER@HOST` and `steer node remove NAME` on a bare-metal cluster.

join: the new host is one more worker of the recorded cluster, brought up by the
same steps as `steer cluster create` (cli/baremetal/orchestrate.py) over the bigger
host list: the hosts already there are checked and found unchanged, the new one is
checked, installed and started, and only it is torn down if the join fails. By
default no node certificate is issued here: a bootstrap token (cli/baremetal/
jointoken.py, a kube-system Secret with an expiry) goes to the host, its agent asks
for its client and serving certificates by CSRs, the controller manager approves
and signs them (kubelet's TLS bootstrap), and the token's Secret is deleted once the
node is Ready. ``--issue-node-certificate`` issues them here with the cluster CA
instead (the path `steer cluster create` takes for its workers).

remove: drain the node as `kubectl drain --ignore-daemonsets --delete-emptydir-data
--force` does (it is leaving: its pods are recreated elsewhere by their
controllers), delete the Node, stop and remove every service and file on the host,
forget it. Control hosts leave through `steer store member replace`.
"""

import dataclasses
import datetime
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
    by_token = not args.issue_node_certificate
    if by_token:
        added = dataclasses.replace(added, bootstrap=True)
    topology.hosts.append(added)
    say(f"joining {added.name} to cluster {args.name} as a worker; "
        + ("it asks for its certificates with a bootstrap token" if by_token else
           "its certificates are issued by the cluster CA on this machine"))
    credentials = ClusterCredentials(home.pki_dir)
    started = time.monotonic()
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)
        health = Health(credentials, reach, timeout=args.timeout)
        api = AdminApi(credentials, reach, topology.control)
        token = make_join_token(api, credentials, added.name, args.token_ttl) \
            if by_token else None
        try:
            Create(topology, ops, health, say, new_hosts={added.name},
                   keep_on_failure=args.keep_on_failure).run()
        except StepError as exc:
            raise CommandError(f"join failed on {exc}") from None
        finally:
            if token is not None:
                retire_join_token(api, token)
    home.save(topology, created=True)
    write_kubeconfig(home.kubeconfig, credentials, topology)
    say(f"node {added.name} joined and Ready in {time.monotonic() - started:.1f}s")
    return 0


def make_join_token(api, credentials, node_name, ttl):
    """Create a bootstrap token for ``node_name`` in the cluster and keep it for its plan."""
    from cli.baremetal import jointoken
    token = jointoken.new_token()
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        jointoken.create(api, token, node_name, now, ttl)
    except (ApiError, OSError) as exc:
        raise CommandError(f"cannot create the bootstrap token for {node_name}: {exc}\n"
                           "  fix: the cluster's API servers must answer (`steer cluster "
                           "status`); or join with --issue-node-certificate") from None
    credentials.save_bootstrap_token(node_name, token)
    say(f"bootstrap token {jointoken.secret_name(token)} made (expires in {ttl:g}s)")
    return token


def retire_join_token(api, token):
    """Delete the token's Secret: it has joined its node (or failed to) and is spent."""
    from cli.baremetal import jointoken
    try:
        jointoken.delete(api, token)
        say(f"bootstrap token {jointoken.secret_name(token)} deleted")
    except (ApiError, OSError) as exc:
        say(f"could not delete bootstrap token {jointoken.secret_name(token)} ({exc}); "
            "it expires by itself")


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
