"""Kubernetes' defaulting of objects (control.objects.defaults), and its use by the API."""

import copy
import json

import falcon.testing
import pytest

from control.api.app import create_app
from control.objects import defaults, schema, validation
from tests.support.fake_store import FakeStore

# -- building blocks of the expected objects ------------------------------------------

POD_SPEC = {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
            "schedulerName": "default-scheduler", "securityContext": {},
            "terminationGracePeriodSeconds": 30}
JOB_POD_SPEC = {key: value for key, value in POD_SPEC.items() if key != "restartPolicy"}
CONTAINER = {"terminationMessagePath": "/dev/termination-log",
             "terminationMessagePolicy": "File"}
POD_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
]
PROBE = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def busybox(**extra):
    return {"name": "c", "image": "busybox", **extra}


def template(labels=None, **spec):
    return {"metadata": {"labels": labels or {"app": "a"}},
            "spec": {"containers": [busybox()], **spec}}


def defaulted_template(pod_spec=POD_SPEC, labels=None):
    return {"metadata": {"labels": labels or {"app": "a"}},
            "spec": {"containers": [busybox(imagePullPolicy="Always", **CONTAINER)],
                     **pod_spec}}


def obj(api_version, kind, spec=None, **top):
    made = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, **top}
    if spec is not None:
        made["spec"] = spec
    return made


SELECTOR = {"matchLabels": {"app": "a"}}

# -- a minimal manifest gets exactly these defaults ----------------------------------------

DEFAULTED = {
    "pod": (
        obj("v1", "Pod", {"containers": [busybox()]}),
        obj("v1", "Pod", {"containers": [busybox(imagePullPolicy="Always", **CONTAINER)],
                          **POD_SPEC, "enableServiceLinks": True,
                          "tolerations": POD_TOLERATIONS}),
    ),
    "pod containers, probes, env and volumes": (
        obj("v1", "Pod", {
            "initContainers": [{"name": "i", "image": "busybox:1.36",
                                "ports": [{"containerPort": 53, "protocol": "UDP"}]}],
            "containers": [{
                "name": "c", "image": "registry.local:5000/app:latest",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "readinessProbe": {"grpc": {"port": 9000}, "timeoutSeconds": 0},
                "startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                        {"name": "PLAIN", "value": "1"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                              "requests": {"cpu": "500m"}},
            }],
            "ephemeralContainers": [{"name": "debug", "image": "busybox@sha256:" + "a" * 64}],
            "volumes": [
                {"name": "scratch"},
                {"name": "cm", "configMap": {"name": "settings"}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "info", "downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "all", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}]}},
                {"name": "host", "hostPath": {"path": "/var/log"}},
                {"name": "claim", "ephemeral": {"volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"]}}}},
                {"name": "empty", "emptyDir": {"medium": "Memory"}},
            ],
        }),
        obj("v1", "Pod", {
            "initContainers": [{"name": "i", "image": "busybox:1.36",
                                "ports": [{"containerPort": 53, "protocol": "UDP"}],
                                "imagePullPolicy": "IfNotPresent", **CONTAINER}],
            "containers": [{
                "name": "c", "image": "registry.local:5000/app:latest",
                "imagePullPolicy": "Always", **CONTAINER,
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "livenessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                  **PROBE},
                "readinessProbe": {"grpc": {"port": 9000, "service": ""}, **PROBE},
                "startupProbe": {"tcpSocket": {"port": 80}, **PROBE, "periodSeconds": 5},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit",
                                                      "scheme": "HTTP"}}},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {
                            "fieldPath": "spec.nodeName", "apiVersion": "v1"}}},
                        {"name": "PLAIN", "value": "1"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                              "requests": {"cpu": "500m", "memory": "1Gi"}},
            }],
            "ephemeralContainers": [{"name": "debug", "image": "busybox@sha256:" + "a" * 64,
                                     "imagePullPolicy": "IfNotPresent", **CONTAINER}],
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "cm", "configMap": {"name": "settings", "defaultMode": 420}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
                {"name": "info", "downwardAPI": {"defaultMode": 420, "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels",
                                                    "apiVersion": "v1"}}]}},
                {"name": "all", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                    {"downwardAPI": {"items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name",
                                                      "apiVersion": "v1"}}]}}]}},
                {"name": "host", "hostPath": {"path": "/var/log", "type": ""}},
                {"name": "claim", "ephemeral": {"volumeClaimTemplate": {"spec": {
                    "accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}}}},
                {"name": "empty", "emptyDir": {"medium": "Memory"}},
            ],
            **POD_SPEC, "enableServiceLinks": True, "tolerations": POD_TOLERATIONS,
        }),
    ),
    "pod on the host network": (
        obj("v1", "Pod", {"hostNetwork": True, "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
            "containers": [busybox(ports=[{"containerPort": 8080},
                                          {"containerPort": 9090, "hostPort": 19090}])]}),
        obj("v1", "Pod", {"hostNetwork": True, **POD_SPEC, "enableServiceLinks": True,
                          "tolerations": [
                              {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
                              POD_TOLERATIONS[0]],
                          "containers": [busybox(
                              ports=[{"containerPort": 8080, "hostPort": 8080,
                                      "protocol": "TCP"},
                                     {"containerPort": 9090, "hostPort": 19090,
                                      "protocol": "TCP"}],
                              imagePullPolicy="Always", **CONTAINER)]}),
    ),
    "deployment": (
        obj("apps/v1", "Deployment", {"selector": SELECTOR, "template": template()}),
        obj("apps/v1", "Deployment", {
            "selector": SELECTOR, "template": defaulted_template(), "replicas": 1,
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}),
    ),
    "deployment recreating its pods": (
        obj("apps/v1", "Deployment", {"selector": SELECTOR, "template": template(),
                                      "strategy": {"type": "Recreate"}}),
        obj("apps/v1", "Deployment", {
            "selector": SELECTOR, "template": defaulted_template(), "replicas": 1,
            "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600}),
    ),
    "replicaset": (
        obj("apps/v1", "ReplicaSet", {"selector": SELECTOR, "template": template()}),
        obj("apps/v1", "ReplicaSet", {"selector": SELECTOR, "template": defaulted_template(),
                                      "replicas": 1}),
    ),
    "daemonset": (
        obj("apps/v1", "DaemonSet", {"selector": SELECTOR, "template": template()}),
        obj("apps/v1", "DaemonSet", {
            "selector": SELECTOR, "template": defaulted_template(),
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10}),
    ),
    "daemonset updated on delete": (
        obj("apps/v1", "DaemonSet", {"selector": SELECTOR, "template": template(),
                                     "updateStrategy": {"type": "OnDelete"}}),
        obj("apps/v1", "DaemonSet", {"selector": SELECTOR, "template": defaulted_template(),
                                     "updateStrategy": {"type": "OnDelete"},
                                     "revisionHistoryLimit": 10}),
    ),
    "statefulset": (
        obj("apps/v1", "StatefulSet", {
            "selector": SELECTOR, "serviceName": "db", "template": template(),
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                      "spec": {"accessModes": ["ReadWriteOnce"]}}]}),
        obj("apps/v1", "StatefulSet", {
            "selector": SELECTOR, "serviceName": "db", "template": defaulted_template(),
            "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                      "spec": {"accessModes": ["ReadWriteOnce"],
                                               "volumeMode": "Filesystem"},
                                      "status": {"phase": "Pending"}}],
            "podManagementPolicy": "OrderedReady", "replicas": 1, "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain",
                                                     "whenScaled": "Retain"}}),
    ),
    "statefulset with an explicit RollingUpdate (no rollingUpdate added, as Kubernetes)": (
        obj("apps/v1", "StatefulSet", {"selector": SELECTOR, "template": template(),
                                       "updateStrategy": {"type": "RollingUpdate"},
                                       "persistentVolumeClaimRetentionPolicy": {
                                           "whenDeleted": "Delete"}}),
        obj("apps/v1", "StatefulSet", {
            "selector": SELECTOR, "template": defaulted_template(),
            "podManagementPolicy": "OrderedReady", "replicas": 1, "revisionHistoryLimit": 10,
            "updateStrategy": {"type": "RollingUpdate"},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete",
                                                     "whenScaled": "Retain"}}),
    ),
    "job (labels from its template; restartPolicy left to the user)": (
        obj("batch/v1", "Job", {"template": template()}),
        {**obj("batch/v1", "Job", {
            "template": defaulted_template(JOB_POD_SPEC), "completions": 1, "parallelism": 1,
            "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
            "manualSelector": False, "podReplacementPolicy": "TerminatingOrFailed"}),
         "metadata": {"name": "x", "labels": {"app": "a"}}},
    ),
    "job with parallelism only, a pod failure policy and a per-index backoff": (
        obj("batch/v1", "Job", {
            "parallelism": 3, "completionMode": "Indexed", "completions": None,
            "backoffLimitPerIndex": 1,
            "podFailurePolicy": {"rules": [{"action": "Ignore",
                                            "onPodConditions": [{"type": "DisruptionTarget"}]}]},
            "template": template(restartPolicy="Never")},
            metadata={"name": "x", "labels": {"own": "label"}}),
        obj("batch/v1", "Job", {
            "parallelism": 3, "completionMode": "Indexed", "completions": None,
            "backoffLimitPerIndex": 1, "backoffLimit": 2147483647,
            "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [
                {"type": "DisruptionTarget", "status": "True"}]}]},
            "suspend": False, "manualSelector": False, "podReplacementPolicy": "Failed",
            "template": defaulted_template({**POD_SPEC, "restartPolicy": "Never"})},
            metadata={"name": "x", "labels": {"own": "label"}}),
    ),
    "cronjob (its job template gets pod defaults only)": (
        obj("batch/v1", "CronJob", {"schedule": "* * * * *",
                                    "jobTemplate": {"spec": {"template": template()}}}),
        obj("batch/v1", "CronJob", {
            "schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": defaulted_template(JOB_POD_SPEC)}},
            "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1}),
    ),
    "service": (
        obj("v1", "Service", {"selector": {"app": "a"},
                              "ports": [{"port": 80}, {"port": 53, "protocol": "UDP",
                                                       "targetPort": "dns"}]}),
        obj("v1", "Service", {"selector": {"app": "a"},
                              "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                                        {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
                              "type": "ClusterIP", "sessionAffinity": "None",
                              "internalTrafficPolicy": "Cluster"}),
    ),
    "service with external IPs": (
        obj("v1", "Service", {"externalIPs": ["192.0.2.1"], "ports": [{"port": 80}]}),
        obj("v1", "Service", {"externalIPs": ["192.0.2.1"],
                              "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                              "type": "ClusterIP", "sessionAffinity": "None",
                              "internalTrafficPolicy": "Cluster",
                              "externalTrafficPolicy": "Cluster"}),
    ),
    "nodeport service with a client-IP affinity": (
        obj("v1", "Service", {"type": "NodePort", "sessionAffinity": "ClientIP",
                              "ports": [{"port": 80, "targetPort": 8080}]}),
        obj("v1", "Service", {"type": "NodePort", "sessionAffinity": "ClientIP",
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                              "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                              "externalTrafficPolicy": "Cluster",
                              "internalTrafficPolicy": "Cluster"}),
    ),
    "loadbalancer service": (
        obj("v1", "Service", {"type": "LoadBalancer", "ports": [{"port": 443}],
                              "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}},
            status={"loadBalancer": {"ingress": [{"ip": "192.0.2.7"},
                                                 {"hostname": "lb.example"}]}}),
        obj("v1", "Service", {"type": "LoadBalancer",
                              "ports": [{"port": 443, "protocol": "TCP", "targetPort": 443}],
                              "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
                              "internalTrafficPolicy": "Cluster",
                              "allocateLoadBalancerNodePorts": True},
            status={"loadBalancer": {"ingress": [{"ip": "192.0.2.7", "ipMode": "VIP"},
                                                 {"hostname": "lb.example"}]}}),
    ),
    "externalname service": (
        obj("v1", "Service", {"type": "ExternalName", "externalName": "db.example"}),
        obj("v1", "Service", {"type": "ExternalName", "externalName": "db.example",
                              "sessionAffinity": "None"}),
    ),
    "secret": (
        obj("v1", "Secret", data={"k": "dg=="}),
        obj("v1", "Secret", data={"k": "dg=="}, type="Opaque"),
    ),
    "endpoints": (
        obj("v1", "Endpoints", subsets=[{"addresses": [{"ip": "10.0.0.1"}],
                                         "ports": [{"port": 80}, {"port": 53,
                                                                  "protocol": "UDP"}]}]),
        obj("v1", "Endpoints", subsets=[{"addresses": [{"ip": "10.0.0.1"}],
                                         "ports": [{"port": 80, "protocol": "TCP"},
                                                   {"port": 53, "protocol": "UDP"}]}]),
    ),
    "namespace": (
        obj("v1", "Namespace", status={"phase": ""}),
        {**obj("v1", "Namespace", status={"phase": "Active"}),
         "metadata": {"name": "x", "labels": {"kubernetes.io/metadata.name": "x"}}},
    ),
    "node": (
        obj("v1", "Node", status={"capacity": {"cpu": "4", "pods": "110"}}),
        obj("v1", "Node", status={"capacity": {"cpu": "4", "pods": "110"},
                                  "allocatable": {"cpu": "4", "pods": "110"}}),
    ),
}

# -- kinds Kubernetes does not default, and manifests that already say everything --------

UNCHANGED = {
    "configmap": obj("v1", "ConfigMap", data={"a": "b"}),
    "lease": obj("coordination.k8s.io/v1", "Lease", {"holderIdentity": "me"}),
    "event": obj("v1", "Event", reason="Started", involvedObject={"kind": "Pod", "name": "p"}),
    "serviceaccount": obj("v1", "ServiceAccount"),
    "unknown kind": obj("example.com/v1", "Widget", {"anything": "goes"}),
    "pod with every default chosen": obj("v1", "Pod", {
        "restartPolicy": "Never", "dnsPolicy": "Default", "schedulerName": "mine",
        "terminationGracePeriodSeconds": 0, "securityContext": {"runAsUser": 1000},
        "enableServiceLinks": False,
        "tolerations": [{"operator": "Exists"}],   # tolerates every taint already
        "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "Never",
                        "terminationMessagePath": "/tmp/msg",
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                        "ports": [{"containerPort": 1, "protocol": "SCTP"}],
                        "livenessProbe": {"httpGet": {"port": 1, "path": "/z",
                                                      "scheme": "HTTPS"},
                                          "timeoutSeconds": 2, "periodSeconds": 3,
                                          "successThreshold": 1, "failureThreshold": 9},
                        "readinessProbe": {"grpc": {"port": 2, "service": "svc"},
                                           "timeoutSeconds": 2, "periodSeconds": 3,
                                           "successThreshold": 4, "failureThreshold": 9},
                        "env": [{"name": "X", "valueFrom": {"fieldRef": {
                            "apiVersion": "v2", "fieldPath": "metadata.name"}}}],
                        "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "100m"}}}],
        "volumes": [{"name": "cm", "configMap": {"name": "c", "defaultMode": 256}},
                    {"name": "s", "secret": {"secretName": "s", "defaultMode": 0}},
                    {"name": "t", "projected": {"defaultMode": 256, "sources": [
                        {"serviceAccountToken": {"path": "t", "expirationSeconds": 600}}]}},
                    {"name": "h", "hostPath": {"path": "/", "type": "Directory"}}],
    }),
    "deployment with every default chosen": obj("apps/v1", "Deployment", {
        "replicas": 0, "revisionHistoryLimit": 0, "progressDeadlineSeconds": 60,
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "50%"}},
        "selector": SELECTOR, "template": defaulted_template()}),
    "daemonset with every default chosen": obj("apps/v1", "DaemonSet", {
        "revisionHistoryLimit": 1,
        "updateStrategy": {"type": "RollingUpdate",
                           "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 2}},
        "selector": SELECTOR, "template": defaulted_template()}),
    "statefulset with every default chosen": obj("apps/v1", "StatefulSet", {
        "replicas": 3, "revisionHistoryLimit": 2, "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "OnDelete"},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
        "selector": SELECTOR, "template": defaulted_template()}),
    "job with every default chosen": {**obj("batch/v1", "Job", {
        "completions": 5, "parallelism": 0, "backoffLimit": 0, "completionMode": "Indexed",
        "suspend": True, "manualSelector": True, "podReplacementPolicy": "Failed",
        "template": defaulted_template({**POD_SPEC, "restartPolicy": "OnFailure"})}),
        "metadata": {"name": "x", "labels": {"mine": "yes"}}},
    "cronjob with every default chosen": obj("batch/v1", "CronJob", {
        "schedule": "@daily", "concurrencyPolicy": "Forbid", "suspend": True,
        "successfulJobsHistoryLimit": 0, "failedJobsHistoryLimit": 0,
        "jobTemplate": {"spec": {"template": defaulted_template(
            {**POD_SPEC, "restartPolicy": "Never"})}}}),
    "service with every default chosen": obj("v1", "Service", {
        "type": "NodePort", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}},
        "ports": [{"port": 80, "protocol": "UDP", "targetPort": "http"}],
        "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local"}),
    "secret with a type": obj("v1", "Secret", type="kubernetes.io/tls"),
    "node with allocatable": obj("v1", "Node", status={"capacity": {"cpu": "4"},
                                                       "allocatable": {"cpu": "3"}}),
}

ALL_INPUTS = {**{name: given for name, (given, _) in DEFAULTED.items()}, **UNCHANGED}
KUBERNETES_INPUTS = {name: given for name, given in ALL_INPUTS.items()
                     if schema.kind_type(given["apiVersion"], given["kind"])}


@pytest.mark.parametrize("given, expected", DEFAULTED.values(), ids=DEFAULTED.keys())
def test_minimal_manifests_get_exactly_the_kubernetes_defaults(given, expected):
    assert defaults.apply_defaults(given) == expected


@pytest.mark.parametrize("given", UNCHANGED.values(), ids=UNCHANGED.keys())
def test_values_users_set_and_undefaulted_kinds_are_kept(given):
    assert defaults.apply_defaults(given) == given


@pytest.mark.parametrize("given", ALL_INPUTS.values(), ids=ALL_INPUTS.keys())
def test_defaulting_is_idempotent_and_pure(given):
    before = copy.deepcopy(given)
    once = defaults.apply_defaults(given)
    assert defaults.apply_defaults(once) == once
    assert given == before
    assert once is not given


@pytest.mark.parametrize("given", KUBERNETES_INPUTS.values(), ids=KUBERNETES_INPUTS.keys())
def test_defaults_add_no_field_the_schema_does_not_know(given):
    type_name = schema.kind_type(given["apiVersion"], given["kind"])
    defaulted = defaults.apply_defaults(given)
    assert validation.find_unknown_fields(defaulted, type_name) == []
    assert validation.check_types(defaulted, type_name) == []


def test_go_zero_values_of_value_fields_count_as_unset():
    pod = obj("v1", "Pod", {"dnsPolicy": "", "restartPolicy": None, "containers": [
        busybox(imagePullPolicy="", livenessProbe={"exec": {"command": ["true"]},
                                                   "timeoutSeconds": 0, "periodSeconds": None})]})
    spec = defaults.apply_defaults(pod)["spec"]
    assert spec["dnsPolicy"] == "ClusterFirst" and spec["restartPolicy"] == "Always"
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "Always"
    assert container["livenessProbe"] == {"exec": {"command": ["true"]}, **PROBE}


def test_a_null_spec_is_an_unset_spec():
    replica_set = {**obj("apps/v1", "ReplicaSet"), "spec": None}
    assert defaults.apply_defaults(replica_set)["spec"] == {"replicas": 1}


def test_namespace_name_label_always_follows_the_name():
    namespace = {**obj("v1", "Namespace"),
                 "metadata": {"name": "x", "labels": {"kubernetes.io/metadata.name": "y",
                                                      "team": "a"}}}
    labels = defaults.apply_defaults(namespace)["metadata"]["labels"]
    assert labels == {"kubernetes.io/metadata.name": "x", "team": "a"}


@pytest.mark.parametrize("image, policy", [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("localhost:5000/team/app", "Always"),
    ("localhost:5000/team/app:v2", "IfNotPresent"),
    ("busybox@sha256:" + "0" * 64, "IfNotPresent"),
    ("busybox:latest@sha256:" + "0" * 64, "Always"),
    ("Busybox", "IfNotPresent"),          # not a valid reference: no tag
    ("", "IfNotPresent"),
])
def test_image_pull_policy_follows_the_tag(image, policy):
    pod = defaults.apply_defaults(obj("v1", "Pod", {"containers": [busybox(image=image)]}))
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


# -- through the API ---------------------------------------------------------------------------

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


def test_api_defaults_on_create_and_update_without_bumping_generation(client):
    manifest = obj("apps/v1", "Deployment", {"selector": SELECTOR, "template": template()})
    created = client.simulate_post(DEPLOYMENTS, json=manifest).json
    assert created["spec"]["replicas"] == 1
    assert created["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    # Re-sending the undefaulted manifest (kubectl replace) changes nothing.
    replaced = client.simulate_put(f"{DEPLOYMENTS}/x", json=manifest).json
    assert replaced["spec"] == created["spec"]
    assert replaced["metadata"]["generation"] == 1
    patched = client.simulate_patch(
        f"{DEPLOYMENTS}/x",
        body=json.dumps({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}}),
        headers={"Content-Type": "application/merge-patch+json"}).json
    assert patched["spec"]["strategy"] == {"type": "Recreate"}
    assert patched["metadata"]["generation"] == 2


def test_api_defaults_pods_and_namespaces(client):
    pod = client.simulate_post("/api/v1/namespaces/default/pods",
                               json=obj("v1", "Pod", {"containers": [busybox()]})).json
    assert pod["spec"]["tolerations"] == POD_TOLERATIONS
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    namespace = client.simulate_post("/api/v1/namespaces",
                                     json={"metadata": {"generateName": "team-"}}).json
    name = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"] == {"kubernetes.io/metadata.name": name}


JOBS = "/apis/batch/v1/namespaces/default/jobs"
JOB_LABELS = ("job-name", "batch.kubernetes.io/job-name", "controller-uid",
              "batch.kubernetes.io/controller-uid")


def test_api_generates_a_job_selector_from_its_uid(client):
    """kube-apiserver's PrepareForCreate: the template is labelled with the Job's name and
    uid, the selector selects the uid, and a Job without labels shows its template's."""
    job = client.simulate_post(JOBS, json=obj("batch/v1", "Job", {
        "template": template(restartPolicy="Never")}, metadata={"name": "pi"})).json
    uid = job["metadata"]["uid"]
    expected = {"app": "a", "job-name": "pi", "batch.kubernetes.io/job-name": "pi",
                "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid}
    assert job["spec"]["manualSelector"] is False
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"] == expected
    assert job["metadata"]["labels"] == {"app": "a"}     # defaulted before the generation
    bare = client.simulate_post(JOBS, json=obj("batch/v1", "Job", {"template": {
        "spec": {"containers": [busybox()], "restartPolicy": "Never"}}},
        metadata={"name": "bare"})).json
    assert set(bare["metadata"]["labels"]) == set(JOB_LABELS)


def test_api_keeps_a_manual_job_selector(client):
    job = client.simulate_post(JOBS, json=obj("batch/v1", "Job", {
        "manualSelector": True, "selector": SELECTOR,
        "template": template(restartPolicy="Never")},
        metadata={"name": "mine"})).json
    assert job["spec"]["selector"] == SELECTOR
    assert not set(job["spec"]["template"]["metadata"]["labels"]) & set(JOB_LABELS)
