"""A small operator, written with the official Python client, runs against Steersman.

It watches the custom resource ``Greeting`` (a CRD it creates with the
ApiextensionsV1Api), makes a ConfigMap owned by each Greeting and writes the
Greeting's status; deleting the Greeting lets the controller manager's garbage
collector (which finds the new resource through discovery) delete the ConfigMap.
Deleting a namespace deletes the custom objects in it (the namespace controller
finds them through discovery too).
"""

import threading

import pytest
from kubernetes import client as k8s  # a test dependency (setup.cfg's [test] extra)
from kubernetes import config, watch

from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane

GROUP, VERSION, PLURAL = "demo.steersman.example", "v1", "greetings"
NAMESPACE = "default"


def greeting_crd():
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "required": ["message"], "properties": {
            "message": {"type": "string", "minLength": 1},
            "times": {"type": "integer", "minimum": 1, "default": 1}}},
        "status": {"type": "object", "properties": {
            "configMap": {"type": "string"}, "observedGeneration": {"type": "integer"}}}}}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{PLURAL}.{GROUP}"},
            "spec": {"group": GROUP, "scope": "Namespaced",
                     "names": {"plural": PLURAL, "singular": "greeting", "kind": "Greeting"},
                     "versions": [{"name": VERSION, "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": schema},
                                   "subresources": {"status": {}}}]}}


class GreetingOperator:
    """Reconcile each Greeting into a ConfigMap it owns; report it in the status."""

    def __init__(self, api_client):
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.stop = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                stream = watch.Watch().stream(self.custom.list_namespaced_custom_object, GROUP,
                                              VERSION, NAMESPACE, PLURAL, timeout_seconds=2)
                for event in stream:
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self.reconcile(event["object"])
            except Exception as exc:        # noqa: BLE001 - an operator keeps running
                self.errors.append(repr(exc))

    def reconcile(self, greeting):
        meta = greeting["metadata"]
        name = f"{meta['name']}-greeting"
        body = k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name=name, owner_references=[k8s.V1OwnerReference(
                api_version=f"{GROUP}/{VERSION}", kind="Greeting", name=meta["name"],
                uid=meta["uid"], controller=True, block_owner_deletion=True)]),
            data={"message": greeting["spec"]["message"] * greeting["spec"]["times"]})
        try:
            self.core.create_namespaced_config_map(NAMESPACE, body)
        except k8s.exceptions.ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_config_map(name, NAMESPACE, body)
        if greeting.get("status", {}).get("observedGeneration") != meta["generation"]:
            self.custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, NAMESPACE, PLURAL, meta["name"],
                {"status": {"configMap": name, "observedGeneration": meta["generation"]}})


@pytest.fixture(scope="module")
def api_client(server):
    return config.new_client_from_config(config_file=server.kubeconfig)


@pytest.fixture(scope="module")
def garbage_collector(server, tmp_path_factory):
    with ControlPlane(server, tmp_path_factory.mktemp("cm"), controllers="garbagecollector,namespace",
                      manager_args=["--gc-discovery-period", "1"], scheduler=False) as plane:
        yield plane


def test_operator_reconciles_greetings_and_gc_deletes_owned_configmaps(api_client,
                                                                        garbage_collector):
    extensions = k8s.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(greeting_crd())
    eventually(lambda: any(c.type == "Established" and c.status == "True" for c in
                           extensions.read_custom_resource_definition(
                               f"{PLURAL}.{GROUP}").status.conditions or ()),
               message="Greeting CRD Established")
    operator = GreetingOperator(api_client)
    operator.thread.start()
    core = k8s.CoreV1Api(api_client)
    try:
        operator.custom.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL,
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Greeting",
             "metadata": {"name": "hello"}, "spec": {"message": "hi ", "times": 2}})

        def reconciled():
            greeting = operator.custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE,
                                                                    PLURAL, "hello")
            return greeting.get("status", {}).get("configMap") == "hello-greeting"

        eventually(reconciled, timeout=60, message=f"status written ({operator.errors})")
        assert core.read_namespaced_config_map("hello-greeting", NAMESPACE).data == \
            {"message": "hi hi "}
        with pytest.raises(k8s.exceptions.ApiException) as invalid:
            operator.custom.create_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL,
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Greeting",
                 "metadata": {"name": "empty"}, "spec": {"message": ""}})
        assert invalid.value.status == 422
        operator.stop.set()
        operator.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL,
                                                        "hello")

        def configmap_collected():
            try:
                core.read_namespaced_config_map("hello-greeting", NAMESPACE)
            except k8s.exceptions.ApiException as exc:
                return exc.status == 404
            return False

        eventually(configmap_collected, timeout=60, message="the owned ConfigMap collected",
                   logs=garbage_collector.logs)
    finally:
        operator.stop.set()
        operator.thread.join(10)


def test_deleting_a_namespace_deletes_its_custom_objects(api_client, garbage_collector):
    extensions = k8s.ApiextensionsV1Api(api_client)
    try:
        extensions.create_custom_resource_definition(greeting_crd())
    except k8s.exceptions.ApiException as exc:
        assert exc.status == 409        # the first test made it
    eventually(lambda: any(c.type == "Established" and c.status == "True" for c in
                           extensions.read_custom_resource_definition(
                               f"{PLURAL}.{GROUP}").status.conditions or ()),
               message="Greeting CRD Established")
    core = k8s.CoreV1Api(api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="greeted")))
    custom = k8s.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, "greeted", PLURAL,
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Greeting",
         "metadata": {"name": "doomed"}, "spec": {"message": "bye"}})
    core.delete_namespace("greeted")

    def namespace_gone():
        try:
            core.read_namespace("greeted")
        except k8s.exceptions.ApiException as exc:
            return exc.status == 404
        return False

    eventually(namespace_gone, timeout=60, message="the namespace and its Greeting gone",
               logs=garbage_collector.logs)
    assert custom.list_namespaced_custom_object(GROUP, VERSION, "greeted", PLURAL)["items"] == []
