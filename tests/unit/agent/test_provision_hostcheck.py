"""Host check rules (agent/provision/hostcheck.py) on probe outputs, without a host."""

from agent.provision.hostcheck import evaluate, failures, parse_probe

GOOD = """\
os=Debian GNU/Linux 12 (bookworm)
python=3.11
venv=yes
ip_forward=writable
br_netfilter=yes
nftables=yes
cgroup_fs=cgroup2fs
cgroup_v1=
cgroup_v2=cpuset cpu io memory pids
manager=systemd
disk_opt=10485760
disk_var_lib=10485760
listen=22 /usr/sbin/sshd -D
listen=6443 /opt/steersman/current/venv/bin/python /opt/steersman/current/venv/bin/steer-apiserver
listen=2379 /usr/bin/etcd
time=1000.5
"""


def check(text, **kwargs):
    kwargs.setdefault("sent_at", 1000.0)
    kwargs.setdefault("received_at", 1001.0)
    return {f.check: f for f in evaluate("root@h1", parse_probe(text), **kwargs)}


def test_parse_probe_keeps_listeners_by_port():
    facts = parse_probe(GOOD + "garbage line\nlisten=notaport x\n")
    assert facts["python"] == "3.11"
    assert facts["listen"][22] == "/usr/sbin/sshd -D"
    assert set(facts["listen"]) == {22, 6443, 2379}


def test_a_good_host_passes():
    findings = check(GOOD, ports=(6443, 10250))
    assert not failures(findings.values())
    assert "held by Steersman itself" in findings["port 6443"].message
    assert findings["clock"].message.startswith("+0.00 s")


def test_port_held_by_another_program_fails_with_its_name():
    found = check(GOOD, ports=(2379,))["port 2379"]
    assert not found.ok and "/usr/bin/etcd" in found.message and found.fix


def test_missing_kernel_features_fail_with_fixes():
    text = (GOOD.replace("ip_forward=writable", "ip_forward=readonly")
            .replace("br_netfilter=yes", "br_netfilter=no")
            .replace("nftables=yes", "nftables=nocommand"))
    findings = check(text)
    for name in ("ip_forward", "br_netfilter", "nftables"):
        assert not findings[name].ok and findings[name].fix
    assert "readonly" in str(findings["ip_forward"])


def test_python_rules():
    assert not check(GOOD.replace("python=3.11", "python=3.9"))["python3"].ok
    assert not check(GOOD.replace("python=3.11", "python="))["python3"].ok
    assert not check(GOOD.replace("venv=yes", "venv=no"))["python3"].ok
    assert check(GOOD.replace("python=3.11", "python=3.13"))["python3"].ok


def test_cgroup_v1_needs_cpu_memory_pids():
    v1 = GOOD.replace("cgroup_fs=cgroup2fs", "cgroup_fs=tmpfs")
    assert check(v1.replace("cgroup_v1=", "cgroup_v1=cpu memory pids blkio"))["cgroups"].ok
    bad = check(v1.replace("cgroup_v1=", "cgroup_v1=cpu blkio"))["cgroups"]
    assert not bad.ok and "memory" in bad.message


def test_clock_skew_beyond_limit_fails():
    assert not check(GOOD.replace("time=1000.5", "time=1003.6"))["clock"].ok
    assert check(GOOD.replace("time=1000.5", "time=1002.4"))["clock"].ok
    assert not check(GOOD.replace("time=1000.5", "time="))["clock"].ok


def test_service_manager_and_disk():
    assert not check(GOOD.replace("manager=systemd", "manager=none"))["service manager"].ok
    low = check(GOOD.replace("disk_opt=10485760", "disk_opt=1024"))
    assert not low["disk /opt"].ok and low["disk /var/lib"].ok
