"""The change script between two Service tables (the kernel side is in integration)."""

from agent.network.nft_rules import NodeView, build_ruleset
from agent.network.nft_ruleset import update_script

VIEW = NodeView("n1", ("192.168.50.1",), "10.244.0.0/16", "10.96.0.0/16")


def objects(addresses, affinity=False, extra_service=False):
    spec = {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    services = [{"metadata": {"namespace": "default", "name": "web"}, "spec": spec}]
    if extra_service:
        services.append({"metadata": {"namespace": "default", "name": "other"},
                         "spec": {"clusterIP": "10.96.0.11", "ports": [{"port": 81}]}})
    slices = [{"metadata": {"namespace": "default", "name": "web-a",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "endpoints": [{"addresses": [a], "nodeName": "n1"} for a in addresses],
               "ports": [{"name": "http", "port": 8080}]}]
    return build_ruleset(services, slices, VIEW)


def lines_starting(script, prefix):
    return [line for line in script.splitlines() if line.startswith(prefix)]


def test_an_endpoint_change_touches_only_its_chains_and_never_the_table():
    old, new = objects(["10.244.1.2", "10.244.1.3"]), objects(["10.244.1.2", "10.244.1.4"])
    script = update_script(old, new)
    assert "delete table" not in script
    assert [line.split()[-1].split("__")[1] for line in lines_starting(script, "add chain")] == [
        "10.244.1.4/8080"]
    assert [line.split()[-1].split("__")[1] for line in lines_starting(script, "delete chain")] == [
        "10.244.1.3/8080"]
    flushed = [line.split()[-1] for line in lines_starting(script, "flush chain")]
    assert any(name.startswith("cluster-") for name in flushed)
    assert not lines_starting(script, "delete element")      # the Service entry is the same
    # The dead chain is emptied and every reference to it is gone before it is deleted.
    lines = script.splitlines()
    dead = lines_starting(script, "delete chain")[0].split()[-1]
    assert lines.index(f"flush chain ip steer-proxy {dead}") < lines.index(
        f"delete chain ip steer-proxy {dead}")
    assert not [line for line in lines if line.startswith("add rule") and dead in line]


def test_losing_every_endpoint_moves_the_service_to_the_reject_map():
    script = update_script(objects(["10.244.1.2"]), objects([]))
    assert lines_starting(script, "delete element ip steer-proxy service-ips") == [
        "delete element ip steer-proxy service-ips { 10.96.0.10 . tcp . 80 }"]
    assert lines_starting(script, "add element ip steer-proxy no-endpoint-services") == [
        "add element ip steer-proxy no-endpoint-services "
        "{ 10.96.0.10 . tcp . 80 : goto reject-chain }"]
    # Elements go before the chains they named are deleted.
    lines = script.splitlines()
    first_delete = min(i for i, line in enumerate(lines) if line.startswith("delete chain"))
    assert lines.index("delete element ip steer-proxy service-ips { 10.96.0.10 . tcp . 80 }") \
        < first_delete


def test_affinity_sets_are_added_and_removed_with_their_endpoints():
    script = update_script(objects(["10.244.1.2"], affinity=True),
                           objects(["10.244.1.3"], affinity=True))
    (added,) = lines_starting(script, "add set")
    assert added.endswith("{ type ipv4_addr; flags dynamic,timeout; timeout 10800s; }")
    (deleted,) = lines_starting(script, "delete set")
    assert "10.244.1.2/8080" in deleted
    assert script.splitlines()[-1] == deleted        # after the chains using it are gone


def test_a_new_service_adds_chains_before_the_map_entries_naming_them():
    script = update_script(objects(["10.244.1.2"]), objects(["10.244.1.2"], extra_service=True))
    lines = script.splitlines()
    element = next(i for i, line in enumerate(lines) if "10.96.0.11" in line)
    assert lines[element].startswith("add element ip steer-proxy no-endpoint-services")
    assert not lines_starting(script, "delete")


def test_a_change_of_structure_needs_a_full_replace():
    old = objects(["10.244.1.2"])
    other_node_ips = NodeView("n1", ("192.168.50.2",), VIEW.cluster_cidr, VIEW.service_cidr)
    spec = {"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}]}}
    assert update_script(old, build_ruleset([spec], [], other_node_ips)) is None
    assert update_script(objects(["10.244.1.2"], affinity=True), objects(["10.244.1.2"])) \
        is not None
