"""`steer cluster create|status|destroy`: a cluster on machines reached over SSH.

Each cluster is kept on the admin's machine in ``~/.steer/clusters/<name>/``: its
record (cluster.json: the hosts and version), its PKI (pki/, 0700) and the admin's
kubeconfig (0600). The hosts are reached with paramiko (agent/provision/ssh.py):
host keys from ``--known-hosts`` or ``--fingerprint``, keys from ``-i`` or an SSH
agent; a password only from the environment (STEER_SSH_PASSWORD), never on argv.
"""

import base64
import importlib.metadata
import json
import os
import shutil
import time

import yaml

from cli import pki
from cli.baremetal import topology as topo
from cli.baremetal.fleet import StepError, each
from cli.baremetal.reach import Reach
from cli.errors import CommandError
from cli.local_pki import kubeconfig_document
from control.objects import conditions

PASSWORD_ENV = "STEER_SSH_PASSWORD"


def say(text):
    print(text, flush=True)


def add_ssh_flags(parser):
    ssh = parser.add_argument_group("reaching the hosts (SSH)")
    ssh.add_argument("--known-hosts", metavar="FILE",
                     help="known_hosts file holding every host's key (default: "
                          "~/.ssh/known_hosts)")
    ssh.add_argument("--fingerprint", action="append", default=[], metavar="HOST=SHA256:...",
                     help="accept this host key fingerprint for HOST (repeatable)")
    ssh.add_argument("-i", "--identity", metavar="KEY",
                     help="private key file (default: the SSH agent's keys)")
    ssh.add_argument("--via-netns", metavar="PATH",
                     help="reach the hosts from inside this network namespace: for the "
                          "simulated test hosts")


class ClusterDir:
    """``~/.steer/clusters/<name>``: record, PKI and kubeconfig of one cluster."""

    def __init__(self, name):
        if not name or "/" in name or name.startswith("."):
            raise CommandError(f"--name {name!r}: a cluster name is a plain word")
        self.name = name
        self.path = os.path.join(topo.clusters_home(), name)
        self.record_path = os.path.join(self.path, "cluster.json")
        self.pki_dir = os.path.join(self.path, "pki")
        self.kubeconfig = os.path.join(self.path, "kubeconfig")

    def load(self):
        try:
            with open(self.record_path) as handle:
                record = json.load(handle)
        except FileNotFoundError:
            return None, False
        return topo.Topology.from_json(json.dumps(record["topology"])), record.get("created")

    def require(self):
        topology, _ = self.load()
        if topology is None:
            raise CommandError(f"no cluster {self.name!r} in {topo.clusters_home()}: "
                               "`steer cluster create --name NAME --ssh ...` makes one")
        return topology

    def save(self, topology, created):
        record = {"topology": json.loads(topology.to_json()), "created": created}
        pki.write_private(self.record_path, json.dumps(record, indent=2) + "\n")


def fingerprints(args):
    found = {}
    for text in args.fingerprint:
        host, sep, value = text.partition("=")
        if not sep or not value.startswith("SHA256:"):
            raise CommandError(f"--fingerprint {text!r}: write HOST=SHA256:<base64>")
        found[host] = value
    return found


def registry_mirrors(args):
    mirrors = []
    for text in args.registry_mirror:
        registry, sep, url = text.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise CommandError(f"--registry-mirror {text!r}: write REGISTRY=http(s)://HOST:PORT")
        mirrors.append((registry, url))
    return mirrors


def release_version():
    return importlib.metadata.version("steersman")


def host_ops(args, credentials, reach):
    """The SSH layer (imported here: paramiko is slow to import and only these verbs use it)."""
    from cli.baremetal.hostops import HostOps
    known_hosts = args.known_hosts or os.path.expanduser("~/.ssh/known_hosts")
    return HostOps(credentials, reach, known_hosts=known_hosts, fingerprints=fingerprints(args),
                   key_filename=args.identity, password=os.environ.get(PASSWORD_ENV),
                   wheelhouse_dir=getattr(args, "wheelhouse", None))


# -- create -------------------------------------------------------------------------------
def cmd_create(args):
    from cli.baremetal.credentials import ClusterCredentials
    from cli.baremetal.health import Health
    from cli.baremetal.orchestrate import Create

    home = ClusterDir(args.name)
    recorded, created = home.load()
    try:
        topology = topo.build(args.name, release_version(), topo.parse_targets(args.ssh),
                              topo.parse_targets(args.workers), args.dedicated_control,
                              args.service_cidr, args.pod_cidr)
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from None
    if recorded and created and [h.name for h in recorded.control] != \
            [h.name for h in topology.control]:
        raise CommandError(f"cluster {args.name} has the control hosts "
                           f"{', '.join(h.name for h in recorded.control)}: change them with "
                           "`steer store member replace`, or pick another --name")
    if recorded and created and recorded.version != topology.version:
        raise CommandError(f"cluster {args.name} runs {recorded.version}, this steer is "
                           f"{topology.version}: `steer cluster upgrade` changes the version")
    if recorded and created and {h.name for h in recorded.hosts} - \
            {h.name for h in topology.hosts}:
        gone = {h.name for h in recorded.hosts} - {h.name for h in topology.hosts}
        raise CommandError(f"{', '.join(sorted(gone))} of cluster {args.name} is not named: "
                           "`steer node remove NAME` takes a worker out")
    seed = None
    restore_from = getattr(args, "restore_from", None)
    if restore_from:
        if created:
            raise CommandError(f"cluster {args.name} is running: restore goes onto fresh hosts "
                               "after `steer cluster destroy` (without --purge: the restored "
                               "objects need the cluster's keys)")
        if not os.path.exists(os.path.join(home.pki_dir, pki.CA_CERT)):
            raise CommandError(f"no PKI of cluster {args.name} in {home.pki_dir}: secrets "
                               "and tokens in the snapshot need the cluster's own keys")
        with open(restore_from, "rb") as handle:
            snapshot = handle.read()
        say(f"restoring {restore_from} ({len(snapshot)} bytes) into the new store members")
    topology.sandbox_image = args.sandbox_image or ""
    topology.registry_mirrors = [list(m) for m in registry_mirrors(args)]
    try:
        topo.to_spec(topology)          # the plan's own checks, before any host is touched
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    say(f"cluster {args.name}: {len(topology.control)} control hosts, "
        f"{len(topology.workers)} nodes, release {topology.version}")
    started = time.monotonic()
    credentials = ClusterCredentials(home.pki_dir)
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)
        health = Health(credentials, reach, timeout=args.timeout)
        if restore_from:
            def seed(conn, host):
                revision = ops.seed_store(conn, host, topology, snapshot)
                say(f"{host.name}: store data restored (revision {revision})")
        try:
            before = {h.name for h in recorded.hosts} if recorded and created else set()
            result = Create(topology, ops, health, say,
                            new_hosts={h.name for h in topology.hosts} - before,
                            keep_on_failure=args.keep_on_failure, seed=seed).run()
        except StepError as exc:
            raise CommandError(f"create failed on {exc}") from None
        if restore_from:
            forget_old_nodes(topology, credentials, reach)
    home.save(topology, created=True)
    write_kubeconfig(home.kubeconfig, credentials, topology)
    seconds = time.monotonic() - started
    say("")
    say(f"cluster {args.name} is up in {seconds:.1f}s: "
        + (f"{len(result['changed'])} hosts changed" if result["changed"] else "nothing changed"))
    say(f"  export KUBECONFIG={home.kubeconfig}")
    if args.via_netns:
        first = topology.control[0]
        say("  the API server is inside the namespace; open a door to it and use that port:")
        say(f"    python -m agent.netns_door --listen 127.0.0.1:6443 --netns {args.via_netns} "
            f"--to {first.address}:6443 &")
        say("    kubectl --server https://127.0.0.1:6443 get nodes")
    return 0


def forget_old_nodes(topology, credentials, reach):
    """Delete the restored Nodes of hosts the cluster no longer has (restored elsewhere).

    A restore onto hosts with new addresses brings back the old hosts' Nodes, which
    no agent will ever renew; deleting them lets the pod garbage collector free
    their pods, whose controllers then recreate them on the new nodes.
    """
    from cli.baremetal.api import AdminApi, ApiError
    api = AdminApi(credentials, reach, topology.control)
    names = {h.name for h in topology.workers}
    try:
        nodes = api.get("/api/v1/nodes").get("items", [])
        for node in nodes:
            name = node["metadata"]["name"]
            if name not in names:
                api.delete(f"/api/v1/nodes/{name}")
                say(f"node/{name} deleted: a host of the backed-up cluster, not of this one")
    except (ApiError, OSError) as exc:
        say(f"could not delete the old hosts' Nodes ({exc}): `kubectl delete node NAME` "
            "them, or their pods stay bound to them")


def write_kubeconfig(path, credentials, topology):
    """The admin's kubeconfig (0600): the first control host, certificate data embedded."""
    cert, key = credentials.admin_cert()
    server = f"https://{topology.control[0].address}:6443"
    document = kubeconfig_document(
        server, "admin", {"certificate-authority-data": _b64(credentials.ca_file)},
        {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)},
        namespace="default")
    pki.write_private(path, yaml.safe_dump(document, sort_keys=False))


def _b64(path):
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode("ascii")


# -- status -------------------------------------------------------------------------------
def cmd_status(args):
    from agent.provision import plan as planmod
    from agent.provision import services
    from cli.baremetal.credentials import ClusterCredentials
    from cli.baremetal.health import Health

    home = ClusterDir(args.name)
    topology = home.require()
    credentials = ClusterCredentials(home.pki_dir)
    rows = [("HOST", "ROLES", "SERVICE", "STATE", "PID")]
    healthy = True
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)

        def look(host):
            conn = ops.connect(host)
            try:
                names = ((planmod.CONTROL_SERVICES if host.control else ()) +
                         (planmod.WORKER_SERVICES if host.worker else ()))
                return [services.service_status(conn, n, manager=ops.manager(conn))
                        for n in names]
            finally:
                conn.close()

        for outcome in each(topology.hosts, look):
            if outcome.error is not None:
                healthy = False
                rows.append((outcome.host.name, outcome.host.roles, "-",
                             f"unreachable: {outcome.error}", "-"))
                continue
            for status in outcome.value:
                healthy &= status.running
                rows.append((outcome.host.name, outcome.host.roles, status.name, status.state,
                             status.pid or "-"))
        _table(rows)
        health = Health(credentials, reach, timeout=5)
        say("")
        rows = [("NODE", "STATUS")]
        try:
            nodes = health.get_json(topology.control[0], "/api/v1/nodes") or {}
        except OSError as exc:
            say(f"API server on {topology.control[0].name}: not answering ({exc})")
            return 1
        for node in nodes.get("items", []):
            ready = conditions.is_ready(node)
            healthy &= ready
            rows.append((node["metadata"]["name"], "Ready" if ready else "NotReady"))
        _table(rows)
    return 0 if healthy else 1


# -- destroy ------------------------------------------------------------------------------
def cmd_destroy(args):
    from cli.baremetal.credentials import ClusterCredentials

    home = ClusterDir(args.name)
    topology = home.require()
    if not args.yes:
        if input(f"destroy cluster {args.name} on {len(topology.hosts)} hosts, its data "
                  "included? [y/N] ").strip().lower() not in ("y", "yes"):
            raise CommandError("not destroyed")
    credentials = ClusterCredentials(home.pki_dir)
    failed = []
    with Reach(args.via_netns) as reach:
        ops = host_ops(args, credentials, reach)

        def destroy(host):
            conn = ops.connect(host)
            try:
                ops.teardown(conn, host)
            finally:
                conn.close()

        for outcome in each(topology.hosts, destroy):
            if outcome.error is None:
                say(f"{outcome.host.name}: services stopped, files removed")
            else:
                failed.append(outcome.host.name)
                say(f"{outcome.host.name}: {outcome.error}\n  fix: {ops.fix_for(outcome.error)}")
    if failed:
        raise CommandError(f"could not clean {', '.join(failed)}: run destroy again once "
                           "they answer")
    if args.purge:
        shutil.rmtree(home.path, ignore_errors=True)
        say(f"removed {home.path} (its CA and the admin's kubeconfig)")
    else:
        home.save(topology, created=False)
        say(f"kept {home.path} (CA, backups); --purge removes it")
    return 0


def _table(rows):
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


# -- backup -------------------------------------------------------------------------------
def cmd_backup(args):
    """Save a consistent store snapshot on this machine (0600), as etcdctl snapshot save."""
    from cli.baremetal.credentials import ClusterCredentials
    from store.client import StoreClient, StoreError

    home = ClusterDir(args.name)
    topology = home.require()
    credentials = ClusterCredentials(home.pki_dir)
    path = args.file or os.path.join(home.path, "backups",
                                     time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".snapshot")
    os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
    with Reach(args.via_netns) as reach:
        endpoints = [reach.endpoint(h.address, 2379) for h in topology.control]
        try:
            with StoreClient(endpoints, timeout=60.0, **credentials.store_admin_tls()) as client:
                revision = client.snapshot_save(path + ".tmp")
        except (StoreError, OSError) as exc:
            raise CommandError(f"backup of cluster {args.name}: {exc}") from None
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    say(f"saved store snapshot at revision {revision} to {path} "
        f"({os.path.getsize(path)} bytes)")
    return 0
