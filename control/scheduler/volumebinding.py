"""What a pod's PersistentVolumeClaims ask of placement (kube-scheduler's VolumeBinding).

``volume_facts`` reads the pod's claims, their volumes and classes through
getters (the loop passes its informer caches) and answers, once per pod:

- ``problem``: a reason no node can take the pod now (a missing or deleted claim,
  an unbound claim of an Immediate class, a claim bound to a missing volume);
- ``node_terms``: the required nodeSelectorTerms of every bound volume (a local
  volume pins the pod to its node);
- ``pending``: the unbound claims of WaitForFirstConsumer classes, each with the
  node already chosen for it (``volume.kubernetes.io/selected-node``) or None.

A pod with pending claims is not bound: the loop writes the chosen node on the
claims, the provisioner makes a volume there, and once the claims are Bound the
pod is placed again and fits only that node (the VolumeBinding PreBind, which
waits for the binding before the pod is bound).
"""

from dataclasses import dataclass

SELECTED_NODE = "volume.kubernetes.io/selected-node"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"

UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
NODE_CONFLICT = "node(s) had volume node affinity conflict"
PV_MISSING = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"


@dataclass(frozen=True)
class VolumeFacts:
    """A pod's storage constraints (see the module docstring)."""

    problem: str = None
    node_terms: tuple = ()          # one tuple of nodeSelectorTerms per bound volume
    pending: tuple = ()             # ((namespace, claim name, selected node or None), ...)


NO_VOLUMES = VolumeFacts()


def claim_names(pod):
    return [v["persistentVolumeClaim"]["claimName"]
            for v in (pod.get("spec") or {}).get("volumes") or ()
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


def volume_facts(pod, get_claim, get_volume, get_class):
    """The VolumeFacts of ``pod``; getters answer an object or None."""
    names = claim_names(pod)
    if not names:
        return NO_VOLUMES
    namespace = pod["metadata"].get("namespace")
    terms, pending = [], []
    for name in names:
        claim = get_claim(namespace, name)
        if claim is None:
            return VolumeFacts(problem=f'persistentvolumeclaim "{name}" not found')
        if claim["metadata"].get("deletionTimestamp"):
            return VolumeFacts(problem=f'persistentvolumeclaim "{name}" is being deleted')
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            volume = get_volume(volume_name)
            if volume is None:
                return VolumeFacts(problem=PV_MISSING)
            required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required")
            if required:
                terms.append(tuple(required.get("nodeSelectorTerms") or ()))
            continue
        class_name = (claim.get("spec") or {}).get("storageClassName")
        storage_class = get_class(class_name) if class_name else None
        if (storage_class or {}).get("volumeBindingMode") != WAIT_FOR_FIRST_CONSUMER:
            return VolumeFacts(problem=UNBOUND_IMMEDIATE)
        selected = (claim["metadata"].get("annotations") or {}).get(SELECTED_NODE)
        pending.append((namespace, name, selected))
    return VolumeFacts(node_terms=tuple(terms), pending=tuple(pending))
