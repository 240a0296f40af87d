"""The monitoring addon's discovery sidecar: target groups from API objects, files on change."""

import json
import threading

from control.monitoring import discovery

KUBERNETES = {"metadata": {"name": "kubernetes", "namespace": "default"},
              "subsets": [{"addresses": [{"ip": "172.31.250.254"}],
                           "ports": [{"name": "https", "port": 6443}]}]}


def pod(name, annotations, phase="Running", ip="10.244.0.5", namespace="default"):
    return {"metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"nodeName": "node-1"}, "status": {"phase": phase, "podIP": ip}}


def test_api_servers_from_the_kubernetes_endpoints():
    assert discovery.apiserver_groups(KUBERNETES) == [
        {"targets": ["172.31.250.254:6443"], "labels": {"service": "kubernetes"}}]
    assert discovery.apiserver_groups({"metadata": {}, "subsets": []}) == []


def test_nodes_go_through_the_api_servers_node_proxy():
    nodes = [{"metadata": {"name": n}} for n in ("node-2", "node-1")]
    groups = discovery.node_groups(nodes, "10.96.0.1:443", "/metrics/resource")
    assert groups == [{"targets": ["10.96.0.1:443"],
                       "labels": {"node": n, "instance": n,
                                  "__metrics_path__": f"/api/v1/nodes/{n}/proxy/metrics/resource"}}
                      for n in ("node-1", "node-2")]


def test_only_annotated_running_pods_with_a_valid_port():
    pods = [pod("web", {"prometheus.io/scrape": "true", "prometheus.io/port": "8080",
                        "prometheus.io/path": "/stats", "prometheus.io/scheme": "https"}),
            pod("plain", {"prometheus.io/scrape": "true", "prometheus.io/port": "9153"}),
            pod("off", {"prometheus.io/scrape": "false", "prometheus.io/port": "1"}),
            pod("none", {}),
            pod("pending", {"prometheus.io/scrape": "true", "prometheus.io/port": "1"},
                phase="Pending"),
            # Hostile annotations: a port that is not a number, out of range, a path
            # without a slash, a scheme Prometheus does not speak.
            pod("word", {"prometheus.io/scrape": "true", "prometheus.io/port": "http"}),
            pod("huge", {"prometheus.io/scrape": "true", "prometheus.io/port": "99999"}),
            pod("odd", {"prometheus.io/scrape": "true", "prometheus.io/port": "81",
                        "prometheus.io/path": "x@evil", "prometheus.io/scheme": "gopher"})]
    groups = {g["labels"]["pod"]: g for g in discovery.pod_groups(pods)}
    assert set(groups) == {"web", "plain", "odd"}
    assert groups["web"] == {"targets": ["10.244.0.5:8080"],
                             "labels": {"namespace": "default", "pod": "web", "node": "node-1",
                                        "__metrics_path__": "/stats", "__scheme__": "https"}}
    assert "__metrics_path__" not in groups["plain"]["labels"]
    assert set(groups["odd"]["labels"]) == {"namespace", "pod", "node"}


def test_files_are_rewritten_only_when_they_change(tmp_path):
    groups = [{"targets": ["a:1"], "labels": {}}]
    assert discovery.write_if_changed(tmp_path, "x.json", groups)
    assert not discovery.write_if_changed(tmp_path, "x.json", groups)
    assert json.loads((tmp_path / "x.json").read_text()) == groups
    assert discovery.write_if_changed(tmp_path, "x.json", [])


SCHEDULER_ENDPOINTS = {"metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                       "subsets": [{"addresses": [{"ip": "172.31.250.254"}],
                                    "ports": [{"name": "https-metrics", "port": 10259}]}]}


def test_store_members_each_get_a_target_named_by_member():
    endpoints = {"subsets": [
        {"addresses": [{"ip": "172.31.250.254", "hostname": "s2"}],
         "ports": [{"name": "https-metrics", "port": 2382}]},
        {"addresses": [{"ip": "172.31.250.254", "hostname": "s1"}],
         "ports": [{"name": "https-metrics", "port": 2381}]}]}
    assert discovery.component_groups(endpoints, "steer-store") == [
        {"targets": ["172.31.250.254:2381"], "labels": {"service": "steer-store", "member": "s1"}},
        {"targets": ["172.31.250.254:2382"], "labels": {"service": "steer-store", "member": "s2"}}]
    assert discovery.component_groups(None, "steer-store") == []


class FakeRest:
    """The API as discovery reads it; sets ``round_done`` when one round's reads are over."""

    def __init__(self, fail=False):
        self.fail, self.round_done = fail, threading.Event()

    def get(self, resource, namespace, name):
        if self.fail:
            self.round_done.set()
            raise OSError("API server unreachable")
        return KUBERNETES

    def list(self, resource, namespace=None, **_):
        if resource.plural == "nodes":
            return {"items": [{"metadata": {"name": "node-1"}}]}
        if resource.plural == "endpoints":
            self.round_done.set()       # kube-system's Endpoints: the last list of a round
            return {"items": [SCHEDULER_ENDPOINTS]}
        return {"items": [pod("web", {"prometheus.io/scrape": "true",
                                      "prometheus.io/port": "80"})]}


def run_once(rest, directory):
    """One round of discovery.run: it stops once the round's files are written."""
    discovery.run(rest, "10.96.0.1:443", directory, 0, rest.round_done)


def test_a_failed_list_keeps_the_last_files(tmp_path):
    run_once(FakeRest(), tmp_path)
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert set(written) == {"apiserver.json", "nodes.json", "nodes-resource.json", "pods.json",
                            "scheduler.json", "controller-manager.json", "store.json"}
    assert json.loads(written["scheduler.json"]) == [
        {"targets": ["172.31.250.254:10259"], "labels": {"service": "kube-scheduler"}}]
    assert json.loads(written["store.json"]) == []          # no steer-store Service: no target
    run_once(FakeRest(fail=True), tmp_path)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == written


def test_api_address_from_the_service_variables():
    assert discovery.api_address({"KUBERNETES_SERVICE_HOST": "10.96.0.1",
                                  "KUBERNETES_SERVICE_PORT": "443"}) == "10.96.0.1:443"
    assert discovery.api_address({"KUBERNETES_SERVICE_HOST": "fd00::1",
                                  "KUBERNETES_SERVICE_PORT": "443"}) == "[fd00::1]:443"
