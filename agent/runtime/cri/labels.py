"""The labels and annotations the agent puts on CRI sandboxes and containers.

They are how a restarted agent finds its pods again: ListContainers and
ListPodSandbox filter on them, and a container's pod uid, name, attempt and
init flag come back from them (kubelet keeps the same facts in the same
``io.kubernetes.*`` keys, so tools that know kubelet's read ours).
"""

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
#: Which agent's node a sandbox or container belongs to (one containerd may serve two).
NODE = "steersman.io/node"
MANAGED = "steersman.io/managed"

ATTEMPT = "io.kubernetes.container.restartCount"
TERMINATION_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_POLICY = "io.kubernetes.container.terminationMessagePolicy"
INIT = "steersman.io/init"
LOG_PATH = "steersman.io/log-path"
TERMINATION_HOST_PATH = "steersman.io/termination-log"
#: The sandbox a container was created in (ContainerStatus does not say).
SANDBOX_ID = "steersman.io/sandbox-id"


def ours(node):
    """The selector of everything this node's agent created."""
    return {MANAGED: "true", NODE: node}


def pod_labels(pod, node):
    """Labels of a pod's sandbox: the pod's own labels, then ours (which win)."""
    meta = pod["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if isinstance(v, str)}
    labels.update({POD_NAME: meta["name"], POD_NAMESPACE: meta["namespace"],
                   POD_UID: meta["uid"], **ours(node)})
    return labels


def container_labels(pod, name, node):
    """Labels of a container: its pod's identity, its name, and ours."""
    meta = pod["metadata"]
    return {POD_NAME: meta["name"], POD_NAMESPACE: meta["namespace"], POD_UID: meta["uid"],
            CONTAINER_NAME: name, **ours(node)}


def container_annotations(attempt, init, log_path, termination_path="",
                          termination_host_path="", termination_policy="", sandbox_id=""):
    """Annotations of a container: what re-adoption and the termination message need."""
    out = {ATTEMPT: str(attempt), INIT: "true" if init else "false", LOG_PATH: log_path,
           SANDBOX_ID: sandbox_id}
    if termination_path:
        out.update({TERMINATION_PATH: termination_path,
                    TERMINATION_HOST_PATH: termination_host_path,
                    TERMINATION_POLICY: termination_policy or "File"})
    return out


def attempt_of(annotations, metadata_attempt=0):
    """The attempt recorded on a container (the annotation, else its CRI metadata)."""
    try:
        return int(annotations.get(ATTEMPT, metadata_attempt))
    except (TypeError, ValueError):
        return metadata_attempt or 0


def is_init(annotations):
    return annotations.get(INIT) == "true"
