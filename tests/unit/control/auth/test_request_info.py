"""Request attributes from URLs, as kube-apiserver's RequestInfoFactory reads them."""

import pytest

from control.api.auth.request_info import request_info


@pytest.mark.parametrize("method, path, params, expected", [
    ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods", {"watch": "true"},
     ("watch", "", "pods", "", "default", "")),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, ("get", "", "pods", "", "default", "web")),
    ("GET", "/api/v1/namespaces/default/pods/web/log", {},
     ("get", "", "pods", "log", "default", "web")),
    ("POST", "/api/v1/namespaces/default/pods/web/binding", {},
     ("create", "", "pods", "binding", "default", "web")),
    ("DELETE", "/apis/apps/v1/namespaces/ns/deployments", {},
     ("deletecollection", "apps", "deployments", "", "ns", "")),
    ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/d/scale", {},
     ("patch", "apps", "deployments", "scale", "ns", "d")),
    ("PUT", "/api/v1/nodes/n1/status", {}, ("update", "", "nodes", "status", "", "n1")),
    ("GET", "/api/v1/pods", {"fieldSelector": "spec.nodeName=n1"},
     ("list", "", "pods", "", "", "")),
    ("GET", "/api/v1/namespaces/kube-system", {},
     ("get", "", "namespaces", "", "kube-system", "kube-system")),
    ("PUT", "/api/v1/namespaces/ns/finalize", {},
     ("update", "", "namespaces", "finalize", "ns", "ns")),
    ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "", "")),
    ("GET", "/api/v1/namespaces/ns/secrets", {"fieldSelector": "metadata.name=s"},
     ("list", "", "secrets", "", "ns", "s")),
    ("POST", "/api/v1/namespaces/ns/serviceaccounts/sa/token", {},
     ("create", "", "serviceaccounts", "token", "ns", "sa")),
])
def test_resource_requests(method, path, params, expected):
    info = request_info(method, path, params)
    assert info.resource_request
    assert (info.verb, info.api_group, info.resource, info.subresource, info.namespace,
            info.name) == expected


@pytest.mark.parametrize("method, path, verb", [
    ("GET", "/healthz", "get"), ("GET", "/version", "get"), ("GET", "/api", "get"),
    ("GET", "/apis", "get"), ("GET", "/apis/apps", "get"), ("GET", "/apis/apps/v1", "get"),
    ("GET", "/api/v1", "get"), ("GET", "/openapi/v3/apis/apps/v1", "get"),
    ("POST", "/metrics", "post"),
])
def test_non_resource_requests(method, path, verb):
    info = request_info(method, path, {})
    assert not info.resource_request and info.verb == verb and info.path == path


def test_repeated_parameters_count_once():
    info = request_info("GET", "/api/v1/pods", {"watch": ["false", "true"],
                                                "fieldSelector": ["a=b", "spec.nodeName=n"]})
    assert info.verb == "watch" and info.field_selector == "spec.nodeName=n"
