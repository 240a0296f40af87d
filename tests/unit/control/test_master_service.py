"""The default/kubernetes Service, Endpoints and EndpointSlice the API server writes."""

from control.api import masterservice
from control.api.app import create_app
from control.api.service import for_store
from control.objects import kinds
from tests.support.fake_store import FakeStore
from tests.unit.control.auth.test_api_authz import As, make_client

CIDR = "10.96.0.0/12"


def service_with_master(address="172.31.250.254", port=6443):
    service = for_store(FakeStore(), cluster_ip_range=CIDR)
    create_app(None, service=service, advertise_address=address, advertise_port=port)
    return service


def test_first_address_of_the_range():
    assert masterservice.first_address("10.96.0.0/12") == "10.96.0.1"
    assert masterservice.first_address("127.64.0.0/16") == "127.64.0.1"


def test_service_endpoints_and_slice_are_written_at_start():
    service = service_with_master()
    svc = service.get(kinds.SERVICES, "default", "kubernetes")
    assert svc["spec"]["clusterIP"] == "10.96.0.1"
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                     "targetPort": 6443}]
    assert not svc["spec"].get("selector")
    eps = service.get(kinds.ENDPOINTS, "default", "kubernetes")
    assert eps["subsets"] == [{"addresses": [{"ip": "172.31.250.254"}],
                               "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    eps_slice = service.get(kinds.ENDPOINTSLICES, "default", "kubernetes")
    assert eps_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert eps_slice["endpoints"][0]["addresses"] == ["172.31.250.254"]
    assert eps_slice["ports"][0]["port"] == 6443


def test_a_changed_advertise_address_or_port_is_repaired():
    service = service_with_master()
    masterservice.ensure(service, CIDR, "172.31.250.253", 7443)
    eps = service.get(kinds.ENDPOINTS, "default", "kubernetes")
    assert eps["subsets"][0]["addresses"] == [{"ip": "172.31.250.253"}]
    assert eps["subsets"][0]["ports"][0]["port"] == 7443
    assert service.get(kinds.ENDPOINTSLICES, "default", "kubernetes")["endpoints"][0][
        "addresses"] == ["172.31.250.253"]
    assert service.get(kinds.SERVICES, "default", "kubernetes")["spec"]["ports"][0][
        "targetPort"] == 7443


def test_a_deleted_service_comes_back():
    service = service_with_master()
    service.delete(kinds.SERVICES, "default", "kubernetes")
    masterservice.ensure(service, CIDR, "172.31.250.254", 6443)
    assert service.get(kinds.SERVICES, "default", "kubernetes")["spec"]["clusterIP"] == \
        "10.96.0.1"


def test_nothing_is_written_without_an_advertise_address():
    service = for_store(FakeStore(), cluster_ip_range=CIDR)
    create_app(None, service=service)
    items, _, _ = service.list(kinds.SERVICES, "default")
    assert items == []


def test_a_node_reads_services_for_its_containers_variables_but_writes_none(tmp_path):
    n1 = As(make_client(tmp_path), "n1")
    assert n1.simulate_get("/api/v1/namespaces/default/services").status_code == 200
    assert n1.simulate_get("/api/v1/services").status_code == 200
    created = n1.simulate_post("/api/v1/namespaces/default/services", json={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80}]}})
    assert created.status_code == 403
