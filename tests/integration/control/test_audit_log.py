"""The audit log of a real API server: the lines a create and a get produce; rotation."""

import json
import os
import stat
import time

import pytest
import yaml

from control.objects.kinds import CONFIGMAPS, SECRETS

POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
          "rules": [
              {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*"]},
              {"level": "None", "resources": [{"group": "coordination.k8s.io"}]},
              {"level": "Request", "resources": [{"group": "", "resources": ["configmaps",
                                                                             "secrets"]}]},
              {"level": "Metadata"},
          ]}


@pytest.fixture(scope="module")
def audit_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("audit")


@pytest.fixture(scope="module")
def server_args(audit_dir):
    policy = audit_dir / "policy.yaml"
    policy.write_text(yaml.safe_dump(POLICY))
    return ["--audit-policy-file", str(policy), "--audit-log-path",
            str(audit_dir / "logs" / "audit.log"),
            "--audit-log-maxsize", "0.02", "--audit-log-maxbackup", "2"]


def read_events(audit_dir):
    path = audit_dir / "logs" / "audit.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def wait_for_event(audit_dir, match, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in read_events(audit_dir) if match(e)]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def by_name(verb, name):
    return lambda e: e["verb"] == verb and e.get("objectRef", {}).get("name") == name


def test_create_and_get_are_logged_at_their_levels(server, rest, audit_dir):
    rest.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "audited"}, "data": {"a": "b"}})
    rest.get(CONFIGMAPS, "default", "audited")
    rest.create(SECRETS, "default", {"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "hidden"},
                                     "data": {"k": "dG9wLXNlY3JldC12YWx1ZQ=="}})

    created = wait_for_event(audit_dir, lambda e: e["verb"] == "create" and
                             e.get("objectRef", {}).get("resource") == "configmaps")
    assert len(created) == 1
    event = created[0]
    assert event["level"] == "Request" and event["stage"] == "ResponseComplete"
    assert event["requestObject"]["data"] == {"a": "b"}
    assert event["responseStatus"]["code"] == 201
    assert event["objectRef"]["namespace"] == "default"
    assert event["user"]["username"] in ("admin", "system:anonymous")
    assert event["sourceIPs"] == ["127.0.0.1"]

    (got,) = wait_for_event(audit_dir, by_name("get", "audited"))
    assert got["level"] == "Request" and got["responseStatus"]["code"] == 200
    assert "requestObject" not in got           # a GET has no body

    (secret,) = wait_for_event(audit_dir, lambda e: e["verb"] == "create" and
                               e.get("objectRef", {}).get("resource") == "secrets")
    assert secret["level"] == "Metadata" and "requestObject" not in secret
    assert "dG9wLXNlY3JldC12YWx1ZQ" not in (audit_dir / "logs" / "audit.log").read_text()
    assert not any(e.get("objectRef", {}).get("resource") == "leases"
                   for e in read_events(audit_dir))
    assert not any(e["requestURI"].startswith("/readyz") for e in read_events(audit_dir))
    assert stat.S_IMODE(os.stat(audit_dir / "logs" / "audit.log").st_mode) == 0o600


def test_the_log_rotates_and_keeps_two_backups(server, rest, audit_dir):
    logs = audit_dir / "logs"
    # About 20 KiB a file: each event is a few hundred bytes.
    big = "x" * 2000
    for i in range(40):
        rest.create(CONFIGMAPS, "default", {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": f"filler-{i}"},
                                            "data": {"v": big}})
    backups = sorted(p for p in os.listdir(logs) if p.startswith("audit-") and
                     p.endswith(".log"))
    assert len(backups) == 2, os.listdir(logs)
    for name in backups + ["audit.log"]:
        assert os.path.getsize(logs / name) <= 0.02 * 1024 * 1024
        assert stat.S_IMODE(os.stat(logs / name).st_mode) == 0o600
    events = [json.loads(line) for line in (logs / "audit.log").read_text().splitlines()]
    assert events and all(e["kind"] == "Event" for e in events)
