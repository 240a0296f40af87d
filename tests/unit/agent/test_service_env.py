"""agent/env.py service_env: the Service variables kubelet puts into every container."""

from agent import env


def svc(name, namespace, ip, ports):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": ip, "ports": ports}}


KUBERNETES = svc("kubernetes", "default", "10.96.0.1",
                 [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
WEB = svc("my-web", "team", "10.96.3.4",
          [{"name": "http", "port": 80, "protocol": "TCP"},
           {"name": "dns-udp", "port": 53, "protocol": "UDP"}])


def test_the_kubernetes_service_variables():
    assert env.service_env([KUBERNETES], "team") == {
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443",
        "KUBERNETES_PORT": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
        "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443",
        "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
    }


def test_a_service_of_the_pods_namespace_with_names_made_variable_safe():
    out = env.service_env([WEB], "team")
    assert out["MY_WEB_SERVICE_HOST"] == "10.96.3.4"
    assert out["MY_WEB_SERVICE_PORT"] == "80"
    assert out["MY_WEB_SERVICE_PORT_HTTP"] == "80"
    assert out["MY_WEB_SERVICE_PORT_DNS_UDP"] == "53"
    assert out["MY_WEB_PORT"] == "tcp://10.96.3.4:80"
    assert out["MY_WEB_PORT_53_UDP"] == "udp://10.96.3.4:53"
    assert out["MY_WEB_PORT_53_UDP_PROTO"] == "udp"
    assert out["MY_WEB_PORT_53_UDP_ADDR"] == "10.96.3.4"


def test_an_unnamed_single_port_has_no_port_name_variable():
    out = env.service_env([svc("db", "team", "10.96.0.7", [{"port": 5432}])], "team")
    assert out["DB_SERVICE_PORT"] == "5432"
    assert out["DB_PORT_5432_TCP"] == "tcp://10.96.0.7:5432"
    assert not [k for k in out if k.startswith("DB_SERVICE_PORT_")]


def test_other_namespaces_headless_and_external_services_give_nothing():
    other = svc("other", "elsewhere", "10.96.0.9", [{"port": 1}])
    headless = svc("headless", "team", "None", [{"port": 1}])
    external = {"metadata": {"name": "ext", "namespace": "team"},
                "spec": {"type": "ExternalName", "externalName": "example.org"}}
    assert env.service_env([other, headless, external], "team") == {}


def test_enable_service_links_false_keeps_only_the_master_service():
    out = env.service_env([KUBERNETES, WEB], "team", enable_service_links=False)
    assert "KUBERNETES_SERVICE_HOST" in out
    assert not [k for k in out if k.startswith("MY_WEB")]


def test_a_service_named_kubernetes_in_the_pods_namespace_wins():
    own = svc("kubernetes", "team", "10.96.9.9", [{"port": 8443}])
    assert env.service_env([KUBERNETES, own], "team")["KUBERNETES_SERVICE_HOST"] == "10.96.9.9"
    assert env.service_env([own, KUBERNETES], "team")["KUBERNETES_SERVICE_HOST"] == "10.96.9.9"


def test_container_env_overrides_and_refers_to_service_variables():
    pod = {"metadata": {"name": "p", "namespace": "team"}, "spec": {}}
    container = {"name": "c", "env": [
        {"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": "8443"}]}
    out = env.resolve_env(pod, container, lambda *a: None, "172.31.250.1",
                          extra=env.service_env([KUBERNETES], "team"))
    assert out["URL"] == "https://10.96.0.1:443"
    assert out["KUBERNETES_SERVICE_PORT"] == "8443"
