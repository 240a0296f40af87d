"""The host plan (agent/provision/plan.py) and its rendered units (units.py): pure checks."""

import configparser
import shlex
import tomllib

import pytest
import yaml

from agent.provision import plan as planmod
from agent.provision import units
from agent.provision.plan import ClusterSpec, HostSpec, PlanError

H1, H2, H3 = (HostSpec(f"h{n}", f"172.31.240.{n}", f"root@172.31.240.{n}") for n in (1, 2, 3))
H4 = HostSpec("h4", "172.31.240.4", "root@172.31.240.4")


def spec(**kwargs):
    base = dict(name="demo", version="0.1.0", control=(H1, H2, H3), workers=(H1, H4))
    return ClusterSpec(**{**base, **kwargs})


def credentials(cluster, host):
    return {name: f"<{name}>".encode() for c in planmod.credentials_needed(cluster, host)
            for name in c.files}


def plan_of(cluster, host):
    return planmod.plan_host(cluster, host, credentials(cluster, host))


def test_control_host_that_is_also_a_worker_runs_both_sets_of_services():
    plan = plan_of(spec(), H1)
    assert [s.name for s in plan.services] == [
        "steersman-store", "steersman-apiserver", "steersman-scheduler",
        "steersman-controller-manager", "containerd", "steersman-agent", "steersman-proxy"]
    assert [s.name for s in plan_of(spec(), H4).services] == [
        "containerd", "steersman-agent", "steersman-proxy"]
    assert [s.name for s in plan_of(spec(), H2).services] == list(planmod.CONTROL_SERVICES)


def test_store_peers_are_every_control_host_and_the_api_server_uses_all_members():
    plan = plan_of(spec(), H2)
    store = plan.service("steersman-store").argv
    assert store[0] == "/opt/steersman/0.1.0/venv/bin/steer-store"
    flags = dict(zip(store[1::2], store[2::2]))
    assert flags["--initial-cluster"] == ("h1=172.31.240.1:2380,h2=172.31.240.2:2380,"
                                          "h3=172.31.240.3:2380")
    assert flags["--peer-addr"] == "172.31.240.2:2380"
    assert flags["--client-addr"] == "172.31.240.2:2379"
    assert "--client-cert-auth" in store
    api = plan.service("steersman-apiserver").argv
    assert api[api.index("--store-endpoints") + 1] == (
        "172.31.240.1:2379,172.31.240.2:2379,172.31.240.3:2379")
    assert api[api.index("--bind") + 1] == "172.31.240.2:6443"


def test_worker_services_use_the_host_name_address_and_containerd_socket():
    plan = plan_of(spec(), H4)
    agent = plan.service("steersman-agent").argv
    assert agent[agent.index("--node-name") + 1] == "h4"
    assert agent[agent.index("--node-ip") + 1] == "172.31.240.4"
    assert agent[agent.index("--runtime") + 1] == "cri"
    assert agent[agent.index("--container-runtime-endpoint") + 1] == (
        "unix:///run/containerd/containerd.sock")
    assert plan.service("steersman-agent").after == ("containerd",)
    proxy = plan.service("steersman-proxy").argv
    assert proxy[1:3] == ("--mode", "nftables")
    assert plan.service("containerd").argv == (
        "/usr/bin/containerd", "--config", "/etc/containerd/config.toml")
    config = tomllib.loads(next(f for f in plan.files
                                if f.path == "/etc/containerd/config.toml").content.decode())
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert config["grpc"]["address"] == "/run/containerd/containerd.sock"
    assert cri["cni"]["conf_dir"] == "/etc/cni/net.d"
    assert cri["restrict_oom_score_adj"] is True


def test_workers_spread_over_the_api_servers_and_kubeconfigs_name_files_not_secrets():
    cluster = spec(workers=(H1, H4, HostSpec("h5", "172.31.240.5")))
    servers = [cluster.api_server_url(h) for h in cluster.workers]
    assert servers == ["https://172.31.240.1:6443", "https://172.31.240.2:6443",
                       "https://172.31.240.3:6443"]
    plan = plan_of(cluster, H4)
    kubeconfig = yaml.safe_load(next(f for f in plan.files
                                     if f.path.endswith("agent.kubeconfig")).content)
    assert kubeconfig["clusters"][0]["cluster"] == {
        "server": "https://172.31.240.2:6443", "certificate-authority": "/etc/steersman/pki/ca.crt"}
    assert kubeconfig["users"][0]["user"]["client-key"] == "/etc/steersman/pki/node.key"


def test_credentials_are_0600_in_pki_and_no_secret_is_on_a_command_line():
    cluster = spec()
    creds = credentials(cluster, H1)
    plan = planmod.plan_host(cluster, H1, creds)
    pki = [f for f in plan.files if f.path.startswith("/etc/steersman/pki/")]
    assert {f.path.rsplit("/", 1)[1] for f in pki} == set(creds)
    assert all(f.mode == 0o600 for f in pki)
    assert ("/etc/steersman/pki", 0o700) in plan.directories
    for service in plan.services:
        for secret in creds.values():
            assert secret.decode() not in service.command_line
    by_path = {f.path: f for f in plan.files}
    assert by_path["/etc/steersman/pki/store-server.key"].services == ("steersman-store",)
    assert "steersman-agent" in by_path["/etc/steersman/pki/ca.crt"].services


def test_missing_credentials_and_bad_hosts_are_named():
    cluster = spec()
    creds = credentials(cluster, H1)
    del creds["apiserver.key"]
    with pytest.raises(PlanError, match="apiserver.key"):
        planmod.plan_host(cluster, H1, creds)
    with pytest.raises(PlanError, match="1, 3 or 5"):
        spec(control=(H1, H2))
    with pytest.raises(PlanError, match="not an IP address"):
        spec(workers=(HostSpec("h9", "example.org"),))
    with pytest.raises(PlanError, match="lower-case"):
        spec(workers=(HostSpec("H_9", "172.31.240.9"),))


def test_apiserver_certificate_carries_the_door_and_service_names():
    needed = {c.name: c for c in planmod.credentials_needed(spec(), H1)}
    api = needed["apiserver"]
    assert {"172.31.240.1", "127.0.0.1", "10.96.0.1"} <= set(api.ip_addresses)
    assert {"localhost", "kubernetes.default.svc", "h1"} <= set(api.dns_names)
    assert needed["node-serving"].ip_addresses == ("172.31.240.1",)
    assert needed["store-server"].ca == "store"
    assert "store-server" not in {c.name for c in planmod.credentials_needed(spec(), H4)}


def test_a_version_change_changes_units_and_nothing_else():
    old, new = plan_of(spec(), H1), plan_of(spec(version="0.2.0"), H1)
    assert [f.content for f in old.files] == [f.content for f in new.files]
    old_units = units.service_files("systemd", old.services)
    new_units = units.service_files("systemd", new.services)
    changed = [a.path for a, b in zip(old_units, new_units) if a.content != b.content]
    assert changed == [f"/etc/systemd/system/{n}.service" for n in
                       ("steersman-store", "steersman-apiserver", "steersman-scheduler",
                        "steersman-controller-manager", "steersman-agent", "steersman-proxy")]


def test_systemd_unit_restarts_and_waits_for_the_network():
    plan = plan_of(spec(), H4)
    unit = units.service_file("systemd", plan.service("steersman-agent")).content.decode()
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit)
    assert parser["Service"]["Restart"] == "always"
    assert parser["Service"]["LimitNOFILE"] == "1048576"
    assert "network-online.target" in parser["Unit"]["After"]
    assert "containerd.service" in parser["Unit"]["After"]
    assert shlex.split(parser["Service"]["ExecStart"]) == list(
        plan.service("steersman-agent").argv)
    containerd = units.service_file("systemd", plan.service("containerd")).content.decode()
    assert "Delegate=yes" in containerd and "KillMode=process" in containerd


def test_supervisor_program_and_daemon_config():
    plan = plan_of(spec(), H4)
    files = units.service_files("supervisord", plan.services)
    assert files[0].path == "/etc/steersman/supervisor/supervisord.conf"
    daemon = configparser.ConfigParser(interpolation=None)
    daemon.read_string(files[0].content.decode())
    assert daemon["unix_http_server"]["file"] == "/run/steersman/supervisor.sock"
    assert daemon["unix_http_server"]["chmod"] == "0700"
    assert "inet_http_server" not in daemon
    program = configparser.ConfigParser(interpolation=None)
    program.read_string(next(f for f in files if f.path.endswith("steersman-agent.conf"))
                        .content.decode())
    section = program["program:steersman-agent"]
    assert section["autorestart"] == "true" and section["stopasgroup"] == "true"
    assert section["stdout_logfile"] == "/var/log/steersman/steersman-agent.log"
    assert shlex.split(section["command"]) == list(plan.service("steersman-agent").argv)
    containerd = next(f for f in files if f.path.endswith("/containerd.conf")).content.decode()
    assert "stopasgroup=false" in containerd        # shims outlive a restart
    assert 'environment=PATH="' in containerd


def test_unknown_manager_is_refused():
    with pytest.raises(ValueError, match="unknown service manager"):
        units.unit_path("upstart", "x")


def flag_map(argv):
    """{flag: value} of ``--flag value`` pairs (bare flags map to None)."""
    flags, args = {}, list(argv[1:])
    while args:
        flag = args.pop(0)
        flags[flag] = args.pop(0) if args and not args[0].startswith("--") else None
    return flags


def test_scheduler_and_controller_manager_serve_metrics_on_the_host_address():
    from control.controllers import manager
    from control.scheduler import main as scheduler_main
    plan = plan_of(spec(), H2)
    by_path = {f.path: f for f in plan.files}
    for unit, name, port, parse in (
            ("steersman-scheduler", "scheduler", "10259", scheduler_main.parse_args),
            ("steersman-controller-manager", "controller-manager", "10257", manager.parse_args)):
        argv = plan.service(unit).argv
        flags = flag_map(argv)
        assert flags["--secure-port"] == port
        assert flags["--bind-address"] == "172.31.240.2"
        assert flags["--tls-cert-file"] == f"/etc/steersman/pki/{name}-serving.crt"
        assert flags["--tls-private-key-file"] == f"/etc/steersman/pki/{name}-serving.key"
        assert flags["--client-ca-file"] == "/etc/steersman/pki/ca.crt"
        for file in (f"{name}-serving.crt", f"{name}-serving.key", "ca.crt"):
            placed = by_path[f"/etc/steersman/pki/{file}"]
            assert placed.mode == 0o600 and unit in placed.services, file
        # The component's own parser takes the command line as the plan writes it.
        args = parse(list(argv[1:]))
        assert (args.secure_port, args.bind_address) == (int(port), "172.31.240.2")
    assert by_path["/etc/steersman/pki/scheduler-serving.key"].services == ("steersman-scheduler",)


def test_store_member_serves_metrics_with_its_certificate_to_cluster_ca_clients():
    from store import node_main
    plan = plan_of(spec(), H3)
    argv = plan.service("steersman-store").argv
    flags = flag_map(argv)
    assert flags["--metrics-addr"] == "172.31.240.3:2381"
    assert flags["--metrics-cert-file"] == "/etc/steersman/pki/store-server.crt"
    assert flags["--metrics-key-file"] == "/etc/steersman/pki/store-server.key"
    # Scrapers hold cluster-CA certificates (O=system:monitoring), never the store CA's.
    assert flags["--metrics-client-ca-file"] == "/etc/steersman/pki/ca.crt"
    ca = next(f for f in plan.files if f.path == "/etc/steersman/pki/ca.crt")
    assert "steersman-store" in ca.services and ca.mode == 0o600
    assert node_main.build_parser().parse_args(list(argv[1:])).metrics_addr == "172.31.240.3:2381"


def test_metrics_serving_certificates_name_the_host_and_only_control_hosts_get_them():
    needed = {c.name: c for c in planmod.credentials_needed(spec(), H2)}
    for name, common_name in (("scheduler-serving", "kube-scheduler"),
                              ("controller-manager-serving", "kube-controller-manager")):
        cert = needed[name]
        assert (cert.kind, cert.ca, cert.usage, cert.common_name) == (
            "cert", "cluster", "server", common_name)
        assert "172.31.240.2" in cert.ip_addresses and "h2" in cert.dns_names
        assert f"{common_name}.kube-system.svc" in cert.dns_names
    worker = {c.name for c in planmod.credentials_needed(spec(), H4)}
    assert not worker & {"scheduler-serving", "controller-manager-serving"}
    assert "--secure-port" not in plan_of(spec(), H4).service("steersman-agent").argv
