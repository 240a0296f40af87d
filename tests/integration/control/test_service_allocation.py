"""Service clusterIPs and nodePorts from two API servers on one store; steer's and
kubectl's view."""

import concurrent.futures
import json
import urllib.error
import urllib.request

import pytest

from store.client import prefix_end

SERVER_ARGS = ["--service-cluster-ip-range", "10.100.0.0/24", "--service-node-port-range",
               "30000-30099"]
SVCS = "/api/v1/namespaces/default/services"
IPS, PORTS = b"/registry/ipallocations/", b"/registry/nodeportallocations/"


def call(server, method, path, body=None, content_type="application/json"):
    request = urllib.request.Request(server.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": content_type})
    try:
        with server.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def claimed(server, prefix):
    with server.store.client() as store:
        return {kv["key"][len(prefix):].decode()
                for kv in store.get(prefix, range_end=prefix_end(prefix))["kvs"]}


def test_two_servers_allocate_distinct_values_concurrently(servers):
    def create(n):
        body = {"metadata": {"name": f"s{n}"},
                "spec": {"type": "NodePort", "selector": {"app": "x"},
                         "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
        return call(servers[n % 2], "POST", SVCS, body)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(create, range(50)))
    assert [status for status, _ in results] == [201] * 50, \
        [body for status, body in results if status != 201][:3]
    ips = [body["spec"]["clusterIP"] for _, body in results]
    node_ports = [p["nodePort"] for _, body in results for p in body["spec"]["ports"]]
    assert len(set(ips)) == 50 and len(set(node_ports)) == 100
    assert all(ip.startswith("10.100.0.") for ip in ips)
    assert all(30000 <= port <= 30099 for port in node_ports)
    assert claimed(servers[0], IPS) == set(ips)
    assert claimed(servers[0], PORTS) == {str(p) for p in node_ports}
    # The node-port range is now full: Kubernetes' words, from either server.
    status, body = call(servers[1], "POST", SVCS, {
        "metadata": {"name": "one-too-many"},
        "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    assert status == 500 and "range is full" in body["message"]
    # A requested value taken through the other server is refused.
    status, body = call(servers[1], "POST", SVCS, {
        "metadata": {"name": "copycat"}, "spec": {"clusterIP": ips[0], "ports": [{"port": 80}]}})
    assert status == 422 and "provided IP is already allocated" in body["message"]
    # Deleting through either server releases everything.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        deleted = list(pool.map(lambda n: call(servers[n % 2], "DELETE", f"{SVCS}/s{n}"),
                                range(50)))
    assert [status for status, _ in deleted] == [200] * 50
    assert claimed(servers[0], IPS) == set() and claimed(servers[0], PORTS) == set()


NODEPORT_MANIFEST = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
    nodePort: 30080
"""


def test_steer_shows_cluster_ip_and_node_port(servers):
    api = servers[0]
    assert "created" in api.steer("apply", "-f", "-", input=NODEPORT_MANIFEST).stdout
    # Applying again keeps the allocated values (the patch carries no clusterIP).
    assert "unchanged" in api.steer("apply", "-f", "-", input=NODEPORT_MANIFEST).stdout
    table = api.steer("get", "svc", "web").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    web = table[1].split()
    assert web[:2] == ["web", "NodePort"] and web[2].startswith("10.100.0.")
    assert web[3] == "<none>" and web[4] == "80:30080/TCP"
    assert api.steer("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout == web[2]
    # Changing the clusterIP is refused with Kubernetes' words.
    status, body = call(api, "PATCH", f"{SVCS}/web", {"spec": {"clusterIP": "10.100.0.250"}},
                        content_type="application/merge-patch+json")
    assert status == 422 and "field is immutable" in body["message"]
    api.steer("delete", "svc", "web")
    assert "30080" not in claimed(api, PORTS)


@pytest.mark.kubectl
def test_kubectl_shows_cluster_ip_and_node_port(servers):
    api = servers[0]
    api.kubectl("apply", "-f", "-", input=NODEPORT_MANIFEST)
    # Applying again keeps the allocated values (the patch carries no clusterIP).
    assert "unchanged" in api.kubectl("apply", "-f", "-", input=NODEPORT_MANIFEST).stdout
    # `kubectl create service` posts protobuf (control/api/protobuf/).
    api.kubectl("create", "service", "clusterip", "plain", "--tcp=8080:80")
    table = api.kubectl("get", "svc", "web", "plain").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]
    web, plain = (line.split() for line in table[1:])
    assert web[:2] == ["web", "NodePort"] and web[2].startswith("10.100.0.")
    assert web[3] == "<none>" and web[4] == "80:30080/TCP"
    assert plain[:2] == ["plain", "ClusterIP"] and plain[2].startswith("10.100.0.")
    assert plain[4] == "8080/TCP"
    ip = api.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ip == web[2]
    # Changing the clusterIP is refused with Kubernetes' words.
    result = api.kubectl("patch", "svc", "web", "-p", '{"spec":{"clusterIP":"10.100.0.250"}}',
                         check=False)
    assert result.returncode != 0 and "field is immutable" in result.stderr
    api.kubectl("delete", "svc", "web", "plain")
    assert "30080" not in claimed(api, PORTS)


@pytest.mark.kubectl
def test_kubectl_expose(servers):
    api = servers[1]
    deployment = api.kubectl("create", "deployment", "shop", "--image=nginx", "--port=8080",
                             "--dry-run=client", "-o", "yaml").stdout
    api.kubectl("apply", "-f", "-", input=deployment)
    api.kubectl("expose", "deployment", "shop", "--port=80", "--target-port=8080",
                "--type=NodePort")
    row = api.kubectl("get", "svc", "shop", "--no-headers").stdout.split()
    assert row[:2] == ["shop", "NodePort"] and row[2].startswith("10.100.0.")
    port = int(row[4].split(":")[1].split("/")[0])
    assert row[4] == f"80:{port}/TCP" and 30000 <= port <= 30099
    assert str(port) in claimed(api, PORTS)
