"""Hash a pod template as Kubernetes does, so ReplicaSet names agree across processes.

Apart from the rest of the Deployment rules: the hash must be the same in
every process and every run (Python's hash() is not), and templates compare
equal when they differ only by it.
"""

import copy
import json

#: The label (and selector term) that ties a ReplicaSet and its pods to one template.
HASH_LABEL = "pod-template-hash"
#: rand.SafeEncodeString's alphabet: no vowels, no 0/1/3, so no words and no look-alikes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET, _FNV32_PRIME = 0x811C9DC5, 0x01000193


def _pruned(value):
    """``value`` without null, empty-map and empty-list fields, recursively.

    Kubernetes compares templates semantically (nil and empty are equal); clients
    that send ``creationTimestamp: null`` or ``resources: {}`` (kubectl rollout undo
    does) must not get a different hash or a "different" template.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _pruned(item)
            if item is not None and item != {} and item != []:
                out[key] = item
        return out
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def fnv32a(data):
    """The 32-bit FNV-1a hash of ``data`` (bytes), as Go's hash/fnv New32a."""
    h = _FNV32_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text):
    """rand.SafeEncodeString: map each byte of ``text`` into SAFE_ALPHABET."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def compute_hash(template, collision_count=None):
    """The pod-template-hash of ``template``: the same in every process and every run.

    FNV-1a over the canonical JSON of the template (sorted keys, no spaces, nulls
    and empties dropped), then, if there were collisions, the collision count as 4
    little-endian bytes; the decimal value is rendered with the safe alphabet.
    """
    data = json.dumps(_pruned(template or {}), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little")
    return safe_encode(str(fnv32a(data)))


def _without_hash(template):
    template = _pruned(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        template = copy.deepcopy(template)
        del template["metadata"]["labels"][HASH_LABEL]
        if not template["metadata"]["labels"]:
            del template["metadata"]["labels"]
        if not template["metadata"]:
            del template["metadata"]
    return template


def equal_ignore_hash(a, b):
    """EqualIgnoreHash: two pod templates are the same but for the pod-template-hash label."""
    return _without_hash(a) == _without_hash(b)

