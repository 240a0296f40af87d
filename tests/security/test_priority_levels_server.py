"""Priority levels on a real server: 300 lists from one user do not starve the system.

The server has 6 seats per worker (global-default: 1 seat and a queue of 50). An
ordinary user opens 300 connections and sends a LIST on each at once; meanwhile a
node agent renews its Lease and the scheduler its leader-election Lease, each with
its own client certificate: neither is refused, and the user's overflow is answered
429 with Retry-After.
"""

import json
import socket
import ssl
import threading

from tests.security.conftest import RawClient

SERVER_ARGS = ["--max-requests-inflight", "4", "--max-mutating-requests-inflight", "2"]
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
FLOOD = 300


class AsUser(RawClient):
    """A RawClient presenting another client certificate of the server's CA."""

    def __init__(self, server, name, cn, orgs=()):
        super().__init__(server)
        issued = server.issue_client(name, cn, orgs)
        self.context = ssl.create_default_context(cafile=server.ca_file)
        self.context.load_cert_chain(issued.cert, issued.key)

    def connect(self, timeout=60):
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=timeout)
        return self.context.wrap_socket(sock, server_hostname="127.0.0.1")


def _lease(name, namespace, holder):
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}}


def _renew(client, path):
    current = client.request("GET", path)
    assert current.status == 200, current
    body = current.json
    body["spec"]["renewTime"] = "2026-12-05T00:00:00.000000Z"
    return client.request("PUT", path, json.dumps(body))


def test_flood_from_one_user_leaves_node_and_leader_election_through(server, raw):
    base = "/apis/coordination.k8s.io/v1/namespaces"
    for name, namespace in (("flood-node", "kube-node-lease"), ("steer-scheduler", "kube-system")):
        created = raw.request("POST", f"{base}/{namespace}/leases",
                              _lease(name, namespace, name))
        assert created.status in (201, 409), created
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "flooder-view", "namespace": "default"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                             "name": "flooder"}]}
    assert raw.request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/"
                       "rolebindings", binding).status == 201
    user = AsUser(server, "flooder", "flooder", ["developers"])
    node = AsUser(server, "flood-node", "system:node:flood-node", ["system:nodes"])
    scheduler = AsUser(server, "flood-scheduler", "system:kube-scheduler")

    sockets = [user.connect() for _ in range(FLOOD)]
    request = (f"GET {CONFIGMAPS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n").encode()
    answers, lock = [], threading.Lock()

    def read(sock):
        try:
            answer = RawClient.receive(sock)
        finally:
            sock.close()
        with lock:
            answers.append(answer)

    for sock in sockets:
        sock.sendall(request)
    readers = [threading.Thread(target=read, args=(sock,)) for sock in sockets]
    for reader in readers:
        reader.start()
    try:
        node_renewed = _renew(node, f"{base}/kube-node-lease/leases/flood-node")
        scheduler_renewed = _renew(scheduler, f"{base}/kube-system/leases/steer-scheduler")
    finally:
        for reader in readers:
            reader.join(120)
    assert node_renewed.status == 200, node_renewed
    assert scheduler_renewed.status == 200, scheduler_renewed
    codes = [answer.status for answer in answers]
    assert len(codes) == FLOOD
    assert set(codes) <= {200, 429}, sorted(set(codes))
    refused = [answer for answer in answers if answer.status == 429]
    assert refused, "300 simultaneous lists never overflowed one seat and a queue of 50"
    assert all(answer.headers.get("retry-after") == "1" for answer in refused)
    assert refused[0].json["reason"] == "TooManyRequests"
    metrics = raw.request("GET", "/metrics").body.decode()
    assert 'apiserver_flowcontrol_rejected_requests_total{flow_schema="global-default",' \
           'priority_level="global-default",reason="queue-full"}' in metrics
    # The flood is over: the user is served again.
    assert user.request("GET", CONFIGMAPS).status == 200
