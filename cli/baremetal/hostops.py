"""What `steer cluster ...` does to one host, over SSH: the real ``ops`` of orchestrate.py.

A thin layer over agent/provision (ssh, hostcheck, install, wheelhouse, plan,
services): it holds the SSH options of the command line, turns a Topology host into
the plan's HostSpec, hands each host exactly the credentials its plan asks for, and
says for every kind of failure what the admin should do about it.
"""

import os
import shlex

from agent.provision import install, services, ssh, units, wheelhouse
from agent.provision import plan as planmod
from cli.baremetal.topology import split_target, to_spec

#: Directories Steersman owns on a host; emptied by a teardown (simulated hosts
#: bind-mount them, so their contents go and the mount points stay).
OWNED_DIRS = (planmod.ETC_DIR, planmod.DATA_DIR, planmod.LOG_DIR, planmod.OPT_DIR,
              planmod.RUN_DIR)
PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class HostOps:
    """SSH to hosts and provision them; one instance per command run."""

    def __init__(self, credentials, reach, known_hosts=None, fingerprints=None,
                 key_filename=None, password=None, cache_dir=None, project_dir=PROJECT_DIR,
                 wheelhouse_dir=None):
        self.pki, self.reach = credentials, reach
        self.known_hosts, self.fingerprints = known_hosts, fingerprints or {}
        self.key_filename, self.password = key_filename, password
        self.cache_dir = cache_dir         # None: wheelhouse.default_cache_dir()
        self.project_dir = project_dir
        self.wheelhouse_dir = wheelhouse_dir  # a build to install as it is (--wheelhouse)
        self._managers = {}

    # -- connect and check --------------------------------------------------------------
    def connect(self, host):
        _, address, port = split_target(host.target)
        target = ssh.HostTarget.parse(host.target)
        fingerprint = self.fingerprints.get(address) or self.fingerprints.get(host.name)
        return ssh.connect(target, known_hosts=self.known_hosts, fingerprint=fingerprint,
                           key_filename=self.key_filename, password=self.password,
                           sock=self.reach.ssh_sock(address, port), timeout=10)

    def fix_for(self, error):
        """What the admin should do about ``error`` (one line)."""
        if isinstance(error, ssh.HostKeyError):
            return ("compare the fingerprint with the host's own (`ssh-keygen -lf "
                    "/etc/ssh/ssh_host_ed25519_key.pub` on it), then add its key to the "
                    "--known-hosts file or pass --fingerprint HOST=SHA256:...")
        if isinstance(error, ssh.AuthError):
            return ("check the user and key: -i KEY, an SSH agent holding the key, or the "
                    "key in the user's ~/.ssh/authorized_keys on the host")
        if isinstance(error, ssh.RemoteCommandError):
            return "run the command on the host by hand to see why it failed"
        if isinstance(error, (OSError, ssh.SSHError)):
            return "is the host up and its SSH port reachable from here (and --via-netns right)?"
        return ""

    def check(self, conn, host):
        from agent.provision import hostcheck
        ports = planmod.Ports()
        wanted = [ports.store_client, ports.store_peer, ports.apiserver, ports.store_metrics,
                  ports.scheduler, ports.controller_manager] if host.control else []
        if host.worker:     # containerd's stream port: its own, held on a re-run
            wanted.append(ports.agent)
        return hostcheck.check_host(conn, ports=wanted)

    # -- release ------------------------------------------------------------------------
    def wheelhouse(self):
        if self.wheelhouse_dir:
            wheelhouse.read_manifest(self.wheelhouse_dir)     # a clear error if it is not one
            return self.wheelhouse_dir
        directory, _ = wheelhouse.build_wheelhouse(self.project_dir, self.cache_dir)
        return directory

    def install(self, conn, wheelhouse_dir, version):
        return install.install_release(conn, wheelhouse_dir, version).changed

    # -- plan and apply -----------------------------------------------------------------
    def credentials(self, topology):
        self.pki.ensure_cas()

    def plan(self, topology, host):
        spec = to_spec(topology)
        spec_host = spec.host(host.name)
        return planmod.plan_host(spec, spec_host, self.pki.host_files(spec, spec_host))

    def manager(self, conn):
        key = id(conn)
        if key not in self._managers:
            self._managers[key] = services.detect_manager(conn)
        return self._managers[key]

    def existing_services(self, conn, plan):
        manager = self.manager(conn)
        return {s.name for s in plan.services
                if conn.read_bytes(units.unit_path(manager, s.name)) is not None}

    def apply(self, conn, plan):
        return services.apply_host(conn, plan, manager=self.manager(conn))

    def restart(self, conn, names):
        """Restart services whose release was rebuilt under the same version."""
        if self.manager(conn) == "systemd":
            conn.run(["systemctl", "restart", *(f"{n}.service" for n in names)], sudo=True)
        else:
            conn.run([*services.SUPERVISORCTL, "restart", *names], sudo=True, timeout=120)

    def stop(self, conn, names):
        """Stop services (they start again when a plan that names them is applied)."""
        if self.manager(conn) == "systemd":
            conn.run(["systemctl", "stop", *(f"{n}.service" for n in names)], sudo=True)
        else:
            conn.run([*services.SUPERVISORCTL, "stop", *names], sudo=True, timeout=120)

    def peer_protocol(self, conn):
        """The store peer protocol of the member this control host runs (None: none runs)."""
        from cli.baremetal import peer_protocol
        return peer_protocol.of_host(conn, self.manager(conn))

    @staticmethod
    def release_protocol(wheelhouse_dir):
        """The store peer protocol of the release in a wheelhouse."""
        from cli.baremetal import peer_protocol
        return peer_protocol.of_wheelhouse(wheelhouse_dir,
                                           wheelhouse.read_manifest(wheelhouse_dir))

    @staticmethod
    def describe(changes):
        """Short words for what an apply changed ([] when nothing)."""
        what = []
        if changes.files or changes.modes or changes.directories:
            count = len(changes.files) + len(changes.modes)
            what.append(f"{count} file{'s' if count != 1 else ''} written")
        what += [f"started {n}" for n in changes.started]
        what += [f"restarted {n}" for n in changes.restarted]
        what += [f"removed {n}" for n in changes.removed]
        return what

    def seed_store(self, conn, host, topology, snapshot):
        """Put ``snapshot`` (bytes) into ``host``'s empty store data dir (python -m store.restore)."""
        spec = to_spec(topology)
        store_dir = f"{planmod.DATA_DIR}/store"
        path = f"{planmod.DATA_DIR}/restore.snapshot"
        conn.run(f"install -d -m 700 {planmod.DATA_DIR} {store_dir}", sudo=True)
        conn.put_bytes(snapshot, path, mode=0o600)
        argv = [planmod.bin_path(topology.version, "python"), "-m", "store.restore", path]
        for member in spec.control:
            argv += ["--member", member.name, f"{member.address}:{spec.ports.store_peer}",
                     f"{member.address}:{spec.ports.store_client}", store_dir]
        try:
            result = conn.run(argv, sudo=True, timeout=300)
        finally:
            conn.run(["rm", "-f", path], sudo=True, check=False)
        return result.stdout.decode().strip()

    # -- undo ---------------------------------------------------------------------------
    def teardown(self, conn, host, plan=None):
        """Stop every Steersman service on the host and remove what was installed.

        containerd's shims (and so the pods' containers) outlive containerd; the
        release's own cleanup (agent/provision/containerd.py) ends them by pid after
        the services have stopped, then their mounts and cgroups go.
        """
        try:
            services.stop_all(conn, manager=self.manager(conn))
        except services.ProvisionError:
            pass                    # no service manager: nothing was started
        if host.worker:
            cleanup = ("from agent.provision import containerd, plan\n"
                       f"paths = plan.host_containerd_paths({host.name!r}, "
                       f"{planmod.Ports().containerd_stream})\n"
                       "containerd.stop_containerd(paths, None)\n"
                       "from agent.network import nftproxy\n"
                       "nftproxy.cleanup(None)      # the tables outlive the proxy\n")
            python = f"{planmod.OPT_DIR}/current/venv/bin/python"
            conn.run(f"[ ! -x {python} ] || {python} -", sudo=True, check=False,
                     timeout=120, input=cleanup.encode())
        outside = [f.path for f in (plan.files if plan else ())
                   if not f.path.startswith(tuple(d + "/" for d in OWNED_DIRS))]
        script = ["for d in %s; do" % " ".join(OWNED_DIRS),
                  '  [ -d "$d" ] && find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +',
                  '  rmdir "$d" 2>/dev/null || true',
                  "done",
                  f"rm -f {planmod.SYSTEMD_DIR}/steersman-*.service",
                  f"[ -d {services.SYSTEMD_MARKER} ] && systemctl daemon-reload || true"]
        if outside:
            script.append("rm -f " + " ".join(shlex.quote(p) for p in outside))
        conn.run("\n".join(script), sudo=True, check=True, timeout=120)
