"""The Node authorizer: a node reads the claims its pods use and the volumes bound to them."""

import pytest

from tests.unit.control.auth.test_api_authz import As, make_client, namespace, pod


@pytest.fixture
def client(tmp_path):
    client = make_client(tmp_path)
    admin = As(client, "admin")
    assert admin.simulate_post("/api/v1/namespaces", json=namespace("team")).status_code == 201
    for name in ("n1", "n2"):
        assert admin.simulate_post("/api/v1/nodes", json={
            "metadata": {"name": name}}).status_code == 201
    for name in ("data", "other"):
        created = admin.simulate_post("/api/v1/namespaces/team/persistentvolumeclaims", json={
            "metadata": {"name": name}, "spec": {
                "accessModes": ["ReadWriteOnce"], "volumeName": f"pv-{name}",
                "resources": {"requests": {"storage": "1Gi"}}}})
        assert created.status_code == 201, created.text
        created = admin.simulate_post("/api/v1/persistentvolumes", json={
            "metadata": {"name": f"pv-{name}"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                "hostPath": {"path": f"/srv/{name}"}}})
        assert created.status_code == 201, created.text
    user = pod("db", "n1")
    user["spec"]["volumes"] = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    assert admin.simulate_post("/api/v1/namespaces/team/pods", json=user).status_code == 201
    return client


@pytest.mark.parametrize("who, path, code", [
    ("n1", "/api/v1/namespaces/team/persistentvolumeclaims/data", 200),
    ("n1", "/api/v1/persistentvolumes/pv-data", 200),
    ("n1", "/api/v1/namespaces/team/persistentvolumeclaims/other", 403),
    ("n1", "/api/v1/persistentvolumes/pv-other", 403),
    ("n1", "/api/v1/persistentvolumes", 403),
    ("n2", "/api/v1/namespaces/team/persistentvolumeclaims/data", 403),
    ("n2", "/api/v1/persistentvolumes/pv-data", 403),
])
def test_a_node_reads_only_its_pods_claims_and_their_volumes(client, who, path, code):
    response = As(client, who).simulate_get(path)
    assert response.status_code == code, response.text
    if code == 403:
        assert "node" in response.json["message"]


def test_a_node_may_not_write_volumes(client):
    n1 = As(client, "n1")
    response = n1.simulate_delete("/api/v1/persistentvolumes/pv-data")
    assert response.status_code == 403
    assert As(client, "admin").simulate_get("/api/v1/persistentvolumes/pv-data").status_code \
        == 200
