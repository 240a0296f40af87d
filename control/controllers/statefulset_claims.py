"""StatefulSet volumeClaimTemplates: one claim per template and ordinal, kept by policy.

As Kubernetes' StatefulSet controller: the claim of template ``t`` for pod
``<set>-<n>`` is ``t-<set>-<n>``, made (if missing) before the pod, labelled with
the template's labels and the set's matchLabels; the pod gets a volume named
after the template that uses it, so a recreated pod finds its data again.
persistentVolumeClaimRetentionPolicy decides who owns a claim (and so when the
garbage collector deletes it): whenDeleted=Delete makes the set an owner (the
claims go with the set), whenScaled=Delete makes a condemned pod an owner just
before it is deleted (its claims go with it); Retain, the default, keeps them.
"""

import copy

from control.controllers.ownership import controller_ref
from control.objects import kinds

PVCS = kinds.lookup("", "v1", "persistentvolumeclaims")
RETAIN, DELETE = "Retain", "Delete"


def retention(sts):
    """(whenDeleted, whenScaled), each Retain unless the set says Delete."""
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    return (policy.get("whenDeleted") or RETAIN, policy.get("whenScaled") or RETAIN)


def templates(sts):
    return sts["spec"].get("volumeClaimTemplates") or ()


def claim_name(template, set_name, ordinal):
    return f"{template['metadata']['name']}-{set_name}-{ordinal}"


def new_claims(sts, ordinal):
    """The claims pod ``ordinal`` needs, as bodies to create."""
    set_name = sts["metadata"]["name"]
    match_labels = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    claims = []
    for template in templates(sts):
        claim = copy.deepcopy({k: v for k, v in template.items() if k != "status"})
        meta = claim.setdefault("metadata", {})
        meta.update(name=claim_name(template, set_name, ordinal),
                    namespace=sts["metadata"]["namespace"],
                    labels={**(meta.get("labels") or {}), **match_labels})
        for field in ("uid", "resourceVersion", "creationTimestamp", "ownerReferences"):
            meta.pop(field, None)
        if retention(sts)[0] == DELETE:
            meta["ownerReferences"] = [{**controller_ref(sts, "apps/v1", "StatefulSet"),
                                        "controller": True}]
        claim.update(apiVersion="v1", kind="PersistentVolumeClaim")
        claims.append(claim)
    return claims


def with_claim_volumes(pod, sts, ordinal):
    """Give ``pod`` a volume per template that uses its claim (replacing a same-named one)."""
    names = {t["metadata"]["name"] for t in templates(sts)}
    if not names:
        return pod
    spec = pod["spec"]
    volumes = [v for v in spec.get("volumes") or () if v.get("name") not in names]
    volumes += [{"name": t["metadata"]["name"], "persistentVolumeClaim": {
        "claimName": claim_name(t, sts["metadata"]["name"], ordinal)}} for t in templates(sts)]
    spec["volumes"] = volumes
    return pod


def pod_owner_patch(claim, pod):
    """The merge patch that adds ``pod`` to a claim's owners (whenScaled=Delete), or None."""
    refs = list(claim["metadata"].get("ownerReferences") or ())
    uid = pod["metadata"].get("uid")
    if any(r.get("uid") == uid for r in refs):
        return None
    refs.append({"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                 "uid": uid, "blockOwnerDeletion": True})
    return {"metadata": {"ownerReferences": refs,
                         "resourceVersion": claim["metadata"].get("resourceVersion")}}
