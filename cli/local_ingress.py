"""The Ingress addon `steer up --addons dns,ingress` starts: nginx on every node's 80 and 443.

Objects (created idempotently, as the DNS addon's; examples/ingress/ holds them
as YAML for `steer apply -f` on a bare-metal cluster):

    Namespace           ingress-nginx               Pod Security level "privileged" (the
                                                    hostPorts are beyond "baseline")
    IngressClass        steer                       controller steersman.io/ingress-nginx,
                                                    the cluster's default class
    ServiceAccount      ingress-nginx/ingress-nginx
    ClusterRole         system:steer-ingress-nginx  get/list/watch ingresses, ingressclasses,
                                                    services, endpointslices, secrets; update
                                                    ingresses/status; create/patch events
    ClusterRoleBinding  system:steer-ingress-nginx  -> the ServiceAccount
    Role, RoleBinding   ingress-nginx/steer-ingress-nginx  list/watch/patch pods of its own
                                                    namespace only: each controller pod
                                                    annotates itself with its node's address
                                                    and reads the others' (the Ingresses'
                                                    status addresses)
    DaemonSet           ingress-nginx/ingress-nginx steer.local/steer-ingress:<version>
                                                    (cli/local_ingress_image.py) on every
                                                    node's network: ports 80 and 443,
                                                    /healthz and /readyz on 10254

nginx runs in the node's network namespace (hostNetwork, as ingress-nginx's
bare-metal manifests offer). CNI hostPorts would work too now that a hostPort no
longer captures ClusterIPs (agent/network/service_routes.py; the e2e's traffic
passed through them), but from the pod network a controller cannot tell its
node's LAN address for the Ingresses' status: the pod's hostIP is the agent's
loopback node IP (127.x) on a local cluster, and the route towards the API server
names the pod's own address.

Reading Secrets cluster-wide is what serving TLS from any namespace's Secrets
needs (ingress-nginx asks the same); the informer lists only kubernetes.io/tls ones.
"""


from control.objects import kinds

#: The class and controller name control/addons/ingress claims (cli may not import it).
CLASS_NAME = "steer"
CONTROLLER_NAME = "steersman.io/ingress-nginx"
NAMESPACE = "ingress-nginx"
NAME = "ingress-nginx"
ROLE = "system:steer-ingress-nginx"
POD_ROLE = "steer-ingress-nginx"
LABELS = {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}
STATUS_PORT = 10254
INGRESSCLASSES = kinds.lookup("networking.k8s.io", "v1", "ingressclasses")
RBAC = "rbac.authorization.k8s.io"


def ingress_objects(image):
    """[(resource, namespace, body)] of the Ingress addon, in the order they are created."""
    read = ["get", "list", "watch"]
    role = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": ROLE},
            "rules": [{"apiGroups": [""], "resources": ["services", "secrets"], "verbs": read},
                      {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": read},
                      {"apiGroups": ["networking.k8s.io"],
                       "resources": ["ingresses", "ingressclasses"], "verbs": read},
                      {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
                       "verbs": ["update"]},
                      {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
                       "verbs": ["create", "patch"]}]}
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]
    binding = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": ROLE},
               "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": ROLE},
               "subjects": subject}
    pod_role = {"apiVersion": f"{RBAC}/v1", "kind": "Role",
                "metadata": {"name": POD_ROLE, "namespace": NAMESPACE},
                "rules": [{"apiGroups": [""], "resources": ["pods"],
                           "verbs": ["list", "watch", "patch"]}]}
    pod_binding = {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding",
                   "metadata": {"name": POD_ROLE, "namespace": NAMESPACE},
                   "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": POD_ROLE},
                   "subjects": subject}
    return [
        # hostPorts are outside Pod Security's "baseline": the namespace allows them.
        (kinds.NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": NAMESPACE, "labels": {
                                      "pod-security.kubernetes.io/enforce": "privileged"}}}),
        (INGRESSCLASSES, None, ingress_class()),
        (kinds.SERVICEACCOUNTS, NAMESPACE, {"apiVersion": "v1", "kind": "ServiceAccount",
                                            "metadata": {"name": NAME,
                                                         "namespace": NAMESPACE}}),
        (kinds.CLUSTERROLES, None, role), (kinds.CLUSTERROLEBINDINGS, None, binding),
        (kinds.ROLES, NAMESPACE, pod_role), (kinds.ROLEBINDINGS, NAMESPACE, pod_binding),
        (kinds.DAEMONSETS, NAMESPACE, daemonset(image))]


def ingress_class():
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": CLASS_NAME, "annotations": {
                "ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": CONTROLLER_NAME}}


def daemonset(image):
    probe = {"httpGet": {"path": "/readyz", "port": STATUS_PORT}, "periodSeconds": 2,
             "failureThreshold": 3}
    container = {
        "name": "controller", "image": image, "imagePullPolicy": "IfNotPresent",
        "args": ["--mime-types", "/etc/nginx/mime.types", "--status-port", str(STATUS_PORT)],
        "env": [{"name": "POD_NAMESPACE",
                 "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "http", "containerPort": 80, "hostPort": 80, "protocol": "TCP"},
                  {"name": "https", "containerPort": 443, "hostPort": 443, "protocol": "TCP"},
                  {"name": "status", "containerPort": STATUS_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": dict(probe, httpGet={"path": "/healthz", "port": STATUS_PORT},
                              periodSeconds=10, failureThreshold=5, initialDelaySeconds=10),
        "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {
            "drop": ["ALL"], "add": ["NET_BIND_SERVICE", "SETUID", "SETGID", "CHOWN",
                                     "DAC_OVERRIDE"]}},
    }
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "spec": {"selector": {"matchLabels": dict(LABELS)},
                     "template": {"metadata": {"labels": dict(LABELS)},
                                  "spec": {"serviceAccountName": NAME,
                                           # The node's own namespace (see the module
                                           # doc): nginx binds the node's 80 and 443.
                                           "hostNetwork": True,
                                           "dnsPolicy": "ClusterFirstWithHostNet",
                                           "terminationGracePeriodSeconds": 30,
                                           "containers": [container]}}}}


def push_image(creds, say):
    """Build steer-ingress and push it to the cluster's registry (nodes pull it from there)."""
    from cli import local_addons, local_ingress_image
    return local_addons.push_image(creds, local_ingress_image.build_ingress, "ingress", say)


def start(ctx):
    """The `ingress` addon's starter (cli/local_addons.STARTERS)."""
    from cli import local_addons, local_ingress_image
    from cli.cluster_cmd import Failure
    if not ctx.containers:
        raise Failure("the ingress addon runs nginx as a DaemonSet on ports 80 and 443 of "
                      "the nodes' network: "
                      "it needs a containers cluster (steer up --runtime cri); on the process "
                      "runtime leave it out of --addons")
    reason = local_ingress_image.unavailable_reason()
    if reason:
        raise Failure(f"ingress: {reason}")
    image = push_image(ctx.creds, ctx.say)
    rest = local_addons.admin_client(ctx.url, ctx.creds)
    created = local_addons.deploy(rest, ingress_objects(image))
    ctx.say(f"ingress: DaemonSet {NAMESPACE}/{NAME} ({image}) on every node's ports 80 and "
            f"443; IngressClass {CLASS_NAME} (default, controller {CONTROLLER_NAME})" +
            ("" if created else " (already there)"))
