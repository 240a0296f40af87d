"""Server-side printing: Accept negotiation, per-kind columns and cells, includeObject, watch."""

import json
from datetime import datetime, timedelta, timezone

import falcon.testing
import pytest

from control.api import printers, table
from control.api.app import create_app
from control.objects import kinds
from tests.support.fake_store import FakeStore

KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io, "
                  "application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json")
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=timezone.utc)


def stamp(delta):
    """Return the RFC 3339 time ``delta`` before NOW."""
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource(kind):
    return next(r for r in kinds.RESOURCES if r.kind == kind)


def deployment(name="web"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"},
                                                          {"name": "s", "image": "envoy"}]}}}}


def names(table_body):
    return [c["name"] for c in table_body["columnDefinitions"]]


def cells(kind, obj):
    """Return the one row's cells for ``obj`` printed at NOW."""
    return table.to_table(resource(kind), [obj], {"resourceVersion": "1"}, now=NOW)["rows"][0][
        "cells"]


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


# ------------------------------------------------------------- negotiation

@pytest.mark.parametrize("accept, expected", [
    (KUBECTL_ACCEPT, "v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", "v1beta1"),
    ("application/json", None),
    ("*/*", None),
    (None, None),
    ("", None),
    ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None),
    ("application/json;as=Table;v=v2;g=meta.k8s.io, application/json", None),
    ("application/json;as=Table;v=v1;g=example.com, application/json", None),
    ("application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io", "v1"),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io, "
     "application/json;as=Table;v=v1;g=meta.k8s.io", "v1"),
    ("application/json;q=0.5, application/json;as=Table;v=v1;g=meta.k8s.io", "v1"),
    ("application/json;as=Table;v=v1;g=meta.k8s.io;q=0, application/json", None),
    ("application/json; as=Table; g=meta.k8s.io; v=v1", "v1"),
])
def test_wants_table_honours_the_first_acceptable_media_type(accept, expected):
    assert table.wants_table(accept) == expected


def test_list_answers_a_table_only_when_asked(client):
    client.simulate_post(DEPLOYMENTS, json=deployment())
    plain = client.simulate_get(DEPLOYMENTS, headers={"Accept": "application/json"})
    assert plain.json["kind"] == "DeploymentList"
    assert plain.headers["content-type"] == "application/json"
    printed = client.simulate_get(DEPLOYMENTS, headers={"Accept": KUBECTL_ACCEPT})
    assert printed.headers["content-type"] == "application/json;as=Table;v=v1;g=meta.k8s.io"
    body = printed.json
    assert body["kind"] == "Table" and body["apiVersion"] == "meta.k8s.io/v1"
    assert body["metadata"]["resourceVersion"] == plain.json["metadata"]["resourceVersion"]
    assert names(body) == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers",
                           "Images", "Selector"]
    assert [c["priority"] for c in body["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1]
    assert body["columnDefinitions"][0]["format"] == "name"
    assert body["rows"][0]["cells"][:4] == ["web", "0/3", 0, 0]
    assert body["rows"][0]["cells"][5:] == ["c,s", "busybox,envoy", "app=web"]


def test_v1beta1_table(client):
    body = client.simulate_get("/api/v1/namespaces", headers={
        "Accept": "application/json;as=Table;v=v1beta1;g=meta.k8s.io"}).json
    assert body["apiVersion"] == "meta.k8s.io/v1beta1"
    assert body["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


def test_get_of_one_object_is_a_one_row_table(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment()).json
    body = client.simulate_get(f"{DEPLOYMENTS}/web", headers={"Accept": KUBECTL_ACCEPT}).json
    assert body["kind"] == "Table" and len(body["rows"]) == 1
    assert body["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert client.simulate_get(f"{DEPLOYMENTS}/web").json["kind"] == "Deployment"
    missing = client.simulate_get(f"{DEPLOYMENTS}/nope", headers={"Accept": KUBECTL_ACCEPT})
    assert missing.status_code == 404 and missing.json["kind"] == "Status"


def test_paged_table_carries_the_continue_token(client):
    for i in range(3):
        client.simulate_post("/api/v1/namespaces/default/configmaps",
                             json={"metadata": {"name": f"cm-{i}"}, "data": {"a": "1"}})
    page = client.simulate_get("/api/v1/namespaces/default/configmaps", params={"limit": "2"},
                               headers={"Accept": KUBECTL_ACCEPT}).json
    assert len(page["rows"]) == 2 and page["metadata"]["continue"]
    assert names(page) == ["Name", "Data", "Age"]
    assert page["rows"][0]["cells"][:2] == ["cm-0", 1]


# ----------------------------------------------------------- includeObject

@pytest.mark.parametrize("mode", [None, "Metadata"])
def test_rows_carry_partial_object_metadata_by_default(client, mode):
    client.simulate_post(DEPLOYMENTS, json=deployment())
    params = {"includeObject": mode} if mode else {}
    row = client.simulate_get(DEPLOYMENTS, params=params,
                              headers={"Accept": KUBECTL_ACCEPT}).json["rows"][0]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["apiVersion"] == "meta.k8s.io/v1"
    assert row["object"]["metadata"]["name"] == "web"
    assert row["object"]["metadata"]["namespace"] == "default"
    assert set(row["object"]) == {"kind", "apiVersion", "metadata"}


def test_include_object_none_and_object(client):
    client.simulate_post(DEPLOYMENTS, json=deployment())
    none = client.simulate_get(DEPLOYMENTS, params={"includeObject": "None"},
                               headers={"Accept": KUBECTL_ACCEPT}).json["rows"][0]
    assert none["object"] is None
    full = client.simulate_get(DEPLOYMENTS, params={"includeObject": "Object"},
                               headers={"Accept": KUBECTL_ACCEPT}).json["rows"][0]
    assert full["object"]["kind"] == "Deployment"
    assert full["object"]["spec"]["replicas"] == 3
    bad = client.simulate_get(DEPLOYMENTS, params={"includeObject": "Everything"},
                              headers={"Accept": KUBECTL_ACCEPT})
    assert bad.status_code == 400 and bad.json["reason"] == "BadRequest"


# ------------------------------------------------------------------- AGE

@pytest.mark.parametrize("delta, expected", [
    (timedelta(seconds=-5), "<invalid>"),
    (timedelta(seconds=-1), "0s"),
    (timedelta(0), "0s"),
    (timedelta(seconds=5), "5s"),
    (timedelta(seconds=119), "119s"),
    (timedelta(minutes=2), "2m"),
    (timedelta(minutes=2, seconds=30), "2m30s"),
    (timedelta(minutes=9, seconds=59), "9m59s"),
    (timedelta(minutes=10, seconds=30), "10m"),
    (timedelta(minutes=179), "179m"),
    (timedelta(hours=3), "3h"),
    (timedelta(hours=4, minutes=5), "4h5m"),
    (timedelta(hours=7, minutes=59), "7h59m"),
    (timedelta(hours=8, minutes=30), "8h"),
    (timedelta(hours=47), "47h"),
    (timedelta(days=2), "2d"),
    (timedelta(days=3, hours=4), "3d4h"),
    (timedelta(days=7, hours=23), "7d23h"),
    (timedelta(days=8, hours=5), "8d"),
    (timedelta(days=729), "729d"),
    (timedelta(days=730), "2y"),
    (timedelta(days=800), "2y70d"),
    (timedelta(days=365 * 8 + 30), "8y"),
])
def test_human_duration(delta, expected):
    assert printers.human_duration(delta) == expected


def test_age_cell_uses_the_injected_clock_and_unknown_when_unset():
    cm = {"metadata": {"name": "a", "creationTimestamp": stamp(timedelta(minutes=3))}}
    assert cells("ConfigMap", cm) == ["a", 0, "3m"]
    assert cells("ConfigMap", {"metadata": {"name": "b"}}) == ["b", 0, "<unknown>"]


# ----------------------------------------------------------- kinds' cells

def test_pod_cells_running_waiting_and_restarts():
    pod = {"metadata": {"name": "p", "creationTimestamp": stamp(timedelta(hours=1))},
           "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                      "containerStatuses": [
                          {"name": "a", "ready": True, "restartCount": 2,
                           "state": {"running": {}},
                           "lastState": {"terminated": {
                               "finishedAt": stamp(timedelta(minutes=5))}}},
                          {"name": "b", "ready": False, "restartCount": 0,
                           "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert cells("Pod", pod) == ["p", "1/2", "CrashLoopBackOff", "2 (5m ago)", "60m",
                                 "10.0.0.5", "n1", "<none>", "<none>"]
    pending = {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "a"}]},
               "status": {"phase": "Pending"}}
    assert cells("Pod", pending)[:4] == ["q", "0/1", "Pending", "0"]


def test_pod_init_and_terminating():
    pod = {"metadata": {"name": "p", "deletionTimestamp": stamp(timedelta(0))},
           "spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
           "status": {"phase": "Pending", "initContainerStatuses": [
               {"name": "i", "state": {"running": {}}}]}}
    assert cells("Pod", pod)[2] == "Terminating"
    del pod["metadata"]["deletionTimestamp"]
    assert cells("Pod", pod)[2] == "Init:0/1"


def test_service_cells():
    svc = {"metadata": {"name": "web"},
           "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]}}
    assert cells("Service", svc) == ["web", "NodePort", "10.96.0.10", "<none>",
                                     "80:30080/TCP,53/UDP", "<unknown>", "app=web"]
    lb = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": []}}
    assert cells("Service", lb)[1:5] == ["LoadBalancer", "<none>", "<pending>", "<none>"]


def test_node_cells():
    node = {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0"}}}
    assert cells("Node", node) == ["n1", "Ready,SchedulingDisabled", "control-plane",
                                   "<unknown>", "v1.32.0", "192.168.0.2", "<none>",
                                   "<unknown>", "<unknown>", "<unknown>"]
    assert cells("Node", {"metadata": {"name": "n2"}})[1:3] == ["Unknown", "<none>"]


def test_workload_cells():
    sts = {"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 1}}
    assert cells("StatefulSet", sts)[:2] == ["db", "1/3"]
    job = {"metadata": {"name": "j"}, "spec": {"completions": 2},
           "status": {"succeeded": 2, "startTime": stamp(timedelta(minutes=4)),
                      "completionTime": stamp(timedelta(minutes=1)),
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert cells("Job", job)[:4] == ["j", "Complete", "2/2", "3m"]
    cron = {"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *"},
            "status": {"lastScheduleTime": stamp(timedelta(seconds=42))}}
    assert cells("CronJob", cron)[:6] == ["c", "*/5 * * * *", "<none>", "<unset>", 0, "42s"]
    ds = {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"nodeSelector": {"a": "b"}}}},
          "status": {"desiredNumberScheduled": 3, "numberReady": 2}}
    assert cells("DaemonSet", ds)[:7] == ["d", 3, 0, 2, 0, 0, "a=b"]
    rs = {"metadata": {"name": "r"}, "spec": {"replicas": 2, "selector": {}}}
    assert cells("ReplicaSet", rs)[:4] == ["r", 2, 0, 0]
    assert cells("ReplicaSet", rs)[-1] == "<none>"


def test_small_kinds_cells():
    assert cells("Secret", {"metadata": {"name": "s"}, "type": "Opaque",
                            "data": {"a": "", "b": ""}})[:3] == ["s", "Opaque", 2]
    assert cells("ServiceAccount", {"metadata": {"name": "default"}})[:2] == ["default", 0]
    assert cells("Lease", {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}})[:2] == [
        "l", "me"]
    assert cells("Namespace", {"metadata": {"name": "x"}, "status": {"phase": "Active"}})[:2] == [
        "x", "Active"]
    revision = {"metadata": {"name": "web-5d8f", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "web", "controller": True}]},
        "revision": 3}
    assert cells("ControllerRevision", revision)[:3] == ["web-5d8f", "daemonset.apps/web", 3]
    assert cells("ControllerRevision", {"metadata": {"name": "r"}})[:3] == ["r", "<none>", 0]
    ep = {"metadata": {"name": "e"}, "subsets": [
        {"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 5)], "ports": [{"port": 80}]}]}
    assert cells("Endpoints", ep)[1] == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."
    assert cells("Endpoints", {"metadata": {"name": "e"}})[1] == "<none>"


def test_event_cells_and_columns():
    event = {"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Scheduled",
             "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": " assigned \n",
             "firstTimestamp": stamp(timedelta(minutes=8)),
             "lastTimestamp": stamp(timedelta(seconds=30)), "count": 3,
             "source": {"component": "scheduler"}}
    assert cells("Event", event) == ["30s", "Normal", "Scheduled", "pod/web-1", "", "scheduler",
                                     "assigned", "8m", 3, "web.1"]
    columns = table.columns_for("Event")
    assert [c["name"] for c in columns if c["priority"] == 0] == [
        "Last Seen", "Type", "Reason", "Object", "Message"]


@pytest.mark.parametrize("kind, expected", [
    ("Pod", ["Name", "Ready", "Status", "Restarts", "Age"]),
    ("ReplicaSet", ["Name", "Desired", "Current", "Ready", "Age"]),
    ("DaemonSet", ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available",
                   "Node Selector", "Age"]),
    ("StatefulSet", ["Name", "Ready", "Age"]),
    ("Job", ["Name", "Status", "Completions", "Duration", "Age"]),
    ("CronJob", ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"]),
    ("Service", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]),
    ("Endpoints", ["Name", "Endpoints", "Age"]),
    ("Node", ["Name", "Status", "Roles", "Age", "Version"]),
    ("Namespace", ["Name", "Status", "Age"]),
    ("Secret", ["Name", "Type", "Data", "Age"]),
    ("ServiceAccount", ["Name", "Secrets", "Age"]),
    ("Lease", ["Name", "Holder", "Age"]),
    ("ControllerRevision", ["Name", "Controller", "Revision", "Age"]),
    ("Unknown", ["Name", "Age"]),
])
def test_default_columns(kind, expected):
    assert [c["name"] for c in table.columns_for(kind) if c["priority"] == 0] == expected


def test_every_row_has_one_cell_per_column():
    for r in kinds.RESOURCES:
        printed = table.to_table(r, [{"metadata": {"name": "x"}}], {}, now=NOW)
        assert len(printed["rows"][0]["cells"]) == len(printed["columnDefinitions"]), r.kind


# -------------------------------------------------------------------- watch

def test_watch_with_table_accept_streams_one_row_tables(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment()).json
    rv = created["metadata"]["resourceVersion"]
    client.simulate_post(DEPLOYMENTS, json=deployment("api"))
    client.simulate_delete(f"{DEPLOYMENTS}/web")
    streamed = client.simulate_get(DEPLOYMENTS, headers={"Accept": KUBECTL_ACCEPT}, params={
        "watch": "true", "resourceVersion": str(int(rv) - 1), "timeoutSeconds": "1"})
    events = [json.loads(line) for line in streamed.text.splitlines()]
    assert [e["type"] for e in events] == ["ADDED", "ADDED", "DELETED"]
    for event in events:
        assert event["object"]["kind"] == "Table" and len(event["object"]["rows"]) == 1
    assert [e["object"]["rows"][0]["cells"][0] for e in events] == ["web", "api", "web"]
    # Like kube-apiserver: column definitions on the first event only.
    assert names(events[0]["object"])[:2] == ["Name", "Ready"]
    assert events[1]["object"]["columnDefinitions"] is None
    assert events[2]["object"]["metadata"]["resourceVersion"]


def test_watch_without_table_accept_is_unchanged(client):
    created = client.simulate_post(DEPLOYMENTS, json=deployment()).json
    streamed = client.simulate_get(DEPLOYMENTS, params={
        "watch": "true", "resourceVersion": str(int(created["metadata"]["resourceVersion"]) - 1),
        "timeoutSeconds": "1"})
    assert json.loads(streamed.text.splitlines()[0])["object"]["kind"] == "Deployment"


def test_watch_transform_makes_bookmarks_empty_tables():
    transform = table.watch_transform(resource("Pod"), clock=lambda: NOW)
    bookmark = transform("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    assert bookmark["rows"] == [] and bookmark["metadata"]["resourceVersion"] == "9"
    first = transform("ADDED", {"metadata": {"name": "p", "resourceVersion": "10"}})
    assert first["columnDefinitions"] and first["rows"][0]["cells"][0] == "p"
