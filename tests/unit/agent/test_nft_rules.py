"""The nftables Service rules: what each feature puts into the script (no kernel)."""

import random
import re

from agent.network.nft_rules import NodeView, build_script, delete_script
from agent.network.nft_services import service_ports

VIEW = NodeView("n1", ("192.168.50.1",), "10.244.0.0/16", "10.96.0.0/16")


def service(name, ports, namespace="default", **spec):
    spec.setdefault("clusterIP", "10.96.0.10")
    return {"metadata": {"namespace": namespace, "name": name},
            "spec": {"ports": ports, **spec}}


def endpoint_slice(svc, endpoints, ports, namespace="default", suffix="a"):
    return {"metadata": {"namespace": namespace, "name": f"{svc}-{suffix}",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}


def ep(ip, node="n1", **conditions):
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


HTTP = [{"name": "http", "port": 80, "protocol": "TCP"}]
HTTP_TARGET = [{"name": "http", "port": 8080, "protocol": "TCP"}]


def parse(script):
    """{'chains': {name: [rules]}, 'hooks': {name: hook}, 'sets': {name: [lines]},
    'elements': {map: {key: verdict}}, 'head': [lines before the table]}."""
    out = {"chains": {}, "hooks": {}, "sets": {}, "elements": {}, "head": []}
    lines = iter(script.splitlines())
    for line in lines:
        if line.startswith("table ip "):
            _parse_table(lines, out)
        elif line.startswith("add element ip "):
            name = line.split()[4]
            entries = out["elements"].setdefault(name, {})
            for entry in lines:
                if entry == "}":
                    break
                key, verdict = entry.strip().rstrip(",").split(" : ")
                entries[key] = verdict
        else:
            out["head"].append(line)
    return out


def _parse_table(lines, out):
    for line in lines:
        words = line.split()
        if line == "}":
            return
        if words[0] == "chain":
            rules, hook = [], None
            for inner in lines:
                if inner.strip() == "}":
                    break
                if inner.strip().startswith("type "):
                    hook = inner.strip()
                else:
                    rules.append(inner.strip())
            out["chains"][words[1]] = rules
            out["hooks"][words[1]] = hook
        elif words[0] in ("set", "map"):
            body = []
            for inner in lines:
                if inner.strip() == "}":
                    break
                body.append(inner.strip())
            out["sets"][words[1]] = body


def chain_of(parsed, prefix, key):
    names = [n for n in parsed["chains"] if n.startswith(prefix + "-") and n.endswith(key)]
    assert len(names) == 1, (prefix, key, names)
    return names[0], parsed["chains"][names[0]]


def dnat_targets(parsed):
    return sorted(r.split("dnat to ")[1] for rules in parsed["chains"].values()
                  for r in rules if "dnat to" in r)


def test_clusterip_balances_at_random_over_ready_endpoints():
    parsed = parse(build_script(
        [service("web", HTTP)],
        [endpoint_slice("web", [ep("10.244.1.2"), ep("10.244.2.2", "n2"),
                                ep("10.244.3.2", "n3", ready=False)], HTTP_TARGET)], VIEW))
    verdict = parsed["elements"]["service-ips"]["10.96.0.10 . tcp . 80"]
    svc_chain = verdict.split()[1]
    rules = parsed["chains"][svc_chain]
    assert rules[0] == "ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    cluster = rules[-1].split()[1]
    (balance,) = parsed["chains"][cluster]
    assert re.match(r"numgen random mod 2 vmap \{ 0 : goto endpoint-\S+, 1 : goto endpoint-", balance)
    assert dnat_targets(parsed) == ["10.244.1.2:8080", "10.244.2.2:8080"]
    for target in re.findall(r"goto (endpoint-\S+?)[,} ]", balance + " "):
        ip = target.split("__")[1].split("/")[0]
        assert f"ip saddr {ip} jump mark-for-masquerade" in parsed["chains"][target]  # hairpin


def test_every_protocol_gets_its_own_map_entry_and_dnat():
    ports = [{"name": p.lower(), "port": 53, "protocol": p} for p in ("TCP", "UDP", "SCTP")]
    parsed = parse(build_script([service("dns", ports)],
                                [endpoint_slice("dns", [ep("10.244.1.3")], ports)], VIEW))
    assert set(parsed["elements"]["service-ips"]) == {
        "10.96.0.10 . tcp . 53", "10.96.0.10 . udp . 53", "10.96.0.10 . sctp . 53"}
    rules = [r for rules in parsed["chains"].values() for r in rules if "dnat" in r]
    assert sorted(rules) == [f"meta l4proto {p} dnat to 10.244.1.3:53"
                             for p in ("sctp", "tcp", "udp")]


def test_no_endpoints_rejects_clusterip_and_nodeport_and_builds_no_chain():
    parsed = parse(build_script(
        [service("web", [{**HTTP[0], "nodePort": 30080}], type="NodePort")], [], VIEW))
    assert parsed["elements"]["no-endpoint-services"] == {
        "10.96.0.10 . tcp . 80": "goto reject-chain"}
    assert parsed["elements"]["no-endpoint-nodeports"] == {"tcp . 30080": "goto reject-chain"}
    assert "service-ips" not in parsed["elements"]
    assert parsed["chains"]["reject-chain"] == ["meta l4proto tcp reject with tcp reset",
                                                "reject"]
    assert not [n for n in parsed["chains"] if "default/web" in n]


def test_reject_checks_run_before_dnat_and_only_for_new_connections():
    parsed = parse(build_script([], [], VIEW))
    for chain in ("filter-input", "filter-forward", "filter-output"):
        assert "priority -110" in parsed["hooks"][chain]
        assert all(rule.startswith("ct state new ") for rule in parsed["chains"][chain])
    assert "ct state new jump service-endpoints-check" in parsed["chains"]["filter-forward"]
    assert parsed["chains"]["service-endpoints-check"] == [
        "ip daddr . meta l4proto . th dport vmap @no-endpoint-services"]


def test_the_service_cidr_is_rejected_when_no_rule_took_the_packet():
    parsed = parse(build_script([], [], VIEW))
    assert parsed["chains"]["cluster-ips-check"] == ["ip daddr 10.96.0.0/16 goto reject-chain"]
    assert "priority -90" in parsed["hooks"]["filter-output-post-dnat"]   # after output DNAT
    for chain in ("filter-forward", "filter-input", "filter-output-post-dnat"):
        assert "ct state new jump cluster-ips-check" in parsed["chains"][chain]


def test_nodeport_answers_on_node_addresses_and_masquerades():
    parsed = parse(build_script(
        [service("web", [{**HTTP[0], "nodePort": 30080}], type="NodePort")],
        [endpoint_slice("web", [ep("10.244.2.2", "n2")], HTTP_TARGET)], VIEW))
    assert parsed["sets"]["nodeport-ips"] == ["type ipv4_addr;", "elements = { 192.168.50.1 };"]
    assert ("ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports"
            in parsed["chains"]["services"])
    external = parsed["elements"]["service-nodeports"]["tcp . 30080"].split()[1]
    rules = parsed["chains"][external]
    assert rules[0] == "jump mark-for-masquerade"
    assert parsed["chains"][rules[1].split()[1]] == [f"goto {chain_of(parsed, 'endpoint', '10.244.2.2/8080')[0]}"]
    assert parsed["chains"]["masquerading"][0] == "meta mark & 0x4000 == 0 return"
    assert "masquerade fully-random" in parsed["chains"]["masquerading"]
    assert "priority 100" in parsed["hooks"]["nat-postrouting"]


def test_without_node_ips_nodeports_use_any_local_address_but_not_service_ips():
    view = NodeView("n1", (), "10.244.0.0/16", "10.96.0.0/16")
    parsed = parse(build_script([], [], view))
    assert parsed["chains"]["services"][1] == (
        "fib daddr type local ip daddr != { 127.0.0.0/8, 10.96.0.0/16 } "
        "meta l4proto . th dport vmap @service-nodeports")


def test_external_traffic_policy_local_sends_outside_traffic_only_to_local_endpoints():
    spec = dict(type="NodePort", externalTrafficPolicy="Local")
    port = [{**HTTP[0], "nodePort": 30080}]
    slices = [endpoint_slice("web", [ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
                             HTTP_TARGET)]
    parsed = parse(build_script([service("web", port, **spec)], slices, VIEW))
    external = parsed["elements"]["service-nodeports"]["tcp . 30080"].split()[1]
    rules = parsed["chains"][external]
    assert "jump mark-for-masquerade" not in rules       # client address preserved
    assert rules[0].startswith("ip saddr 10.244.0.0/16 goto cluster-")
    local = rules[-1].split()[1]
    assert local.startswith("local-")
    assert parsed["chains"][local] == [f"goto {chain_of(parsed, 'endpoint', '10.244.1.2/8080')[0]}"]
    # Endpoints only elsewhere: outside traffic is dropped, pods still get through.
    slices = [endpoint_slice("web", [ep("10.244.2.2", "n2")], HTTP_TARGET)]
    parsed = parse(build_script([service("web", port, **spec)], slices, VIEW))
    rules = parsed["chains"][parsed["elements"]["service-nodeports"]["tcp . 30080"].split()[1]]
    assert rules[-1] == "drop"
    assert "no-endpoint-nodeports" not in parsed["elements"]


def test_internal_traffic_policy_local_uses_local_endpoints_or_drops():
    slices = [endpoint_slice("web", [ep("10.244.1.2", "n1"), ep("10.244.2.2", "n2")],
                             HTTP_TARGET)]
    svc = service("web", HTTP, internalTrafficPolicy="Local")
    parsed = parse(build_script([svc], slices, VIEW))
    assert dnat_targets(parsed) == ["10.244.1.2:8080"]
    other = NodeView("n9", VIEW.node_ips, VIEW.cluster_cidr, VIEW.service_cidr)
    parsed = parse(build_script([svc], slices, other))
    assert parsed["elements"]["no-endpoint-services"] == {"10.96.0.10 . tcp . 80": "drop"}
    assert dnat_targets(parsed) == []


def test_session_affinity_remembers_the_client_per_endpoint_with_a_timeout():
    svc = service("web", HTTP, sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    slices = [endpoint_slice("web", [ep("10.244.1.2"), ep("10.244.1.3")], HTTP_TARGET)]
    parsed = parse(build_script([svc], slices, VIEW))
    affinity = sorted(n for n in parsed["sets"] if n.startswith("affinity-"))
    assert len(affinity) == 2
    for name in affinity:
        assert parsed["sets"][name] == ["type ipv4_addr; flags dynamic,timeout;", "timeout 60s;"]
    cluster_name, cluster = chain_of(parsed, "cluster", "default/web/tcp/80")
    assert sorted(r.split()[2] for r in cluster[:2]) == [f"@{n}" for n in affinity]
    assert cluster[2].startswith("numgen random mod 2 vmap")
    for name in affinity:
        endpoint = name.split("__")[1]
        _, rules = chain_of(parsed, "endpoint", endpoint)
        assert f"update @{name} {{ ip saddr }}" in rules


def test_terminating_serving_endpoints_are_used_only_when_none_is_ready():
    slices = [endpoint_slice("web", [ep("10.244.1.2", ready=False, serving=True,
                                        terminating=True),
                                     ep("10.244.1.3", ready=False, serving=False,
                                        terminating=True)], HTTP_TARGET)]
    assert dnat_targets(parse(build_script([service("web", HTTP)], slices, VIEW))) == [
        "10.244.1.2:8080"]
    slices[0]["endpoints"].append(ep("10.244.1.4"))
    assert dnat_targets(parse(build_script([service("web", HTTP)], slices, VIEW))) == [
        "10.244.1.4:8080"]


def test_endpoints_come_from_every_slice_of_the_service_and_match_port_names():
    slices = [endpoint_slice("web", [ep("10.244.1.2")], HTTP_TARGET, suffix="a"),
              endpoint_slice("web", [ep("10.244.2.2", "n2")], HTTP_TARGET, suffix="b"),
              endpoint_slice("web", [ep("10.244.3.3")], [{"name": "other", "port": 9}],
                             suffix="c"),
              endpoint_slice("web", [ep("10.244.4.4")], HTTP_TARGET, namespace="elsewhere")]
    assert dnat_targets(parse(build_script([service("web", HTTP)], slices, VIEW))) == [
        "10.244.1.2:8080", "10.244.2.2:8080"]


def test_headless_external_name_and_ipv6_services_are_skipped():
    services = [service("h", HTTP, clusterIP="None"),
                service("x", HTTP, type="ExternalName", externalName="a.example"),
                service("v6", HTTP, clusterIP="fd00::1")]
    assert service_ports(services, [], "n1") == []


def test_the_script_replaces_the_whole_table_in_one_transaction():
    parsed = parse(build_script([], [], VIEW))
    assert parsed["head"] == ["add table ip steer-proxy", "delete table ip steer-proxy"]
    assert delete_script() == "add table ip steer-proxy\ndelete table ip steer-proxy\n"


def test_same_input_in_any_order_gives_the_same_bytes():
    services = [service(f"s{i}", [{**HTTP[0], "nodePort": 30000 + i}], type="NodePort",
                        clusterIP=f"10.96.1.{i}") for i in range(20)]
    slices = [endpoint_slice(f"s{i}", [ep(f"10.244.{i}.{j}", f"n{j % 3}") for j in range(1, 5)],
                             HTTP_TARGET) for i in range(20)]
    first = build_script(services, slices, VIEW)
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(services)
        rng.shuffle(slices)
        for item in slices:
            rng.shuffle(item["endpoints"])
        assert build_script(services, slices, VIEW) == first


def test_every_referenced_chain_and_set_is_defined():
    services = [service("web", [{**HTTP[0], "nodePort": 30080}], type="NodePort",
                        externalTrafficPolicy="Local", internalTrafficPolicy="Local",
                        sessionAffinity="ClientIP")]
    slices = [endpoint_slice("web", [ep("10.244.1.2"), ep("10.244.2.2", "n2")], HTTP_TARGET)]
    script = build_script(services, slices, VIEW)
    parsed = parse(script)
    for target in re.findall(r"(?:goto|jump) ([A-Za-z][\w/.\-]*)", script):
        assert target in parsed["chains"], target
    for target in re.findall(r"@([A-Za-z][\w/.\-]*)", script):
        assert target in parsed["sets"], target
