"""Render the Grafana dashboard of the monitoring addon (examples/monitoring/grafana-dashboard.json).

A cluster overview over the addon's Prometheus: nodes ready, pods by phase, cpu and
memory per node and per namespace (the recording rules of cli/monitoring_config.py, from
the agents' /metrics/resource: the CRI stats `steer top` shows), API request rate and
5xx ratio, the store's leader and journal fsync latency (the store members' /metrics), the
nodes' Ready condition (the controller manager's kube_node_status_condition). Grafana's JSON model
(schemaVersion 39) with a ``datasource`` variable of type prometheus, so it imports into
any Grafana whatever its Prometheus data source is called.
``python -m cli.monitoring_dashboard examples/monitoring`` writes it; a unit test keeps
the file in step, and the e2e test runs every panel's expression on the live Prometheus.
"""

import json
import os
import sys

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Panels whose series come from the store members' /metrics (the "store" job, through
#: the doors of cli/component_metrics.py).
STORE_JOB_PANELS = ("Store leader", "Store journal fsync p99")

#: (title, kind, unit, [(expression, legend)], grid position (x, y, w, h)).
PANELS = (
    ("Nodes ready", "stat", "none",
     [('sum(kube_node_status_condition{condition="Ready",status="true"})', "ready"),
      ('count(kube_node_status_condition{condition="Ready",status="true"})', "nodes")],
     (0, 0, 6, 4)),
    ("Pods by phase", "stat", "none",
     [("sum by (phase) (steer_agent_pods_by_phase)", "{{phase}}")], (6, 0, 6, 4)),
    ("API requests/s by code", "timeseries", "reqps",
     [("code:apiserver_request_total:rate5m", "{{code}}")], (12, 0, 6, 4)),
    ("API 5xx ratio", "timeseries", "percentunit",
     [("apiserver:request_errors:ratio_rate5m", "5xx")], (18, 0, 6, 4)),
    ("CPU per node", "timeseries", "none", [("node:cpu_usage_cores:rate1m", "{{node}}")],
     (0, 4, 12, 8)),
    ("Memory per node", "timeseries", "bytes",
     [("node:memory_working_set_bytes", "{{node}}")], (12, 4, 12, 8)),
    ("CPU per namespace", "timeseries", "none",
     [("namespace:cpu_usage_cores:rate1m", "{{namespace}}")], (0, 12, 12, 8)),
    ("Memory per namespace", "timeseries", "bytes",
     [("namespace:memory_working_set_bytes", "{{namespace}}")], (12, 12, 12, 8)),
    ("Store leader", "stat", "none",
     [("max by (instance) (steer_store_is_leader)", "{{instance}}")], (0, 20, 12, 6)),
    ("Store journal fsync p99", "timeseries", "s",
     [("store:journal_fsync_seconds:p99_5m", "{{instance}}")], (12, 20, 12, 6)),
)


def panel(index, title, kind, unit, targets, position):
    x, y, w, h = position
    return {"id": index + 1, "title": title, "type": kind, "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr,
                         "legendFormat": legend} for i, (expr, legend) in enumerate(targets)]}


def dashboard():
    """The dashboard as Grafana's JSON model."""
    return {
        "title": "Steersman cluster", "uid": "steersman-cluster", "tags": ["steersman"],
        "schemaVersion": 39, "version": 1, "editable": True, "timezone": "utc",
        "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus",
                                 "type": "datasource", "query": "prometheus"}]},
        "panels": [panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def expressions():
    """[(panel title, expression)] of every panel target."""
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p["targets"]]


def text():
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    directory = sys.argv[1] if len(sys.argv) > 1 else "examples/monitoring"
    with open(os.path.join(directory, "grafana-dashboard.json"), "w") as f:
        f.write(text())
