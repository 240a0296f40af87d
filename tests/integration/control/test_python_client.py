"""The official `kubernetes` Python client against a real API server and store."""

import threading

import pytest
from kubernetes import client as k8s  # a test dependency (setup.cfg's [test] extra)
from kubernetes import config, watch


@pytest.fixture(scope="module")
def api_client(server):
    return config.new_client_from_config(config_file=server.kubeconfig)


def test_create_list_patch_delete_configmap(api_client):
    core = k8s.CoreV1Api(api_client)
    body = k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="settings", labels={"app": "demo"}),
                           data={"mode": "fast"})
    created = core.create_namespaced_config_map("default", body)
    assert created.metadata.uid and created.metadata.resource_version
    listed = core.list_namespaced_config_map("default", label_selector="app=demo")
    assert [c.metadata.name for c in listed.items] == ["settings"]
    patched = core.patch_namespaced_config_map("settings", "default", {"data": {"mode": "slow"}})
    assert patched.data == {"mode": "slow"}
    core.delete_namespaced_config_map("settings", "default")
    with pytest.raises(k8s.exceptions.ApiException) as missing:
        core.read_namespaced_config_map("settings", "default")
    assert missing.value.status == 404


def test_deployment_roundtrip_and_conflict(api_client):
    apps = k8s.AppsV1Api(api_client)
    container = k8s.V1Container(name="web", image="nginx:1.27")
    spec = k8s.V1DeploymentSpec(
        replicas=1, selector=k8s.V1LabelSelector(match_labels={"app": "web"}),
        template=k8s.V1PodTemplateSpec(metadata=k8s.V1ObjectMeta(labels={"app": "web"}),
                                       spec=k8s.V1PodSpec(containers=[container])))
    created = apps.create_namespaced_deployment(
        "default", k8s.V1Deployment(metadata=k8s.V1ObjectMeta(name="py-web"), spec=spec))
    created.spec.replicas = 2
    apps.replace_namespaced_deployment("py-web", "default", created)
    created.spec.replicas = 3          # still carries the old resourceVersion
    with pytest.raises(k8s.exceptions.ApiException) as stale:
        apps.replace_namespaced_deployment("py-web", "default", created)
    assert stale.value.status == 409
    assert apps.read_namespaced_deployment_scale("py-web", "default").spec.replicas == 2
    apps.delete_namespaced_deployment("py-web", "default")


def test_watch_sees_added_and_deleted(api_client):
    core = k8s.CoreV1Api(api_client)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    seen = []

    def follow():
        stream = watch.Watch().stream(core.list_namespaced_config_map, "default",
                                      resource_version=start, timeout_seconds=20)
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    core.create_namespaced_config_map("default", k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name="watched")))
    core.delete_namespaced_config_map("watched", "default")
    follower.join(timeout=30)
    assert ("ADDED", "watched") in seen and ("DELETED", "watched") in seen
