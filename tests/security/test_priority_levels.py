"""Priority levels (control/api/priority.py): a flood from one user fills only its level.

An ordinary user's 300 requests stall in the store (a store whose reads of one key
wait to be released: slow requests, each holding its seat); the node agent's and
the scheduler's leader-election requests still get through, the user gets 429s
with Retry-After, and the rejections are counted per priority level on /metrics.
"""

import itertools
import threading

import falcon.testing
import pytest

from control.api import priority
from control.api.app import create_app
from control.api.auth import authn
from tests.support.fake_store import FakeStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
NODE_LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
FLOOD = 300


def identity(cn, *orgs):
    cert = {"subject": ((("commonName", cn),), *((("organizationName", o),) for o in orgs))}
    return {"extras": {authn.PEER_CERT_KEY: cert}}


ADMIN = identity("admin", "system:masters")
USER = identity("mallory", "developers")
NODE = identity("system:node:n1", "system:nodes")
SCHEDULER = identity("system:kube-scheduler")
CONTROLLERS = identity("system:kube-controller-manager")


class StallingStore(FakeStore):
    """Reads of keys ending in ``/stall`` wait until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def get(self, key, *args, **kwargs):
        if key.endswith(b"/stall"):
            self.entered.release()
            assert self.release.wait(60)
        return super().get(key, *args, **kwargs)


def lease(name, namespace, holder):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}}


@pytest.fixture
def flooded():
    """An app (30 seats: 3 for global-default) whose global-default level a user fills."""
    store = StallingStore()
    client = falcon.testing.TestClient(create_app(
        store, max_requests_inflight=20, max_mutating_requests_inflight=10,
        enable_priority_and_fairness=True))
    for name, namespace in (("kube-scheduler", "kube-system"), ("n1", "kube-node-lease")):
        created = client.simulate_post(
            f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases",
            json=lease(name, namespace, name), **ADMIN)
        assert created.status_code == 201, created.text
    answers, lock = [], threading.Lock()

    def flood_one():
        answer = client.simulate_get(f"{CONFIGMAPS}/stall", **USER)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=flood_one) for _ in range(FLOOD)]
    for thread in threads:
        thread.start()
    try:
        # The level's 3 seats are held in the store; the rest queue (50) or are refused.
        for _ in range(3):
            assert store.entered.acquire(timeout=30)
        yield client, store, answers
    finally:
        store.release.set()
        for thread in threads:
            thread.join(60)


def test_flood_of_one_user_leaves_nodes_and_leader_election_their_seats(flooded):
    client, store, answers = flooded
    # The node agent renews its lease and reads its Node; the scheduler renews its lease.
    node_lease = client.simulate_get(f"{NODE_LEASES}/n1", **NODE)
    assert node_lease.status_code == 200
    node_lease.json["spec"]["renewTime"] = "2026-12-05T00:00:00.000000Z"
    renewed = client.simulate_put(f"{NODE_LEASES}/n1", json=node_lease.json, **NODE)
    assert renewed.status_code == 200, renewed.text
    assert client.simulate_get("/api/v1/nodes/n1", **NODE).status_code == 404
    current = client.simulate_get(f"{LEASES}/kube-scheduler", **SCHEDULER).json
    current["spec"]["holderIdentity"] = "kube-scheduler-2"
    updated = client.simulate_put(f"{LEASES}/kube-scheduler", json=current, **SCHEDULER)
    assert updated.status_code == 200, updated.text
    assert updated.headers["X-Kubernetes-PF-PriorityLevel-UID"] == \
        priority._uid("prioritylevels", "leader-election")
    # The controller manager's other work is workload-high: seats of its own too.
    assert client.simulate_get(CONFIGMAPS, **CONTROLLERS).status_code == 200
    # The admin is exempt; the ordinary user, meanwhile, is refused at once.
    assert client.simulate_get(CONFIGMAPS, **ADMIN).status_code == 200
    refused = client.simulate_get(CONFIGMAPS, **USER)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json["reason"] == "TooManyRequests"
    assert refused.headers["X-Kubernetes-PF-FlowSchema-UID"] == \
        priority._uid("flowschemas", "global-default")
    metrics = client.simulate_get("/metrics", **ADMIN).text
    assert ('apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",'
            'priority_level="global-default",reason="queue-full"}') in metrics
    assert 'apiserver_flowcontrol_current_executing_requests{priority_level="global-default"} 3' \
        in metrics
    assert 'apiserver_flowcontrol_current_inqueue_requests{priority_level="global-default"} 50' \
        in metrics
    # Released, the queued requests are served; only the overflow was refused.
    store.release.set()
    client.simulate_get(CONFIGMAPS, **ADMIN)
    for _ in range(600):
        if len(answers) == FLOOD:
            break
        threading.Event().wait(0.05)
    codes = sorted(a.status_code for a in answers)
    assert codes.count(404) == 3 + 50
    assert codes.count(429) == FLOOD - 53
    assert all(a.headers["Retry-After"] == "1" for a in answers if a.status_code == 429)
    assert client.simulate_get(CONFIGMAPS, **USER).status_code == 200


def test_classification_follows_the_default_flow_schemas():
    from control.api.auth import user as users
    from control.api.auth.request_info import request_info

    def level(user, method, path):
        return priority.classify(user, request_info(method, path, {}), path)

    sa = users.authenticated("system:serviceaccount:kube-system:attachdetach-controller",
                             users.service_account_groups("kube-system"))
    app_sa = users.authenticated("system:serviceaccount:team:app",
                                 users.service_account_groups("team"))
    assert level(users.authenticated("admin", ["system:masters"]), "GET", CONFIGMAPS) == \
        ("exempt", "exempt")
    assert level(users.anonymous(), "GET", "/readyz") == ("probes", "exempt")
    assert level(users.authenticated("system:kube-scheduler"), "PUT", f"{LEASES}/x") == \
        ("system-leader-election", "leader-election")
    assert level(sa, "PUT", f"{LEASES}/x") == ("system-leader-election", "leader-election")
    assert level(users.authenticated("system:kube-scheduler"), "GET", "/api/v1/pods") == \
        ("kube-system-components", "workload-high")
    assert level(sa, "GET", "/api/v1/pods") == ("kube-system-components", "workload-high")
    assert level(users.authenticated("system:node:n1", ["system:nodes"]), "PUT",
                 f"{NODE_LEASES}/n1") == ("system-nodes", "system")
    assert level(app_sa, "GET", CONFIGMAPS) == ("service-accounts", "workload-low")
    assert level(users.authenticated("mallory"), "PUT", f"{LEASES}/kube-scheduler") == \
        ("global-default", "global-default")
    assert level(users.anonymous(), "GET", "/api") == ("global-default", "global-default")
    assert level(users.UserInfo("odd", ()), "GET", "/api") == ("catch-all", "catch-all")


def test_a_queued_request_gets_its_seat_or_429_after_the_wait():
    from control.api.auth import user as users

    ticks = itertools.count(0, 10)      # every reading of the clock is 10 s later
    levels = priority.PriorityLevels(30, queue_wait=5, clock=lambda: next(ticks))

    def admit():
        req = falcon.testing.create_req(path=CONFIGMAPS)
        req.context.user = users.authenticated("mallory")
        return levels.admit(req, falcon.Response())

    held = [admit() for _ in range(levels.levels["global-default"].seats)]
    # Queued with no seat freed: past its deadline at the next reading, refused.
    with pytest.raises(Exception) as refused:
        admit()
    assert refused.value.code == 429
    levels.release(held.pop())
    assert admit() == "global-default"
