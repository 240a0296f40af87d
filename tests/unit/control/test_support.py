"""Fields Steersman stores but does not act on (control.objects.support), and their warnings."""

import re

import falcon.testing
import pytest

from control.api.app import create_app
from control.objects import defaults, support
from tests.support.fake_store import FakeStore
from tests.unit.control.test_defaults import ALL_INPUTS, DEFAULTED

SELECTOR = {"matchLabels": {"app": "a"}}


def container(**extra):
    return {"name": "c", "image": "busybox", **extra}


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [container()], **spec}}


def workload(api_version, kind, pod_spec=None, **spec):
    template = {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [container()], **(pod_spec or {})}}
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "w"},
            "spec": {"selector": SELECTOR, "template": template, **spec}}


def service(**spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}], **spec}}


def cron_job(pod_spec=None, **spec):
    job = workload("batch/v1", "Job", {"restartPolicy": "Never", **(pod_spec or {})})
    del job["spec"]["selector"]
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job["spec"]}, **spec}}


TEMPLATE = "spec.template.spec"

# -- manifests with fields Steersman only stores -> the shallowest such paths ---------------

UNSUPPORTED = {
    "pod security contexts": (
        pod(securityContext={"runAsUser": 1000},
            containers=[container(securityContext={"readOnlyRootFilesystem": True,
                                                   "allowPrivilegeEscalation": False})]),
        ["spec.securityContext", "spec.containers[0].securityContext"]),
    "lifecycle hooks, grpc probes and probe fields": (
        pod(containers=[container(
            lifecycle={"preStop": {"exec": {"command": ["sleep", "5"]}}},
            livenessProbe={"httpGet": {"port": 8080}, "terminationGracePeriodSeconds": 5},
            readinessProbe={"grpc": {"port": 9000}})]),
        ["spec.containers[0].lifecycle",
         "spec.containers[0].livenessProbe.terminationGracePeriodSeconds",
         "spec.containers[0].readinessProbe.grpc"]),
    "container extras": (
        pod(containers=[container(workingDir="/srv", envFrom=[{"configMapRef": {"name": "c"}}],
                                  env=[{"name": "CPU", "valueFrom": {"resourceFieldRef": {
                                      "resource": "limits.cpu"}}}],
                                  ports=[{"containerPort": 53, "protocol": "UDP",
                                          "hostIP": "127.0.0.1"}],
                                  volumeMounts=[{"name": "v", "mountPath": "/v",
                                                 "subPath": "x"}],
                                  resources={"claims": [{"name": "gpu"}]}, tty=True)],
            volumes=[{"name": "v", "emptyDir": {}}]),
        ["spec.containers[0].workingDir", "spec.containers[0].envFrom",
         "spec.containers[0].env[0].valueFrom.resourceFieldRef",
         "spec.containers[0].ports[0].protocol", "spec.containers[0].ports[0].hostIP",
         "spec.containers[0].volumeMounts[0].subPath", "spec.containers[0].resources.claims",
         "spec.containers[0].tty"]),
    "pod scheduling and placement extras": (
        pod(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                        "whenUnsatisfiable": "DoNotSchedule"}],
            priorityClassName="high", hostNetwork=True, dnsPolicy="None",
            dnsConfig={"nameservers": ["1.1.1.1"]}, serviceAccountName="robot",
            affinity={"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "disk", "operator": "In",
                                           "values": ["ssd"]}]}]},
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 1, "preference": {"matchExpressions": []}}]},
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"topologyKey": "kubernetes.io/hostname"}]}}),
        ["spec.topologySpreadConstraints", "spec.priorityClassName", "spec.hostNetwork",
         "spec.dnsPolicy", "spec.dnsConfig", "spec.serviceAccountName",
         "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution",
         "spec.affinity.podAntiAffinity"]),
    "volume sources": (
        pod(volumes=[{"name": "a", "persistentVolumeClaim": {"claimName": "data"}},
                     {"name": "b", "projected": {"sources": []}},
                     {"name": "c", "configMap": {"name": "c", "items": [
                         {"key": "k", "path": "p"}]}}]),
        ["spec.volumes[0].persistentVolumeClaim", "spec.volumes[1].projected"]),
    "sidecar and ephemeral containers": (
        pod(initContainers=[container(name="side", restartPolicy="Always")],
            ephemeralContainers=[container(name="debug")]),
        ["spec.initContainers[0].restartPolicy", "spec.ephemeralContainers"]),
    "deployment pod template": (
        workload("apps/v1", "Deployment", {"securityContext": {"fsGroup": 2000}},
                 minReadySeconds=5),
        ["spec.template.spec.securityContext", "spec.minReadySeconds"]),
    "replicaset": (
        workload("apps/v1", "ReplicaSet", {"containers": [container(stdin=True)]}),
        [f"{TEMPLATE}.containers[0].stdin"]),
    "daemonset surge and history": (
        workload("apps/v1", "DaemonSet", updateStrategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            revisionHistoryLimit=3),
        ["spec.updateStrategy.rollingUpdate.maxSurge", "spec.revisionHistoryLimit"]),
    "statefulset parallel, on delete, with claims": (
        workload("apps/v1", "StatefulSet", serviceName="db", podManagementPolicy="Parallel",
                 updateStrategy={"type": "OnDelete"},
                 volumeClaimTemplates=[{"metadata": {"name": "data"}}]),
        ["spec.serviceName", "spec.podManagementPolicy", "spec.updateStrategy.type",
         "spec.volumeClaimTemplates"]),
    "job extras": (
        {**workload("batch/v1", "Job", {"restartPolicy": "Never"}, manualSelector=True,
                    successPolicy={"rules": [{"succeededCount": 1}]})},
        ["spec.manualSelector", "spec.successPolicy"]),
    "cronjob extras": (
        cron_job({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["db"]}]},
                 timeZone="Europe/Paris", startingDeadlineSeconds=60, suspend=True),
        ["spec.jobTemplate.spec.template.spec.hostAliases"]),
    "loadbalancer service": (
        service(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8"]),
        ["spec.type", "spec.loadBalancerSourceRanges"]),
    "service affinity and traffic policies": (
        service(type="NodePort", sessionAffinity="ClientIP", externalTrafficPolicy="Local",
                publishNotReadyAddresses=True, ports=[{"port": 53, "protocol": "UDP"}]),
        ["spec.sessionAffinity", "spec.externalTrafficPolicy", "spec.publishNotReadyAddresses",
         "spec.ports[0].protocol"]),
}


@pytest.mark.parametrize("manifest, expected", UNSUPPORTED.values(), ids=UNSUPPORTED.keys())
def test_fields_steersman_only_stores_are_named_at_their_shallowest(manifest, expected):
    assert sorted(support.unsupported_fields(defaults.apply_defaults(manifest))) == \
        sorted(expected)


# -- manifests Steersman acts on entirely ---------------------------------------------------

PROBE = {"initialDelaySeconds": 3, "periodSeconds": 5, "timeoutSeconds": 2,
         "successThreshold": 1, "failureThreshold": 4}
FULL_CONTAINER = container(
    command=["python", "-m", "http.server"], args=["8080"], imagePullPolicy="IfNotPresent",
    env=[{"name": "A", "value": "1"},
         {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "b"}}},
         {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "c",
                                                      "optional": True}}},
         {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    ports=[{"name": "http", "containerPort": 8080, "hostPort": 18080, "protocol": "TCP"}],
    resources={"requests": {"cpu": "100m", "memory": "64Mi"},
               "limits": {"cpu": "1", "memory": "128Mi"}},
    volumeMounts=[{"name": "cfg", "mountPath": "/etc/app", "readOnly": True}],
    livenessProbe={"httpGet": {"path": "/healthz", "port": "http"}, **PROBE},
    readinessProbe={"tcpSocket": {"port": 8080}, **PROBE},
    startupProbe={"exec": {"command": ["true"]}, **PROBE})
FULL_POD_SPEC = {
    "containers": [FULL_CONTAINER], "initContainers": [container(name="init")],
    "restartPolicy": "OnFailure", "terminationGracePeriodSeconds": 5,
    "nodeSelector": {"disk": "ssd"},
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "a",
                     "effect": "NoSchedule"}],
    "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}},
                {"name": "cfg", "configMap": {"name": "cm"}},
                {"name": "sec", "secret": {"secretName": "s"}},
                {"name": "logs", "hostPath": {"path": "/var/log", "type": "Directory"}}],
    "securityContext": {}, "hostAliases": [], "priorityClassName": None,
}

SUPPORTED = {
    "pod": {**pod(**FULL_POD_SPEC), "metadata": {
        "name": "p", "namespace": "default", "labels": {"app": "a"},
        "annotations": {"note": "x"}, "ownerReferences": [{"kind": "ReplicaSet"}]},
        "status": {"phase": "Running", "hostIP": "10.0.0.1", "qosClass": "Burstable"}},
    "bound pod": pod(nodeName="node-1"),
    "deployment": workload("apps/v1", "Deployment", FULL_POD_SPEC, replicas=3, paused=True,
                           revisionHistoryLimit=2, progressDeadlineSeconds=60,
                           strategy={"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
    "recreating deployment": workload("apps/v1", "Deployment", strategy={"type": "Recreate"}),
    "replicaset": workload("apps/v1", "ReplicaSet", FULL_POD_SPEC, replicas=2),
    "daemonset": workload("apps/v1", "DaemonSet", FULL_POD_SPEC, updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "20%"}}),
    "daemonset on delete": workload("apps/v1", "DaemonSet", updateStrategy={"type": "OnDelete"}),
    "statefulset": workload("apps/v1", "StatefulSet", FULL_POD_SPEC, replicas=3),
    "job": workload("batch/v1", "Job", {**FULL_POD_SPEC, "restartPolicy": "Never"},
                    completionMode="Indexed", suspend=True, ttlSecondsAfterFinished=60,
                    completions=5, parallelism=2, backoffLimit=1, activeDeadlineSeconds=600),
    "cronjob": cron_job(FULL_POD_SPEC, concurrencyPolicy="Forbid", successfulJobsHistoryLimit=1,
                        failedJobsHistoryLimit=1, timeZone="Europe/Paris",
                        startingDeadlineSeconds=60, suspend=True),
    "nodeport service": service(type="NodePort", clusterIP="10.96.0.10",
                                ports=[{"name": "http", "port": 80, "targetPort": "http",
                                        "nodePort": 30080, "protocol": "TCP"}]),
    "headless service": service(clusterIP="None"),
    "configmap with anything": {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "c"}, "data": {"a": "b"},
                                "immutable": True},
    "node": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
             "spec": {"podCIDR": "10.244.0.0/24",
                      "taints": [{"key": "k", "effect": "NoSchedule"}]}},
    "unknown kind": {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"x": 1}},
}


@pytest.mark.parametrize("manifest", SUPPORTED.values(), ids=SUPPORTED.keys())
def test_manifests_steersman_acts_on_entirely_warn_about_nothing(manifest):
    assert support.unsupported_fields(defaults.apply_defaults(manifest)) == []


# -- the server's own defaults never warn ----------------------------------------------------

MINIMAL = ["pod", "deployment", "deployment recreating its pods", "replicaset", "daemonset",
           "daemonset updated on delete", "job (labels from its template; restartPolicy left "
           "to the user)", "cronjob (its job template gets pod defaults only)",
           "deployment with every default chosen"]
_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")


@pytest.mark.parametrize("name", MINIMAL)
def test_minimal_manifests_defaulted_warn_about_nothing(name):
    assert support.unsupported_fields(defaults.apply_defaults(ALL_INPUTS[name])) == []


def _set_in(obj, path):
    """Return whether the manifest ``obj`` itself sets the field at ``path``."""
    for field, index in _PATH_TOKEN.findall(path):
        obj = obj[int(index)] if index else obj.get(field) if isinstance(obj, dict) else None
        if obj is None:
            return False
    return obj not in ("", {}, [])


@pytest.mark.parametrize("manifest", [given for given, _ in DEFAULTED.values()],
                         ids=DEFAULTED.keys())
def test_only_fields_the_user_wrote_are_named_never_defaults(manifest):
    for path in support.unsupported_fields(defaults.apply_defaults(manifest)):
        assert _set_in(manifest, path), path


def test_the_names_are_those_of_the_walk_not_of_the_patterns():
    manifest = pod(containers=[container(), container(name="d", lifecycle={
        "postStart": {"exec": {"command": ["true"]}}})])
    assert support.unsupported_fields(manifest) == ["spec.containers[1].lifecycle"]
    assert support.warnings_for(manifest) == [
        "steersman does not act on spec.containers[1].lifecycle yet; it is stored unchanged"]


# -- through the API -------------------------------------------------------------------------

DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def test_api_warns_on_create_and_update_and_stores_the_field_unchanged():
    client = falcon.testing.TestClient(create_app(FakeStore()))
    manifest = workload("apps/v1", "Deployment", {"securityContext": {"runAsUser": 1000}})
    created = client.simulate_post(DEPLOYMENTS, json=manifest)
    assert created.status_code == 201
    expected = ('299 - "steersman does not act on spec.template.spec.securityContext yet; '
                'it is stored unchanged"')
    assert created.headers.get("warning") == expected
    assert created.json["spec"]["template"]["spec"]["securityContext"] == {"runAsUser": 1000}
    replaced = client.simulate_put(f"{DEPLOYMENTS}/w", json=manifest)
    assert replaced.status_code == 200 and replaced.headers.get("warning") == expected
    plain = client.simulate_post(DEPLOYMENTS, json={**workload("apps/v1", "Deployment"),
                                                    "metadata": {"name": "plain"}})
    assert plain.status_code == 201 and "warning" not in plain.headers
