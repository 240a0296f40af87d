"""Render the monitoring addon's Prometheus configuration, recording rules and alerts.

The addon (cli/local_monitoring.py) puts these in the ConfigMap monitoring/prometheus-config;
examples/monitoring/ holds the same files as rendered with the defaults
(``python -m cli.monitoring_config examples/monitoring`` writes them; a unit test keeps
them in step).

Debian's Prometheus has no kubernetes_sd_configs, so the targets are found through the
API by the pod's discovery sidecar (control/monitoring/discovery.py), which writes
file_sd files in TARGETS_DIR. The jobs:

    apiserver       the endpoints of default/kubernetes, https, the ServiceAccount token
                    (RBAC: nonResourceURLs /metrics get)
    nodes           each Node's agent's /metrics through the API server's nodes/proxy
                    (RBAC: nodes/proxy get; the API server asks the agent over mutual TLS
                    with its kubelet client certificate, control/api/nodeproxy.py): the
                    agents of a local cluster listen on this machine's loopback, which no
                    pod reaches, and take only client certificates
    nodes-resource  /metrics/resource of the same agents: node, pod and container cpu and
                    working set from the CRI stats that metrics.k8s.io (`steer top`) reads
    pods            Running pods annotated prometheus.io/scrape: "true" (prometheus.io/port,
                    prometheus.io/path, prometheus.io/scheme), plain http by default
    scheduler       the Endpoints of kube-system/kube-scheduler: the scheduler's
                    --secure-port through its door (cli/component_metrics.py), https,
                    the ServiceAccount token (delegated auth: TokenReview +
                    SubjectAccessReview of nonResourceURL /metrics get)
    controller-manager  the same for kube-system/kube-controller-manager; it also serves
                    kube_node_status_condition, which NodeNotReady reads
    store           the Endpoints of kube-system/steer-store: each member's /metrics, https
                    with the member certificate (store CA: store-ca.crt), Prometheus's
                    client certificate of the cluster CA in group system:monitoring
    prometheus      itself, over its TLS port
"""

import os
import sys

import yaml

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CONFIG_DIR = "/etc/prometheus/config"
TLS_DIR = "/etc/prometheus/tls"
#: The discovery sidecar (control/monitoring/discovery.py) writes file_sd JSON here.
TARGETS_DIR = "/etc/prometheus/targets"
WEB_PORT = 9090
SERVICE_DNS = "prometheus.monitoring.svc"
DEFAULT_INTERVAL = "15s"
#: The API server's name in its certificate as pods dial it (cli/local_pki.IN_CLUSTER_NAMES).
API_SERVER_NAME = "kubernetes.default.svc"
#: Names in the secure ports' serving certificates (cli/local_pki.SECURE_PORTS).
SCHEDULER_NAME = "kube-scheduler.kube-system.svc"
CONTROLLER_MANAGER_NAME = "kube-controller-manager.kube-system.svc"
#: A store member's certificate names localhost (cli/local_store.py); the store CA signs it.
STORE_SERVER_NAME = "localhost"
STORE_CA = "store-ca.crt"


def seconds(duration):
    """'15s' / '2m' / '1h' -> seconds (int)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if not duration or duration[-1] not in units or not duration[:-1].isdigit():
        raise ValueError(f"bad duration {duration!r}: use a whole number with s, m or h")
    return int(duration[:-1]) * units[duration[-1]]


def _client_tls(server_name=None):
    tls = {"ca_file": f"{TLS_DIR}/ca.crt", "cert_file": f"{TLS_DIR}/tls.crt",
           "key_file": f"{TLS_DIR}/tls.key"}
    if server_name:
        tls["server_name"] = server_name
    return tls


def _file_sd(name):
    return [{"files": [f"{TARGETS_DIR}/{name}"]}]


def _api_server_auth():
    """How every job that goes to the API server authenticates: the pod's ServiceAccount."""
    return {"authorization": {"credentials_file": f"{SA_DIR}/token"},
            "tls_config": {"ca_file": f"{SA_DIR}/ca.crt", "server_name": API_SERVER_NAME}}


def _node_job(name):
    return {"job_name": name, "scheme": "https", "file_sd_configs": _file_sd(f"{name}.json"),
            **_api_server_auth()}


def _component_job(name, server_name):
    """A secure port with delegated auth: the ServiceAccount token, the cluster CA."""
    return {"job_name": name, "scheme": "https", "file_sd_configs": _file_sd(f"{name}.json"),
            "authorization": {"credentials_file": f"{SA_DIR}/token"},
            "tls_config": {"ca_file": f"{SA_DIR}/ca.crt", "server_name": server_name}}


def prometheus_config(interval=DEFAULT_INTERVAL):
    """prometheus.yml as a dict: the targets come from the discovery sidecar's files."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "scrape_timeout": f"{min(seconds(interval), 10)}s"},
        "rule_files": [f"{CONFIG_DIR}/rules.yml", f"{CONFIG_DIR}/alerts.yml"],
        "scrape_configs": [
            {"job_name": "apiserver", "scheme": "https",
             "file_sd_configs": _file_sd("apiserver.json"), **_api_server_auth()},
            _node_job("nodes"),
            _node_job("nodes-resource"),
            {"job_name": "pods", "file_sd_configs": _file_sd("pods.json")},
            _component_job("scheduler", SCHEDULER_NAME),
            _component_job("controller-manager", CONTROLLER_MANAGER_NAME),
            {"job_name": "store", "scheme": "https", "file_sd_configs": _file_sd("store.json"),
             "tls_config": dict(_client_tls(STORE_SERVER_NAME),
                                ca_file=f"{TLS_DIR}/{STORE_CA}")},
            {"job_name": "prometheus", "scheme": "https",
             "tls_config": _client_tls(SERVICE_DNS),
             "static_configs": [{"targets": [f"localhost:{WEB_PORT}"]}]},
        ]}


def recording_rules():
    """rules.yml: the figures the dashboard and `steer top` show, precomputed."""
    rate = "rate({}[1m])"
    return {"groups": [{"name": "steer.rules", "rules": [
        {"record": "node:cpu_usage_cores:rate1m",
         "expr": "sum by (node) (" + rate.format("node_cpu_usage_seconds_total") + ")"},
        {"record": "node:memory_working_set_bytes",
         "expr": "sum by (node) (node_memory_working_set_bytes)"},
        {"record": "namespace:cpu_usage_cores:rate1m",
         "expr": "sum by (namespace) (" + rate.format("pod_cpu_usage_seconds_total") + ")"},
        {"record": "namespace:memory_working_set_bytes",
         "expr": "sum by (namespace) (pod_memory_working_set_bytes)"},
        {"record": "code:apiserver_request_total:rate5m",
         "expr": "sum by (code) (rate(apiserver_request_total[5m]))"},
        {"record": "apiserver:request_errors:ratio_rate5m",
         # "or vector(0)": no 5xx at all is a ratio of 0, not an empty result.
         "expr": '(sum(rate(apiserver_request_total{code=~"5.."}[5m])) or vector(0)) '
                 "/ sum(rate(apiserver_request_total[5m]))"},
        {"record": "store:journal_fsync_seconds:p99_5m",
         "expr": "histogram_quantile(0.99, sum by (le, instance) "
                 "(rate(steer_store_journal_fsync_seconds_bucket[5m])))"},
    ]}]}


def alerting_rules(node_down_for="60s"):
    """alerts.yml: node down, crash loops, store leader changes, API errors, slow fsync."""
    def alert(name, expr, duration, severity, summary, description):
        return {"alert": name, "expr": expr, "for": duration, "labels": {"severity": severity},
                "annotations": {"summary": summary, "description": description}}
    return {"groups": [{"name": "steer.alerts", "rules": [
        alert("NodeNotReady",
              'kube_node_status_condition{condition="Ready",status="true"} == 0',
              node_down_for, "critical",
              "Node {{ $labels.node }} is not ready",
              "The Node's Ready condition is not True (the node lifecycle controller sets it "
              "Unknown once the agent's heartbeats stop). Check the agent process (steer "
              "status), its log and the node's conditions (kubectl describe node)."),
        alert("NodeAgentDown", 'up{job="nodes"} == 0', node_down_for, "warning",
              "The agent of {{ $labels.node }} does not answer",
              "Prometheus cannot scrape the agent's /metrics through the API server's "
              "nodes/proxy: the agent is down or unreachable."),
        alert("ControlPlaneComponentDown",
              'up{job=~"scheduler|controller-manager|store"} == 0', node_down_for,
              "critical", "{{ $labels.job }} {{ $labels.instance }} does not answer",
              "Prometheus cannot scrape it: see `steer status` and the component's log."),
        alert("PodCrashLooping", "increase(steer_agent_pod_container_restarts[10m]) >= 3",
              "1m", "warning",
              "Pod {{ $labels.namespace }}/{{ $labels.pod }} is crash looping",
              "Container {{ $labels.container }} restarted {{ $value }} times in 10 "
              "minutes: read its previous log (steer logs --previous)."),
        alert("StoreLeaderChanges", "max(changes(steer_store_raft_term[15m])) > 3", "1m",
              "warning", "The store elected a leader more than 3 times in 15 minutes",
              "Frequent elections mean lost heartbeats: a slow disk, an overloaded "
              "machine or a flapping network between store members."),
        alert("APIServerErrors", "apiserver:request_errors:ratio_rate5m > 0.05", "5m",
              "warning", "More than 5% of API requests fail with 5xx",
              "{{ $value | humanizePercentage }} of the API server's answers are 5xx: "
              "see its log and the store's health."),
        alert("StoreFsyncSlow", "store:journal_fsync_seconds:p99_5m > 0.5", "10m",
              "warning", "Store journal fsync p99 above 0.5 s on {{ $labels.instance }}",
              "Raft entries wait for the disk: elections and slow writes follow. Move the "
              "store's data directory to a faster disk."),
    ]}]}


def web_config():
    """web.yml: Prometheus's own port speaks TLS and asks for a client certificate of the CA."""
    return {"tls_server_config": {"cert_file": f"{TLS_DIR}/tls.crt",
                                  "key_file": f"{TLS_DIR}/tls.key",
                                  "client_auth_type": "RequireAndVerifyClientCert",
                                  "client_ca_file": f"{TLS_DIR}/ca.crt"}}


def dump(document):
    return yaml.safe_dump(document, sort_keys=False, width=100)


def files(interval=DEFAULT_INTERVAL, node_down_for=None):
    """{file name: text} of the ConfigMap monitoring/prometheus-config.

    NodeNotReady waits ``node_down_for`` (default: 4 scrape intervals, 60s at 15s).
    """
    node_down_for = node_down_for or f"{4 * seconds(interval)}s"
    return {"prometheus.yml": dump(prometheus_config(interval)),
            "rules.yml": dump(recording_rules()),
            "alerts.yml": dump(alerting_rules(node_down_for)),
            "web.yml": dump(web_config())}


def write_examples(directory):
    os.makedirs(directory, exist_ok=True)
    for name, text in files().items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    write_examples(sys.argv[1] if len(sys.argv) > 1 else "examples/monitoring")
