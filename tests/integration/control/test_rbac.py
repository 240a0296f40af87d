"""Authentication and RBAC on a real API server, through the official client and kubectl.

The server runs with --authorization-mode=Node,RBAC, a static token file and
--anonymous-auth=false. Users: the admin (client certificate, system:masters),
``viewer`` (a token, bound to view in namespace ``team``), ``nobody`` (a token,
bound to nothing), node ``node1`` (client certificate, system:nodes) and an
anonymous client.
"""

import json
import ssl
import urllib.request

import pytest
from kubernetes import client as k8s
from kubernetes import config

from tests.support.apiproc import write_kubeconfig
from tests.support.kubectl import run_kubectl

TOKENS = {"viewer": "viewer-token-0123456789", "nobody": "nobody-token-0123456789"}


@pytest.fixture(scope="module")
def server_args(tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    tokens = base / "tokens.csv"
    tokens.write_text("".join(f"{token},{user},uid-{user}\n" for user, token in TOKENS.items()))
    return ["--authorization-mode", "Node,RBAC", "--token-auth-file", str(tokens),
            "--anonymous-auth", "false"]


def _client(server, token=None):
    configuration = k8s.Configuration()
    configuration.host = server.url
    configuration.ssl_ca_cert = server.ca_file
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
    return k8s.ApiClient(configuration)


@pytest.fixture(scope="module")
def admin(server):
    api = config.new_client_from_config(config_file=server.kubeconfig)
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="team")))
    rbac.create_namespaced_role_binding("team", k8s.V1RoleBinding(
        metadata=k8s.V1ObjectMeta(name="viewer-view"),
        role_ref=k8s.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                               name="view"),
        subjects=[k8s.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User",
                                    name="viewer")]))
    for name, node in (("mine", "node1"), ("theirs", "node2")):
        core.create_namespaced_pod("team", k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name),
            spec=k8s.V1PodSpec(node_name=node, containers=[
                k8s.V1Container(name="c", image="busybox")])))
    return api


def _status(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except k8s.exceptions.ApiException as exc:
        return exc.status
    return 200


@pytest.fixture(scope="module")
def clients(server, admin):
    node = config.new_client_from_config(config_file=server.kubeconfig_for(
        "node1", "system:node:node1", ["system:nodes"]))
    return {"admin": admin, "viewer": _client(server, TOKENS["viewer"]),
            "nobody": _client(server, TOKENS["nobody"]), "node1": node,
            "anonymous": _client(server), "forged": _client(server, "not-a-token")}


@pytest.mark.parametrize("who, call, args, code", [
    ("admin", "list_namespaced_secret", ("kube-system",), 200),
    ("admin", "list_node", (), 200),
    ("viewer", "list_namespaced_pod", ("team",), 200),
    ("viewer", "read_namespaced_pod", ("mine", "team"), 200),
    ("viewer", "list_namespaced_secret", ("team",), 403),
    ("viewer", "list_namespaced_pod", ("default",), 403),
    ("viewer", "delete_namespaced_pod", ("mine", "team"), 403),
    ("viewer", "list_node", (), 403),
    ("nobody", "list_namespaced_pod", ("team",), 403),
    ("node1", "read_node", ("node1",), 404),
    ("node1", "read_namespaced_pod", ("mine", "team"), 200),
    ("node1", "read_namespaced_pod", ("theirs", "team"), 403),
    ("node1", "list_namespaced_secret", ("team",), 403),
    ("anonymous", "list_namespaced_pod", ("team",), 401),
    ("forged", "list_namespaced_pod", ("team",), 401),
])
def test_users_get_what_rbac_and_the_node_authorizer_allow(clients, who, call, args, code):
    core = k8s.CoreV1Api(clients[who])
    assert _status(getattr(core, call), *args) == code


def test_the_forbidden_message_names_user_verb_and_namespace(clients):
    with pytest.raises(k8s.exceptions.ApiException) as refused:
        k8s.CoreV1Api(clients["nobody"]).list_namespaced_pod("default")
    assert json.loads(refused.value.body)["message"] == (
        'pods is forbidden: User "nobody" cannot list resource "pods" in API group "" in the '
        'namespace "default"')


def test_a_node_lists_only_pods_bound_to_it(clients):
    core = k8s.CoreV1Api(clients["node1"])
    pods = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node1")
    assert [p.metadata.name for p in pods.items] == ["mine"]
    assert _status(core.list_pod_for_all_namespaces) == 403


def test_health_is_public_even_without_anonymous_auth(server):
    context = ssl.create_default_context(cafile=server.ca_file)
    for path in ("/healthz", "/readyz", "/version"):
        with urllib.request.urlopen(server.url + path, context=context, timeout=10) as answer:
            assert answer.status == 200


def test_self_subject_access_review_through_the_client(clients):
    review = k8s.AuthorizationV1Api(clients["viewer"]).create_self_subject_access_review(
        k8s.V1SelfSubjectAccessReview(spec=k8s.V1SelfSubjectAccessReviewSpec(
            resource_attributes=k8s.V1ResourceAttributes(verb="list", resource="pods",
                                                         namespace="team"))))
    assert review.status.allowed is True


@pytest.mark.kubectl
def test_kubectl_auth_can_i(server, admin, tmp_path):
    viewer = write_kubeconfig(str(tmp_path / "viewer"), server.url, server.ca_file,
                              token=TOKENS["viewer"])
    yes = run_kubectl(viewer, "auth", "can-i", "list", "pods", "-n", "team", check=False)
    assert yes.returncode == 0 and yes.stdout.strip() == "yes", yes.stderr
    no = run_kubectl(viewer, "auth", "can-i", "delete", "pods", "-n", "team", check=False)
    assert no.returncode == 1 and no.stdout.strip() == "no"
    assert server.kubectl("auth", "can-i", "*", "*").stdout.strip() == "yes"
    assert server.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"
    whoami = run_kubectl(viewer, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout.strip() == "viewer"
