"""The monitoring addon's objects and Prometheus files: rendering, least privilege, promtool."""

import base64
import os
import shutil
import subprocess

import pytest
import yaml

from cli import local_monitoring, monitoring_config
from control.objects import kinds

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "monitoring")
TLS = {"ca.crt": b"CA", "tls.crt": b"CERT", "tls.key": b"KEY"}
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool missing: apt-get install prometheus")


def objects(**kwargs):
    return {(r.plural, body["metadata"]["name"]): body
            for r, _, body in local_monitoring.monitoring_objects("img:1", TLS, **kwargs)}


def test_examples_are_the_rendered_defaults():
    for name, text in monitoring_config.files().items():
        with open(os.path.join(EXAMPLES, name)) as f:
            assert f.read() == text, f"examples/monitoring/{name} is stale: run " \
                                     "python -m cli.monitoring_config examples/monitoring"


def test_the_cluster_role_only_reads_what_discovery_lists_and_metrics():
    role = objects()[("clusterroles", local_monitoring.ROLE)]
    resources = [r for r in role["rules"] if "resources" in r]
    assert resources == [{"apiGroups": [""], "resources": ["nodes", "pods", "endpoints"],
                          "verbs": ["get", "list", "watch"]},
                         {"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}]
    assert {"nonResourceURLs": ["/metrics"], "verbs": ["get"]} in role["rules"]
    assert len(role["rules"]) == 3        # no secrets, no writes, no pods/proxy
    binding = objects()[("clusterrolebindings", local_monitoring.ROLE)]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus",
                                    "namespace": "monitoring"}]


def test_the_deployment_runs_prometheus_and_its_discovery_sidecar():
    everything = objects(interval="2s", node_down_for="8s")
    spec = everything[("deployments", "prometheus")]["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 1 and pod["serviceAccountName"] == "prometheus"
    prometheus, discovery = pod["containers"]
    assert "--web.config.file=/etc/prometheus/config/web.yml" in prometheus["command"]
    assert discovery["command"][:3] == ["/usr/local/bin/python3", "-m",
                                        "control.monitoring.discovery"]
    assert "--interval" in discovery["command"]
    mounts = {m["mountPath"]: m["name"] for m in prometheus["volumeMounts"]}
    assert mounts[monitoring_config.TARGETS_DIR] == "targets" == \
        discovery["volumeMounts"][0]["name"]
    for c in pod["containers"]:
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    secret = everything[("secrets", "prometheus-tls")]
    assert {k: base64.b64decode(v) for k, v in secret["data"].items()} == TLS
    data = everything[("configmaps", "prometheus-config")]["data"]
    assert yaml.safe_load(data["prometheus.yml"])["global"]["scrape_interval"] == "2s"
    alerts = yaml.safe_load(data["alerts.yml"])["groups"][0]["rules"]
    assert next(a for a in alerts if a["alert"] == "NodeNotReady")["for"] == "8s"
    service = everything[("services", "prometheus")]
    assert service["spec"]["ports"][0]["port"] == 9090


def test_interval_from_the_environment():
    assert local_monitoring.interval_from_env({}) == ("15s", "60s")
    assert local_monitoring.interval_from_env({"STEER_MONITORING_INTERVAL": "2s"}) == \
        ("2s", "8s")
    with pytest.raises(ValueError, match="whole number"):
        local_monitoring.interval_from_env({"STEER_MONITORING_INTERVAL": "fast"})


def test_every_job_reads_targets_from_the_discovery_files():
    config = monitoring_config.prometheus_config()
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"apiserver", "nodes", "nodes-resource", "pods", "prometheus",
                         "scheduler", "controller-manager", "store"}
    for name in ("apiserver", "nodes", "nodes-resource"):      # all through the API server
        assert jobs[name]["authorization"]["credentials_file"].endswith("/token")
        assert jobs[name]["tls_config"]["server_name"] == "kubernetes.default.svc"
    # The secure ports: the ServiceAccount token (delegated auth), their own names.
    for name, server in (("scheduler", "kube-scheduler.kube-system.svc"),
                         ("controller-manager", "kube-controller-manager.kube-system.svc")):
        assert jobs[name]["scheme"] == "https"
        assert jobs[name]["authorization"]["credentials_file"].endswith("/token")
        assert jobs[name]["tls_config"] == {"ca_file": monitoring_config.SA_DIR + "/ca.crt",
                                            "server_name": server}
    # The store: no token, a client certificate; the members' certificates are the store CA's.
    store = jobs["store"]
    assert "authorization" not in store and store["scheme"] == "https"
    assert store["tls_config"]["cert_file"].endswith("/tls.crt")
    assert store["tls_config"]["ca_file"].endswith("/store-ca.crt")
    assert jobs["nodes-resource"]["file_sd_configs"][0]["files"][0].endswith(
        "/nodes-resource.json")
    assert all("kubernetes_sd_configs" not in j for j in jobs.values())


def test_the_objects_are_kinds_the_api_serves():
    for resource, namespace, body in local_monitoring.monitoring_objects("img:1", TLS):
        assert body["kind"] == resource.kind
        assert (namespace is not None) == resource.namespaced
    assert kinds.DEPLOYMENTS.group == "apps"


@needs_promtool
def test_promtool_accepts_the_config_and_the_rules(tmp_path):
    for name, text in monitoring_config.files().items():
        (tmp_path / name).write_text(text.replace(monitoring_config.CONFIG_DIR, str(tmp_path)))
    config = subprocess.run(["promtool", "check", "config", "--syntax-only",
                             str(tmp_path / "prometheus.yml")], capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = subprocess.run(["promtool", "check", "rules", str(tmp_path / "rules.yml"),
                            str(tmp_path / "alerts.yml")], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert rules.stdout.count("SUCCESS: 7 rules found") == 2      # 7 records, 7 alerts


@needs_promtool
def test_promtool_rejects_a_broken_rule(tmp_path):
    """The check above can fail: a rule with bad PromQL is refused."""
    broken = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "up ==",
                                                   "for": "1m"}]}]}
    (tmp_path / "bad.yml").write_text(monitoring_config.dump(broken))
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "bad.yml")],
                            capture_output=True, text=True)
    assert result.returncode != 0


ALERT_TESTS = """
rule_files: [rules.yml, alerts.yml]
evaluation_interval: 15s
tests:
- interval: 15s
  input_series:
  - series: 'up{job="nodes", node="node-2", instance="node-2"}'
    values: '1 1 0 0 0 0 0 0 0'
  - series: 'kube_node_status_condition{job="controller-manager", node="node-2", condition="Ready", status="true"}'
    values: '1 1 0 0 0 0 0 0 0'
  - series: 'kube_node_status_condition{job="controller-manager", node="node-1", condition="Ready", status="true"}'
    values: '1 1 1 1 1 1 1 1 1'
  - series: 'steer_agent_pod_container_restarts{namespace="default", pod="web", container="c"}'
    values: '0 1 2 3 4 5 6 7 8'
  - series: 'apiserver_request_total{code="500"}'
    values: '0+10x40'
  - series: 'apiserver_request_total{code="200"}'
    values: '0+10x40'
  - series: 'steer_store_journal_fsync_seconds_bucket{instance="store-1", le="0.5"}'
    values: '0x60'
  - series: 'steer_store_journal_fsync_seconds_bucket{instance="store-1", le="1"}'
    values: '0+5x60'
  - series: 'steer_store_journal_fsync_seconds_bucket{instance="store-1", le="+Inf"}'
    values: '0+5x60'
  alert_rule_test:
  - eval_time: 30s
    alertname: NodeNotReady
  - eval_time: 2m
    alertname: NodeNotReady
    exp_alerts:
    - exp_labels: {severity: critical, job: controller-manager, node: node-2, condition: Ready, status: "true"}
      exp_annotations:
        summary: "Node node-2 is not ready"
        description: "The Node's Ready condition is not True (the node lifecycle controller sets it Unknown once the agent's heartbeats stop). Check the agent process (steer status), its log and the node's conditions (kubectl describe node)."
  - eval_time: 2m
    alertname: NodeAgentDown
    exp_alerts:
    - exp_labels: {severity: warning, job: nodes, node: node-2, instance: node-2}
      exp_annotations:
        summary: "The agent of node-2 does not answer"
        description: "Prometheus cannot scrape the agent's /metrics through the API server's nodes/proxy: the agent is down or unreachable."
  - eval_time: 2m
    alertname: PodCrashLooping
    exp_alerts:
    - exp_labels: {severity: warning, namespace: default, pod: web, container: c}
      exp_annotations:
        summary: "Pod default/web is crash looping"
        description: "Container c restarted 8 times in 10 minutes: read its previous log (steer logs --previous)."
  - eval_time: 8m
    alertname: APIServerErrors
    exp_alerts:
    - exp_labels: {severity: warning}
      exp_annotations:
        summary: "More than 5% of API requests fail with 5xx"
        description: "50% of the API server's answers are 5xx: see its log and the store's health."
  - eval_time: 14m
    alertname: StoreFsyncSlow
    exp_alerts:
    - exp_labels: {severity: warning, instance: store-1}
      exp_annotations:
        summary: "Store journal fsync p99 above 0.5 s on store-1"
        description: "Raft entries wait for the disk: elections and slow writes follow. Move the store's data directory to a faster disk."
"""


@needs_promtool
def test_the_alerts_fire_on_the_series_they_watch(tmp_path):
    for name, text in monitoring_config.files().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "tests.yml").write_text(ALERT_TESTS)
    result = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_example_manifest_and_dashboard_are_rendered():
    from cli import monitoring_dashboard
    for name, text in (("monitoring.yaml", local_monitoring.manifest_text()),
                       ("grafana-dashboard.json", monitoring_dashboard.text())):
        with open(os.path.join(EXAMPLES, name)) as f:
            assert f.read() == text, f"examples/monitoring/{name} is stale: run python -m " \
                                     "cli.local_monitoring / cli.monitoring_dashboard"
    documents = list(yaml.safe_load_all(local_monitoring.manifest_text()))
    assert "Secret" not in [d["kind"] for d in documents]       # no key in the repository


def test_the_dashboard_is_a_grafana_model_with_the_overview_panels():
    from cli import monitoring_dashboard
    model = monitoring_dashboard.dashboard()
    titles = [p["title"] for p in model["panels"]]
    for wanted in ("Nodes ready", "Pods by phase", "CPU per node", "Memory per node",
                   "CPU per namespace", "Memory per namespace", "API requests/s by code",
                   "API 5xx ratio", "Store leader", "Store journal fsync p99"):
        assert wanted in titles
    assert len({p["id"] for p in model["panels"]}) == len(titles)
    assert model["templating"]["list"][0]["type"] == "datasource"


@needs_promtool
def test_every_panel_expression_is_valid_promql(tmp_path):
    from cli import monitoring_dashboard
    rules = {"groups": [{"name": "panels", "rules": [
        {"record": f"panel:{i}", "expr": expr}
        for i, (_, expr) in enumerate(monitoring_dashboard.expressions())]}]}
    (tmp_path / "panels.yml").write_text(monitoring_config.dump(rules))
    result = subprocess.run(["promtool", "check", "rules", str(tmp_path / "panels.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_addon_refuses_a_cluster_without_containers():
    from cli.cluster_cmd import Failure
    from cli.local_addons import AddonContext, parse_addons
    assert parse_addons("dns,monitoring") == ("dns", "monitoring")
    ctx = AddonContext(url="https://127.0.0.1:1", creds=None, args=None, containers=False,
                       say=print)
    with pytest.raises(Failure, match="needs a containers cluster"):
        local_monitoring.start(ctx)


def test_a_bad_interval_is_refused_with_what_to_write(monkeypatch):
    from cli.cluster_cmd import Failure
    from cli.local_addons import AddonContext
    monkeypatch.setenv(local_monitoring.INTERVAL_ENV, "2 seconds")
    monkeypatch.setattr(local_monitoring.local_monitoring_image, "unavailable_reason",
                        lambda: None)
    ctx = AddonContext(url="https://127.0.0.1:1", creds=None, args=None, containers=True,
                       say=print)
    with pytest.raises(Failure, match="STEER_MONITORING_INTERVAL: bad duration"):
        local_monitoring.start(ctx)
