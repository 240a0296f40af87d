"""The audit policy's matching, the events the middleware writes, the log's rotation."""

import json
import os
import stat

import falcon.testing
import pytest
import yaml

from control.api import audit
from control.api.app import create_app
from control.api.auditlog import AuditLog
from control.api.auth.request_info import RequestInfo
from tests.support.fake_store import FakeStore

POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
          "rules": [
              {"level": "None", "users": ["system:kube-proxy"], "verbs": ["watch"]},
              {"level": "None", "nonResourceURLs": ["/healthz*", "/version"]},
              {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get"],
               "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}]},
              {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets"]}]},
              {"level": "Request", "namespaces": ["kube-system"],
               "resources": [{"group": "", "resources": ["configmaps"],
                              "resourceNames": ["cluster-info"]}]},
              {"level": "RequestResponse",
               "resources": [{"group": "apps", "resources": ["deployments", "*/scale"]}]},
              {"level": "Request", "verbs": ["create", "update", "patch"],
               "resources": [{"group": ""}]},
              {"level": "Metadata", "omitStages": ["ResponseStarted"]},
          ]}


def attrs(verb="get", resource="", group="", sub="", ns="", name="", path="/x",
          user="alice", groups=("system:authenticated",)):
    info = RequestInfo(verb, path, bool(resource), group, "v1", ns, resource, sub, name)
    return audit.Attributes(user, tuple(groups), info)


@pytest.mark.parametrize("a, level", [
    (attrs("watch", "endpoints", user="system:kube-proxy"), "None"),
    (attrs("list", "endpoints", user="system:kube-proxy"), "Metadata"),
    (attrs("get", path="/healthz"), "None"),
    (attrs("get", path="/healthz/etcd"), "None"),
    (attrs("get", path="/version"), "None"),
    (attrs("get", path="/version/x"), "Metadata"),
    (attrs("get", "nodes", name="n1", groups=("system:nodes",)), "None"),
    (attrs("get", "nodes", sub="status", name="n1", groups=("system:nodes",)), "None"),
    (attrs("update", "nodes", name="n1", groups=("system:nodes",)), "Request"),
    (attrs("create", "secrets", ns="default"), "Metadata"),
    (attrs("update", "configmaps", ns="kube-system", name="cluster-info"), "Request"),
    (attrs("get", "configmaps", ns="kube-system", name="cluster-info"), "Request"),
    (attrs("get", "configmaps", ns="kube-system", name="other"), "Metadata"),
    (attrs("get", "configmaps", ns="default", name="cluster-info"), "Metadata"),
    (attrs("get", "deployments", "apps", ns="default", name="web"), "RequestResponse"),
    (attrs("update", "deployments", "apps", sub="scale", ns="d", name="web"), "RequestResponse"),
    (attrs("update", "statefulsets", "apps", sub="scale", ns="d", name="s"), "RequestResponse"),
    (attrs("update", "statefulsets", "apps", ns="d", name="s"), "Metadata"),
    (attrs("create", "pods", ns="d"), "Request"),
    (attrs("create", "jobs", "batch", ns="d"), "Metadata"),
    (attrs("post", path="/apis"), "Metadata"),
])
def test_policy_matching_table(a, level):
    assert audit.parse_policy(POLICY).level(a)[0] == level


def test_omitted_stages_combine_policy_and_rule():
    _, omit = audit.parse_policy(POLICY).level(attrs("list", "pods"))
    assert omit == {"RequestReceived", "ResponseStarted"}


def test_no_rule_matches_means_none():
    policy = audit.parse_policy({**POLICY, "rules": [{"level": "Metadata", "users": ["bob"]}]})
    assert policy.level(attrs())[0] == "None"


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Policy", "apiVersion": "v1"}, "audit.k8s.io/v1"),
    ({**POLICY, "rules": [{"level": "Everything"}]}, "rules\\[0\\].level"),
    ({**POLICY, "rules": [{"level": "None", "verbs": "get"}]}, "verbs: want a list"),
    ({**POLICY, "rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}]},
     "cannot be combined"),
    ({**POLICY, "omitStages": ["Later"]}, "'Later' is not one of"),
])
def test_bad_policies_say_what_is_wrong(doc, message):
    with pytest.raises(audit.PolicyError, match=message):
        audit.parse_policy(doc)


# -- the middleware ----------------------------------------------------------------------
class User:
    def __init__(self, name, groups, uid=""):
        self.name, self.groups, self.uid = name, groups, uid


class SetUser:
    """Stands in for the authentication middleware (part of another change)."""

    def process_request(self, req, resp):
        name = req.get_header("X-Test-User")
        if name:
            req.context.user = User(name, ["system:authenticated", "dev"], uid="u-1")


def app_with_audit(tmp_path, policy=POLICY, **kwargs):
    policy_path = tmp_path / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(policy))
    log_path = tmp_path / "audit" / "audit.log"
    app = create_app(FakeStore(), audit_policy_file=str(policy_path),
                     audit_log_path=str(log_path), **kwargs)
    app.add_middleware(SetUser())
    return falcon.testing.TestClient(app), log_path


def events(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def test_create_and_get_write_the_right_events(tmp_path):
    client, log_path = app_with_audit(tmp_path)
    created = client.simulate_post("/api/v1/namespaces/default/pods", json=POD,
                                   headers={"X-Test-User": "alice", "User-Agent": "tester/1"})
    assert created.status_code == 201
    client.simulate_get("/api/v1/namespaces/default/pods/p")
    client.simulate_get("/healthz")
    first, second = events(log_path)
    assert first["kind"] == "Event" and first["apiVersion"] == "audit.k8s.io/v1"
    assert first["level"] == "Request" and first["stage"] == "ResponseComplete"
    assert first["verb"] == "create" and first["auditID"] == created.headers["Audit-Id"]
    assert first["user"] == {"username": "alice", "groups": ["system:authenticated", "dev"],
                             "uid": "u-1"}
    assert first["objectRef"] == {"resource": "pods", "namespace": "default",
                                  "apiVersion": "v1"}
    assert first["requestObject"]["metadata"]["name"] == "p"
    assert first["responseStatus"] == {"metadata": {}, "code": 201}
    assert first["userAgent"] == "tester/1" and first["sourceIPs"]
    assert first["requestURI"] == "/api/v1/namespaces/default/pods"
    assert first["requestReceivedTimestamp"].endswith("Z")
    assert second["level"] == "Metadata" and second["verb"] == "get"
    assert second["user"]["username"] == "system:anonymous"
    assert second["objectRef"]["name"] == "p" and "requestObject" not in second
    assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(log_path.parent).st_mode) == 0o700


def test_failures_carry_their_status_and_namespace_requests_their_name(tmp_path):
    client, log_path = app_with_audit(tmp_path)
    client.simulate_get("/api/v1/namespaces/default/pods/missing")
    client.simulate_get("/api/v1/namespaces/kube-system")
    missing, namespace = events(log_path)
    assert missing["responseStatus"]["code"] == 404
    assert missing["responseStatus"]["reason"] == "NotFound"
    assert namespace["objectRef"] == {"resource": "namespaces", "namespace": "kube-system",
                                      "name": "kube-system", "apiVersion": "v1"}


def test_secret_bodies_are_never_logged(tmp_path):
    everything = {**POLICY, "rules": [{"level": "RequestResponse"}]}
    client, log_path = app_with_audit(tmp_path, policy=everything)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "data": {"k": "c2VjcmV0LXZhbHVl"}}
    assert client.simulate_post("/api/v1/namespaces/default/secrets",
                                json=secret).status_code == 201
    client.simulate_post("/api/v1/namespaces/default/configmaps",
                         json={"metadata": {"name": "c"}, "data": {"a": "b"}})
    text = log_path.read_text()
    assert "c2VjcmV0LXZhbHVl" not in text
    logged_secret, logged_map = events(log_path)
    assert logged_secret["level"] == "Metadata" and "requestObject" not in logged_secret
    assert logged_map["level"] == "Request" and logged_map["requestObject"]["data"] == {"a": "b"}


def test_watches_are_logged_when_they_start(tmp_path):
    client, log_path = app_with_audit(tmp_path, policy={**POLICY, "rules": [
        {"level": "Metadata", "omitStages": ["ResponseComplete"]}]})
    client.simulate_get("/api/v1/namespaces/default/pods",
                        params={"watch": "true", "timeoutSeconds": "1"})
    (event,) = events(log_path)
    assert event["verb"] == "watch" and event["stage"] == "ResponseStarted"


def test_no_policy_no_audit(tmp_path):
    assert audit.middleware(None, str(tmp_path / "a.log")) == []
    assert audit.middleware(str(tmp_path / "p.yaml"), None) == []


# -- rotation ----------------------------------------------------------------------------
def test_the_log_rotates_by_size_and_keeps_max_backups(tmp_path):
    path = tmp_path / "audit.log"
    now = [1_700_000_000.0]

    def clock():
        now[0] += 1.5
        return now[0]

    log = AuditLog(str(path), max_size_mb=1000 / (1024 * 1024), max_backups=2, clock=clock)
    line = b"x" * 99                     # 100 bytes with its newline: 10 a file
    for _ in range(45):
        log.write(line)
    backups = log.backups()
    assert len(backups) == 2
    for name in backups + [str(path)]:
        assert os.path.getsize(name) <= 1000
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    assert os.path.getsize(path) == 500
    assert all(os.path.basename(b).startswith("audit-2023-11-") for b in backups)


def test_a_sibling_rotation_is_followed(tmp_path):
    path = tmp_path / "audit.log"
    one = AuditLog(str(path), max_size_mb=1000 / (1024 * 1024))
    two = AuditLog(str(path), max_size_mb=1000 / (1024 * 1024))
    for _ in range(10):
        one.write(b"a" * 99)
    two.write(b"b" * 99)              # two rotates the file one still has open
    one.write(b"c" * 99)
    assert path.read_bytes() == b"b" * 99 + b"\n" + b"c" * 99 + b"\n"
    assert len(one.backups()) == 1
