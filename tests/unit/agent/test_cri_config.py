"""CRI sandbox and container configs built from pod specs (no containerd)."""

import os

import pytest

from agent import volumes
from agent.env import ConfigError
from agent.paths import UnsafePath
from agent.runtime.base import ContainerConfig, Mount
from agent.runtime.cri import api_pb2, containerconfig, sandbox
from agent.runtime.cri import labels as labelmod


def _pod(spec=None, **meta):
    containers = [{"name": "c", "image": "busybox"}]
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u-1", **meta},
            "spec": {"containers": containers, **(spec or {})}}


def _sandbox(pod, **kw):
    return sandbox.build(pod, node="n1", attempt=kw.pop("attempt", 0),
                         log_directory="/data/pods/u-1/logs", cgroup_parent="/steer/n1/podu-1",
                         **kw)


def test_sandbox_metadata_labels_log_dir_and_cgroup():
    config = _sandbox(_pod(labels={"app": "web"}), attempt=2)
    assert (config.metadata.name, config.metadata.namespace, config.metadata.uid,
            config.metadata.attempt) == ("web", "ns", "u-1", 2)
    assert config.hostname == "web" and config.log_directory == "/data/pods/u-1/logs"
    assert config.linux.cgroup_parent == "/steer/n1/podu-1"
    assert config.labels["app"] == "web" and config.labels[labelmod.POD_UID] == "u-1"
    assert config.labels[labelmod.NODE] == "n1" and config.labels[labelmod.MANAGED] == "true"
    options = config.linux.security_context.namespace_options
    assert (options.network, options.pid, options.ipc) == \
        (api_pb2.POD, api_pb2.CONTAINER, api_pb2.POD)


@pytest.mark.parametrize("spec, network, pid, hostname", [
    ({"hostNetwork": True}, api_pb2.NODE, api_pb2.CONTAINER, ""),
    ({"shareProcessNamespace": True}, api_pb2.POD, api_pb2.POD, "web"),
    ({"hostPID": True, "hostname": "h1"}, api_pb2.POD, api_pb2.NODE, "h1"),
])
def test_sandbox_namespaces_and_hostname(spec, network, pid, hostname):
    config = _sandbox(_pod(spec))
    options = config.linux.security_context.namespace_options
    assert (options.network, options.pid, config.hostname) == (network, pid, hostname)


def test_port_mappings_only_for_host_ports():
    pod = _pod()
    pod["spec"]["containers"][0]["ports"] = [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
        {"containerPort": 9090}]
    mappings = [(m.protocol, m.container_port, m.host_port, m.host_ip)
                for m in _sandbox(pod).port_mappings]
    assert mappings == [(api_pb2.TCP, 80, 8080, ""), (api_pb2.UDP, 53, 5353, "127.0.0.1")]


def test_dns_from_the_node_and_the_pod(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 10.0.0.1\nsearch a.example b.example\n"
                      "options ndots:2\n")
    host = sandbox.read_resolv_conf(str(resolv))
    assert host == (["10.0.0.1"], ["a.example", "b.example"], ["ndots:2"])
    pod = _pod({"dnsConfig": {"nameservers": ["10.0.0.2"], "searches": ["c.example"],
                              "options": [{"name": "ndots", "value": "5"}]}})
    dns = _sandbox(pod, host_dns=host).dns_config
    assert list(dns.servers) == ["10.0.0.1", "10.0.0.2"]
    assert list(dns.searches) == ["a.example", "b.example", "c.example"]
    assert list(dns.options) == ["ndots:5"]
    none = _sandbox(_pod({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"]}}),
                    host_dns=host).dns_config
    assert list(none.servers) == ["1.2.3.4"] and not none.searches
    assert sandbox.read_resolv_conf("") == ([], [], [])
    nothing = _sandbox(_pod(), host_dns=sandbox.read_resolv_conf("")).dns_config
    assert not nothing.servers and list(nothing.options) == ["ndots:1"]


def test_pod_security_context_and_privileged_sandbox():
    pod = _pod({"securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                    "supplementalGroups": [4000],
                                    "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}})
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    config = _sandbox(pod)
    context = config.linux.security_context
    assert context.run_as_user.value == 1000 and context.run_as_group.value == 3000
    assert list(context.supplemental_groups) == [4000, 2000] and context.privileged
    assert dict(config.linux.sysctls) == {"net.core.somaxconn": "1024"}


def _container(pod, spec, **kw):
    spec = {"name": "c", "image": "busybox", **spec}
    pod["spec"]["containers"] = [spec]
    defaults = dict(pod_uid="u-1", pod_key="ns/web", name="c", attempt=1,
                    command=spec.get("command", []), env={"A": "1"}, workdir="",
                    log_path="/data/pods/u-1/logs/c/1.log", image="sha256:abc",
                    args=spec.get("args", []), mounts=[], pod=pod, spec=spec,
                    pod_dir="/data/pods/u-1")
    defaults.update(kw)
    return ContainerConfig(**defaults)


def test_container_command_args_env_labels_log_path():
    config = _container(_pod(), {"command": ["sh", "-c"], "args": ["echo hi"],
                                 "workingDir": "/work", "tty": True}, workdir="/work")
    built = containerconfig.build(config, node="n1")
    assert list(built.command) == ["sh", "-c"] and list(built.args) == ["echo hi"]
    assert built.working_dir == "/work" and built.tty and not built.stdin
    assert [(e.key, e.value) for e in built.envs] == [("A", "1")]
    assert built.image.image == "sha256:abc"
    assert (built.metadata.name, built.metadata.attempt) == ("c", 1)
    assert built.log_path == "c/1.log"
    assert built.labels[labelmod.CONTAINER_NAME] == "c" and \
        built.labels[labelmod.POD_UID] == "u-1"
    assert built.annotations[labelmod.ATTEMPT] == "1" and \
        built.annotations[labelmod.INIT] == "false"
    assert built.annotations[labelmod.LOG_PATH] == "/data/pods/u-1/logs/c/1.log"


def test_no_command_leaves_the_image_entrypoint():
    built = containerconfig.build(_container(_pod(), {}), node="n1")
    assert not built.command and not built.args


@pytest.mark.parametrize("resources, quota, period, shares, memory", [
    ({}, 0, 0, 2, 0),
    ({"limits": {"cpu": "500m", "memory": "16Mi"}}, 50_000, 100_000, 512, 16 * 2 ** 20),
    ({"requests": {"cpu": "250m"}}, 0, 0, 256, 0),
    ({"requests": {"cpu": "1m"}, "limits": {"cpu": "2"}}, 200_000, 100_000, 2, 0),
    ({"limits": {"cpu": "5m"}}, 1_000, 100_000, 5, 0),
])
def test_resources(resources, quota, period, shares, memory):
    built = containerconfig.build(_container(_pod(), {"resources": resources}), node="n1")
    res = built.linux.resources
    assert (res.cpu_quota, res.cpu_period, res.cpu_shares, res.memory_limit_in_bytes) == \
        (quota, period, shares, memory)


def test_security_context_container_over_pod():
    pod = _pod({"securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000}})
    spec = {"securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": True,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"],
                                                 "drop": ["ALL"]}}}
    context = containerconfig.build(_container(pod, spec), node="n1").linux.security_context
    assert context.run_as_user.value == 1001 and context.run_as_group.value == 1000
    assert context.readonly_rootfs and context.no_new_privs and not context.privileged
    assert list(context.capabilities.add_capabilities) == ["NET_ADMIN", "SYS_TIME"]
    assert list(context.capabilities.drop_capabilities) == ["ALL"]
    assert list(context.supplemental_groups) == [2000]
    plain = containerconfig.build(_container(_pod(), {}), node="n1").linux.security_context
    assert not plain.HasField("run_as_user") and not plain.no_new_privs


def test_run_as_group_without_user_takes_the_image_uid():
    spec = {"securityContext": {"runAsGroup": 5}}
    context = containerconfig.build(_container(_pod(), spec), node="n1",
                                    image_user=(7, "")).linux.security_context
    assert (context.run_as_user.value, context.run_as_group.value) == (7, 5)
    with pytest.raises(ConfigError, match="runAsGroup needs runAsUser"):
        containerconfig.build(_container(_pod(), spec), node="n1", image_user=(None, "web"))


@pytest.mark.parametrize("context, image_user, error", [
    ({"runAsNonRoot": True, "runAsUser": 1000}, None, None),
    ({"runAsNonRoot": True, "runAsUser": 0}, None, "runAsUser breaks non-root"),
    ({"runAsNonRoot": True}, (0, ""), "will run as root"),
    ({"runAsNonRoot": True}, (None, ""), "will run as root"),
    ({"runAsNonRoot": True}, (65534, ""), None),
    ({"runAsNonRoot": True}, (None, "1000:1000"), None),
    ({"runAsNonRoot": True}, (None, "nobody"), "non-numeric user"),
    ({}, (0, ""), None),
])
def test_run_as_non_root(context, image_user, error):
    config = _container(_pod(), {"securityContext": context})
    if error is None:
        containerconfig.build(config, node="n1", image_user=image_user)
    else:
        with pytest.raises(ConfigError, match=error):
            containerconfig.build(config, node="n1", image_user=image_user)


def test_mounts_hosts_file_and_termination_log():
    mounts = [Mount("/etc/config", "/v/cfg", True), Mount("/data", "/v/data")]
    config = _container(_pod(), {"terminationMessagePath": "/tmp/msg",
                                 "terminationMessagePolicy": "FallbackToLogsOnError"},
                        mounts=mounts)
    built = containerconfig.build(config, node="n1", hosts_file="/p/etc-hosts",
                                  termination_file="/p/containers/c/1-termination-log")
    assert [(m.container_path, m.host_path, m.readonly) for m in built.mounts] == [
        ("/etc/config", "/v/cfg", True), ("/data", "/v/data", False),
        ("/etc/hosts", "/p/etc-hosts", False),
        ("/tmp/msg", "/p/containers/c/1-termination-log", False)]
    assert built.annotations[labelmod.TERMINATION_POLICY] == "FallbackToLogsOnError"
    assert built.annotations[labelmod.TERMINATION_HOST_PATH] == \
        "/p/containers/c/1-termination-log"
    own_hosts = _container(_pod(), {}, mounts=[Mount("/etc/hosts", "/v/hosts")])
    built = containerconfig.build(own_hosts, node="n1", hosts_file="/p/etc-hosts")
    assert [m.host_path for m in built.mounts] == ["/v/hosts"]


def test_container_mounts_from_volume_mounts(tmp_path):
    volume = tmp_path / "vol"
    (volume / "key").parent.mkdir(parents=True)
    (volume / "key").write_text("v")
    spec = {"name": "c", "volumeMounts": [
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
        {"name": "cfg", "mountPath": "/etc/one", "subPath": "key"},
        {"name": "cfg", "mountPath": "/data", "subPath": "made/here"}]}
    mounts = volumes.container_mounts(spec, {"cfg": str(volume)})
    assert mounts == [Mount("/etc/cfg", str(volume), True),
                      Mount("/etc/one", str(volume / "key"), False),
                      Mount("/data", str(volume / "made/here"), False)]
    assert os.path.isdir(volume / "made" / "here")
    with pytest.raises(UnsafePath):
        volumes.container_mounts({"volumeMounts": [{"name": "cfg", "mountPath": "/x",
                                                    "subPath": "../up"}]}, {"cfg": str(volume)})
    os.symlink("/etc", volume / "out")
    with pytest.raises(UnsafePath):
        volumes.container_mounts({"volumeMounts": [{"name": "cfg", "mountPath": "/x",
                                                    "subPath": "out"}]}, {"cfg": str(volume)})
    with pytest.raises(ConfigError, match="names no volume"):
        volumes.container_mounts({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, {})


def test_volumes_for_containers_get_kubernetes_modes(tmp_path):
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"volumes": [{"name": "scratch", "emptyDir": {}},
                                {"name": "cfg", "configMap": {"name": "cm"}}]}}
    configmap = {"data": {"a/b": "1"}}
    result = volumes.materialise(pod, str(tmp_path), lambda *a: configmap, for_containers=True)
    assert os.stat(result["scratch"]).st_mode & 0o777 == 0o777
    assert os.stat(result["cfg"]).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(result["cfg"], "a")).st_mode & 0o777 == 0o755
    assert os.stat(os.path.join(result["cfg"], "a", "b")).st_mode & 0o777 == 0o644
    private = volumes.materialise(pod, str(tmp_path / "p2"), lambda *a: configmap)
    assert os.stat(private["scratch"]).st_mode & 0o777 == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group needs root")
def test_fs_group_owns_the_volumes(tmp_path):
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
           "spec": {"securityContext": {"fsGroup": 2345},
                    "volumes": [{"name": "scratch", "emptyDir": {}},
                                {"name": "cfg", "configMap": {"name": "cm"}}]}}
    result = volumes.materialise(pod, str(tmp_path), lambda *a: {"data": {"k": "v"}},
                                 for_containers=True)
    scratch, cfg = os.stat(result["scratch"]), os.stat(result["cfg"])
    assert scratch.st_gid == cfg.st_gid == 2345
    assert scratch.st_mode & 0o2070 == 0o2070 and cfg.st_mode & 0o2050 == 0o2050
    key = os.stat(os.path.join(result["cfg"], "k"))
    assert key.st_gid == 2345 and key.st_mode & 0o040
