"""agent/runtime/cri/sandbox.py dns_config: each dnsPolicy as kubelet resolves it."""

from agent.runtime.cri import sandbox

CLUSTER = ("10.96.0.10",)
DOMAIN = "cluster.local"
HOST = (["192.0.2.53"], ["corp.example"], ["timeout:2"])
NO_HOST = ((), (), ())
SEARCH = ["team.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def pod(policy=None, host_network=False, dns_config=None, namespace="team"):
    spec = {"containers": [{"name": "c", "image": "x"}]}
    if policy:
        spec["dnsPolicy"] = policy
    if host_network:
        spec["hostNetwork"] = True
    if dns_config is not None:
        spec["dnsConfig"] = dns_config
    return {"metadata": {"name": "p", "namespace": namespace, "uid": "u"}, "spec": spec}


def config(p, host=NO_HOST, cluster=CLUSTER, domain=DOMAIN):
    c = sandbox.dns_config(p, host, cluster, domain)
    return list(c.servers), list(c.searches), list(c.options)


def test_cluster_first_gets_cluster_dns_search_path_and_ndots():
    assert config(pod("ClusterFirst")) == (["10.96.0.10"], SEARCH, ["ndots:5"])


def test_the_default_policy_is_cluster_first():
    assert config(pod()) == (["10.96.0.10"], SEARCH, ["ndots:5"])


def test_cluster_first_appends_the_nodes_search_domains():
    servers, searches, options = config(pod("ClusterFirst"), host=HOST)
    assert servers == ["10.96.0.10"]
    assert searches == SEARCH + ["corp.example"]
    assert options == ["ndots:5"]


def test_cluster_first_on_the_host_network_gets_the_nodes_resolvers():
    assert config(pod("ClusterFirst", host_network=True), host=HOST) == \
        (["192.0.2.53"], ["corp.example"], ["timeout:2"])


def test_cluster_first_with_host_net_keeps_cluster_dns():
    assert config(pod("ClusterFirstWithHostNet", host_network=True)) == \
        (["10.96.0.10"], SEARCH, ["ndots:5"])


def test_default_policy_gets_the_nodes_resolvers():
    assert config(pod("Default"), host=HOST) == (["192.0.2.53"], ["corp.example"], ["timeout:2"])


def test_default_policy_without_host_resolvers_gets_none():
    assert config(pod("Default")) == ([], [], [sandbox.NO_DNS_OPTION])


def test_none_policy_uses_only_dns_config():
    p = pod("None", dns_config={"nameservers": ["10.0.0.1"], "searches": ["a.example"],
                                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert config(p, host=HOST) == (["10.0.0.1"], ["a.example"], ["ndots:2", "edns0"])


def test_dns_config_is_merged_options_override_by_name():
    p = pod("ClusterFirst", dns_config={"nameservers": ["10.96.0.10", "10.0.0.2"],
                                        "searches": ["svc.cluster.local", "extra.example"],
                                        "options": [{"name": "ndots", "value": "1"}]})
    assert config(p) == (["10.96.0.10", "10.0.0.2"], SEARCH + ["extra.example"], ["ndots:1"])


def test_no_cluster_dns_configured_falls_back_to_the_node():
    assert config(pod("ClusterFirst"), host=HOST, cluster=()) == \
        (["192.0.2.53"], ["corp.example"], ["timeout:2"])


def test_no_cluster_domain_keeps_only_the_nodes_search():
    assert config(pod("ClusterFirst"), host=HOST, domain="") == \
        (["10.96.0.10"], ["corp.example"], ["ndots:5"])


def test_at_most_three_servers():
    p = pod("ClusterFirst", dns_config={"nameservers": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]})
    assert config(p)[0] == ["10.96.0.10", "10.0.0.1", "10.0.0.2"]


def test_build_passes_cluster_dns_into_the_sandbox():
    c = sandbox.build(pod(), node="n1", attempt=0, log_directory="/tmp/x", cgroup_parent="/p",
                      cluster_dns=CLUSTER, cluster_domain=DOMAIN)
    assert list(c.dns_config.servers) == ["10.96.0.10"]
    assert list(c.dns_config.searches) == SEARCH
