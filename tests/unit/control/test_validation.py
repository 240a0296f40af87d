"""Unknown fields, wrong types and name rules on real Kubernetes manifests."""

import copy

import pytest
import yaml

from control.objects.validation import (
    QUANTITY_ERROR,
    check_fields,
    check_types,
    find_unknown_fields,
    validate_dns1035_label,
    validate_dns1123_label,
    validate_dns1123_subdomain,
)

DEPLOYMENT = yaml.safe_load("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: frontend}
  annotations: {deployment.kubernetes.io/revision: "3"}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  selector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [frontend]}
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}
  template:
    metadata:
      labels: {app: web, tier: frontend}
    spec:
      serviceAccountName: web
      terminationGracePeriodSeconds: 30
      initContainers:
      - name: migrate
        image: registry.local/web:1.4
        command: [/app/migrate, --yes]
      containers:
      - name: web
        image: registry.local/web:1.4
        imagePullPolicy: IfNotPresent
        args: [--port, "8080"]
        ports:
        - {name: http, containerPort: 8080, protocol: TCP}
        env:
        - {name: MODE, value: production}
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef: {name: db, key: password, optional: false}
        - name: LOG_LEVEL
          valueFrom:
            configMapKeyRef: {name: web-config, key: log-level}
        - name: POD_IP
          valueFrom:
            fieldRef: {fieldPath: status.podIP}
        - name: MEM_LIMIT
          valueFrom:
            resourceFieldRef: {containerName: web, resource: limits.memory, divisor: 1Mi}
        envFrom:
        - configMapRef: {name: web-env}
        resources:
          requests: {cpu: 250m, memory: 128Mi}
          limits: {cpu: 1, memory: 512Mi, ephemeral-storage: 1.5Gi}
        livenessProbe:
          httpGet: {path: /healthz, port: http, scheme: HTTP}
          initialDelaySeconds: 10
          periodSeconds: 5
          failureThreshold: 3
        readinessProbe:
          httpGet:
            path: /ready
            port: 8080
            httpHeaders: [{name: X-Probe, value: "1"}]
        startupProbe:
          tcpSocket: {port: 8080}
        lifecycle:
          preStop:
            exec: {command: [sh, -c, sleep 5]}
        volumeMounts:
        - {name: config, mountPath: /etc/web, readOnly: true}
        - {name: cache, mountPath: /cache}
        - {name: secrets, mountPath: /run/secrets/web}
        securityContext:
          runAsNonRoot: true
          runAsUser: 1000
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
      volumes:
      - name: config
        configMap:
          name: web-config
          items: [{key: web.yaml, path: web.yaml, mode: 0644}]
      - name: cache
        emptyDir: {medium: Memory, sizeLimit: 64Mi}
      - name: secrets
        secret: {secretName: web-tls, defaultMode: 0400}
      - name: data
        persistentVolumeClaim: {claimName: web-data}
      - name: host
        hostPath: {path: /var/log, type: Directory}
""")

SERVICE = yaml.safe_load("""
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP, nodePort: 30080}
  - {name: admin, port: 9000, targetPort: admin}
  sessionAffinity: ClientIP
""")

CRONJOB = yaml.safe_load("""
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup}
spec:
  schedule: "0 3 * * *"
  timeZone: Europe/Paris
  concurrencyPolicy: Forbid
  successfulJobsHistoryLimit: 3
  failedJobsHistoryLimit: 1
  startingDeadlineSeconds: 300
  jobTemplate:
    metadata: {labels: {job: backup}}
    spec:
      backoffLimit: 2
      activeDeadlineSeconds: 3600
      ttlSecondsAfterFinished: 86400
      completions: 1
      parallelism: 1
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: backup
            image: registry.local/backup:2
            args: [--target, s3://backups]
""")

POD = yaml.safe_load("""
apiVersion: v1
kind: Pod
metadata:
  name: worker-0
  namespace: default
  generateName: worker-
  uid: 5a3f1c2e-0000-4000-8000-000000000001
  resourceVersion: "1234"
  generation: 1
  creationTimestamp: "2024-05-01T12:00:00Z"
  deletionGracePeriodSeconds: 30
  labels: {app: worker}
  annotations: {note: hello}
  finalizers: [example.com/cleanup]
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: worker-abc, uid: "1234", controller: true,
     blockOwnerDeletion: true}
  managedFields:
  - manager: kubectl
    operation: Apply
    apiVersion: v1
    time: "2024-05-01T12:00:00Z"
    fieldsType: FieldsV1
    fieldsV1: {"f:metadata": {"f:labels": {"f:app": {}}}}
spec:
  nodeName: node-1
  nodeSelector: {disktype: ssd}
  hostname: worker-0
  subdomain: workers
  hostNetwork: false
  dnsPolicy: ClusterFirst
  restartPolicy: Always
  priorityClassName: high
  priority: 1000
  schedulerName: default-scheduler
  activeDeadlineSeconds: 600
  automountServiceAccountToken: false
  enableServiceLinks: false
  shareProcessNamespace: true
  runtimeClassName: runc
  imagePullSecrets: [{name: regcred}]
  hostAliases: [{ip: 10.0.0.5, hostnames: [db.local]}]
  dnsConfig:
    nameservers: [1.1.1.1]
    searches: [svc.cluster.local]
    options: [{name: ndots, value: "2"}]
  securityContext:
    runAsUser: 1000
    runAsGroup: 1000
    fsGroup: 2000
    supplementalGroups: [3000]
    sysctls: [{name: net.core.somaxconn, value: "1024"}]
    seccompProfile: {type: RuntimeDefault}
  tolerations:
  - {key: dedicated, operator: Equal, value: batch, effect: NoSchedule}
  - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute,
     tolerationSeconds: 300}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: zone, operator: In, values: [a, b]}]
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector: {matchLabels: {app: worker}}
  topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway,
     labelSelector: {matchLabels: {app: worker}}}
  containers:
  - name: worker
    image: busybox:1.36
    command: [sh, -c]
    args: [sleep 3600]
    workingDir: /work
    stdin: true
    tty: true
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    ports: [{containerPort: 9090, hostPort: 9090, hostIP: 0.0.0.0, name: metrics}]
    resources: {requests: {cpu: 0.5, memory: 64Mi}, limits: {memory: 1e9}}
    volumeMounts: [{name: scratch, mountPath: /work, subPath: w}]
  volumes:
  - {name: scratch, emptyDir: {}}
  - name: downward
    downwardAPI:
      items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
  - name: projected
    projected:
      sources:
      - serviceAccountToken: {path: token, expirationSeconds: 3600, audience: api}
      - configMap: {name: ca, items: [{key: ca.crt, path: ca.crt}]}
status:
  phase: Running
  podIP: 10.244.1.7
  podIPs: [{ip: 10.244.1.7}]
  hostIP: 192.168.1.10
  startTime: "2024-05-01T12:00:01Z"
  qosClass: Burstable
  conditions:
  - {type: Ready, status: "True", lastTransitionTime: "2024-05-01T12:00:05Z"}
  containerStatuses:
  - name: worker
    ready: true
    restartCount: 0
    image: busybox:1.36
    imageID: docker.io/library/busybox@sha256:abc
    containerID: containerd://abc
    started: true
    state: {running: {startedAt: "2024-05-01T12:00:02Z"}}
""")

OTHERS = [
    ("V1ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                     "data": {"a.yaml": "x: 1"}, "binaryData": {"b": "AAEC"}}),
    ("V1Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                  "type": "Opaque", "data": {"password": "aHVudGVyMg=="},
                  "stringData": {"user": "admin"}}),
    ("V1Lease", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
                 "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40,
                          "renewTime": "2024-05-01T12:00:00.123456Z"}}),
    ("V1Scale", {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
                 "spec": {"replicas": 4}, "status": {"replicas": 3, "selector": "app=web"}}),
    ("V1DeleteOptions", {"kind": "DeleteOptions", "apiVersion": "v1",
                         "propagationPolicy": "Foreground", "gracePeriodSeconds": 0,
                         "preconditions": {"uid": "u", "resourceVersion": "7"}}),
]


@pytest.mark.parametrize("manifest, type_name", [
    (DEPLOYMENT, "V1Deployment"), (SERVICE, "V1Service"), (CRONJOB, "V1CronJob"),
    (POD, "V1Pod"), *[(obj, name) for name, obj in OTHERS],
])
def test_real_manifests_are_clean(manifest, type_name):
    assert find_unknown_fields(manifest, type_name) == []
    assert check_types(manifest, type_name) == []
    assert check_fields(manifest, type_name) == ([], [])


def test_typos_are_reported_with_their_paths():
    obj = copy.deepcopy(DEPLOYMENT)
    obj["metdata"] = {}
    obj["spec"]["replicaz"] = 2
    template = obj["spec"]["template"]
    template["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    template["spec"]["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["nam"] = "db"
    template["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pth"] = "/"
    template["spec"]["volumes"][1]["emptyDir"]["size"] = "1Gi"
    template["metadata"]["lables"] = {"a": "b"}
    # Reported in the object's own key order.
    assert find_unknown_fields(obj, "V1Deployment") == [
        "spec.template.metadata.lables",
        "spec.template.spec.containers[0].env[1].valueFrom.secretKeyRef.nam",
        "spec.template.spec.containers[0].livenessProbe.httpGet.pth",
        "spec.template.spec.containers[0].imagePullPolcy",
        "spec.template.spec.volumes[1].emptyDir.size",
        "spec.replicaz",
        "metdata",
    ]


def test_unknown_fields_inside_maps_of_objects_and_at_the_root():
    svc = copy.deepcopy(SERVICE)
    svc["spec"]["ports"][1]["target_port"] = 1
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "hostname": "x",
                                                   "bogus": 1}]}}
    assert find_unknown_fields(svc, "V1Service") == [
        "spec.ports[1].target_port", "status.loadBalancer.ingress[0].bogus"]


def test_free_form_objects_are_not_looked_into():
    pod = copy.deepcopy(POD)
    pod["metadata"]["managedFields"][0]["fieldsV1"] = {"anything": {"goes": [1, "x"]}}
    assert check_fields(pod, "V1Pod") == ([], [])


def test_wrong_types_are_reported():
    obj = copy.deepcopy(DEPLOYMENT)
    spec = obj["spec"]
    spec["replicas"] = "3"
    spec["paused"] = "yes"
    spec["strategy"]["rollingUpdate"]["maxSurge"] = True
    container = spec["template"]["spec"]["containers"][0]
    container["ports"][0]["containerPort"] = 80.5
    container["args"] = "--port 8080"
    container["command"] = [1]
    container["resources"]["limits"]["cpu"] = "one"
    container["resources"]["requests"] = ["cpu"]
    container["livenessProbe"]["httpGet"]["port"] = 80.0
    spec["template"]["metadata"]["labels"]["app"] = 5
    spec["template"]["spec"]["volumes"][0] = "config"
    assert check_types(obj, "V1Deployment") == [
        ("spec.replicas", "must be of type integer, got string"),
        ("spec.strategy.rollingUpdate.maxSurge", "must be of type int-or-string, got boolean"),
        ("spec.template.metadata.labels[app]", "must be of type string, got integer"),
        ("spec.template.spec.containers[0].args", "must be of type array, got string"),
        ("spec.template.spec.containers[0].ports[0].containerPort",
         "must be of type integer, got number"),
        ("spec.template.spec.containers[0].resources.requests",
         "must be of type object, got array"),
        ("spec.template.spec.containers[0].resources.limits[cpu]", QUANTITY_ERROR),
        ("spec.template.spec.containers[0].livenessProbe.httpGet.port",
         "must be of type int-or-string, got number"),
        ("spec.template.spec.containers[0].command[0]", "must be of type string, got integer"),
        ("spec.template.spec.volumes[0]", "must be of type object, got string"),
        ("spec.paused", "must be of type boolean, got string"),
    ]


def test_int_or_string_quantity_and_null():
    svc = copy.deepcopy(SERVICE)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["ports"][1]["targetPort"] == "admin"
    svc["spec"]["ports"][0]["targetPort"] = None  # null means unset
    svc["spec"]["clusterIP"] = None
    assert check_fields(svc, "V1Service") == ([], [])
    limits = {"cpu": 2, "memory": "1.5Gi", "a": 0.25, "b": "100m", "c": "1e3", "d": "+5Ki",
              "e": "12E", "f": ".5", "g": "5Mb", "h": "1.2.3", "i": False}
    errors = check_types({"limits": limits}, "V1ResourceRequirements")
    assert errors == [("limits[g]", QUANTITY_ERROR), ("limits[h]", QUANTITY_ERROR),
                      ("limits[i]", "must be of type quantity, got boolean")]


def test_times_and_base64():
    meta = {"creationTimestamp": "2024-05-01 12:00:00", "deletionTimestamp": "2024-02-30T00:00:00Z"}
    assert check_types(meta, "V1ObjectMeta") == [
        ("creationTimestamp", "must be an RFC 3339 date-time"),
        ("deletionTimestamp", "must be an RFC 3339 date-time"),
    ]
    ok = {"creationTimestamp": "2024-05-01T12:00:00+02:00"}
    assert check_types(ok, "V1ObjectMeta") == []
    secret = {"data": {"ok": "aGk=\n", "empty": "", "bad": "hi!", "short": "aGk"}}
    assert check_types(secret, "V1Secret") == [
        ("data[bad]", "must be base64-encoded data"), ("data[short]", "must be base64-encoded data")]


def test_root_of_the_wrong_type():
    assert check_types(["not", "an", "object"], "V1Pod") == [("", "must be of type object, got array")]
    assert find_unknown_fields("pod", "V1Pod") == []


SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_ERROR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize("name", ["web", "web-1", "a.b.c", "0abc", "x" * 253,
                                  ".".join(["a" * 63] * 3)])
def test_valid_subdomains(name):
    assert validate_dns1123_subdomain(name) == []


@pytest.mark.parametrize("name", ["", "Web", "web_1", "-web", "web-", "a..b", ".a", "a.",
                                  "web\n", "wéb"])
def test_invalid_subdomains(name):
    assert validate_dns1123_subdomain(name) == [SUBDOMAIN_ERROR]


def test_subdomain_length():
    assert validate_dns1123_subdomain("a" * 254) == ["must be no more than 253 characters"]
    assert validate_dns1123_subdomain("A" * 254) == [
        "must be no more than 253 characters", SUBDOMAIN_ERROR]


def test_labels():
    assert validate_dns1123_label("kube-system") == []
    assert validate_dns1123_label("123") == []
    assert validate_dns1123_label("a" * 63) == []
    assert validate_dns1123_label("a" * 64) == ["must be no more than 63 characters"]
    assert validate_dns1123_label("Default") == [LABEL_ERROR]
    assert validate_dns1123_label("") == [LABEL_ERROR]
    assert validate_dns1123_label("a.b") == ["must not contain dots"]


def test_dns1035_labels():
    assert validate_dns1035_label("web-svc") == []
    assert validate_dns1035_label("1web") == [DNS1035_ERROR]
    assert validate_dns1035_label("w" * 64) == ["must be no more than 63 characters"]
