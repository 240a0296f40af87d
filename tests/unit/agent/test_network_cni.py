"""The agent writes its node's CNI configuration once the Node has a podCIDR."""

import json
import os

from agent.network.cni import PodNetwork, pod_cidr_of


class FakeRest:
    def __init__(self, node):
        self.node = node

    def get(self, kind, namespace, name):
        return self.node


def test_pod_cidr_of_reads_either_field():
    assert pod_cidr_of({"spec": {"podCIDR": "10.244.1.0/24"}}) == "10.244.1.0/24"
    assert pod_cidr_of({"spec": {"podCIDRs": ["10.244.2.0/24"]}}) == "10.244.2.0/24"
    assert pod_cidr_of({"spec": {}}) is None and pod_cidr_of(None) is None


def test_writes_the_conflist_when_the_cidr_arrives_and_when_it_changes(tmp_path):
    conf_dir = tmp_path / "cni" / "net.d"
    rest = FakeRest({"spec": {}})
    net = PodNetwork(rest, "node-1", str(conf_dir))
    assert net.check_once() is False and not conf_dir.exists()
    rest.node = {"spec": {"podCIDR": "10.244.3.0/24"}}
    assert net.check_once() is True
    (conf,) = os.listdir(conf_dir)
    doc = json.loads((conf_dir / conf).read_text())
    assert doc["name"] == "steer-node-1"
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert doc["plugins"][0]["ipam"]["dataDir"] == str(tmp_path / "cni" / "ipam")
    assert oct((conf_dir / conf).stat().st_mode & 0o777) == "0o600"
    assert net.check_once() is False            # unchanged: not rewritten
    rest.node = {"spec": {"podCIDR": "10.244.4.0/24"}}
    assert net.observe(rest.node) is True
    doc = json.loads((conf_dir / conf).read_text())
    assert doc["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.4.0/24"}]]
