"""Generate control/objects/k8s_schema.json from the official Kubernetes client.

Run as ``python -m control.objects.schema_gen`` (``--check`` only compares).
The ``kubernetes`` package is a test dependency: this module is the only one
that imports it, and nothing imports this module at run time.

The output holds every model reachable from the kinds Steersman serves, with
each field's JSON name, a normalized type, the required fields and the
descriptions (``kubectl explain`` and the OpenAPI documents need them):

    {"generator": {"kubernetes": "37.0.2", "module": "control.objects.schema_gen"},
     "kinds": {"v1/Pod": "V1Pod", "apps/v1/Deployment": "V1Deployment", ...},
     "types": {"V1Pod": {"description": "...",
                         "fields": {"apiVersion": "string", "spec": "V1PodSpec", ...},
                         "descriptions": {"apiVersion": "...", ...},
                         "required": ["..."]}, ...}}

Field types: string, integer, number, boolean, date-time, byte (base64
string), object (free-form), quantity, int-or-string, a type name, "[]T" (list
of T) and "{}T" (map from string to T).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import typing
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("k8s_schema.json")

# (group/version, kind, client class) of every kind served; each kind's List
# kind is added when the client has it.
KINDS = [
    ("v1", "Namespace", "V1Namespace"),
    ("v1", "Node", "V1Node"),
    ("v1", "Pod", "V1Pod"),
    ("v1", "Service", "V1Service"),
    ("v1", "Endpoints", "V1Endpoints"),
    ("v1", "ConfigMap", "V1ConfigMap"),
    ("v1", "Secret", "V1Secret"),
    ("v1", "Event", "CoreV1Event"),
    ("v1", "ServiceAccount", "V1ServiceAccount"),
    ("v1", "Binding", "V1Binding"),
    ("coordination.k8s.io/v1", "Lease", "V1Lease"),
    ("discovery.k8s.io/v1", "EndpointSlice", "V1EndpointSlice"),
    ("networking.k8s.io/v1", "NetworkPolicy", "V1NetworkPolicy"),
    ("apps/v1", "ReplicaSet", "V1ReplicaSet"),
    ("apps/v1", "Deployment", "V1Deployment"),
    ("apps/v1", "DaemonSet", "V1DaemonSet"),
    ("apps/v1", "StatefulSet", "V1StatefulSet"),
    ("apps/v1", "ControllerRevision", "V1ControllerRevision"),
    ("batch/v1", "Job", "V1Job"),
    ("batch/v1", "CronJob", "V1CronJob"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "V1CustomResourceDefinition"),
    ("autoscaling/v1", "Scale", "V1Scale"),
    ("policy/v1", "Eviction", "V1Eviction"),
    ("rbac.authorization.k8s.io/v1", "Role", "V1Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "V1ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "V1RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "V1ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "V1SelfSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SubjectAccessReview", "V1SubjectAccessReview"),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview", "V1LocalSubjectAccessReview"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "V1SelfSubjectRulesReview"),
    ("authentication.k8s.io/v1", "TokenReview", "V1TokenReview"),
    ("authentication.k8s.io/v1", "SelfSubjectReview", "V1SelfSubjectReview"),
    ("authentication.k8s.io/v1", "TokenRequest", "AuthenticationV1TokenRequest"),
    ("certificates.k8s.io/v1", "CertificateSigningRequest", "V1CertificateSigningRequest"),
    ("policy/v1", "PodDisruptionBudget", "V1PodDisruptionBudget"),
    ("v1", "PersistentVolume", "V1PersistentVolume"),
    ("v1", "PersistentVolumeClaim", "V1PersistentVolumeClaim"),
    ("storage.k8s.io/v1", "StorageClass", "V1StorageClass"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "V2HorizontalPodAutoscaler"),
    ("autoscaling/v1", "HorizontalPodAutoscaler", "V1HorizontalPodAutoscaler"),
    ("v1", "ResourceQuota", "V1ResourceQuota"),
    ("v1", "LimitRange", "V1LimitRange"),
    ("networking.k8s.io/v1", "Ingress", "V1Ingress"),
    ("networking.k8s.io/v1", "IngressClass", "V1IngressClass"),
    # Meta and discovery kinds the API server sends or accepts.
    ("v1", "Status", "V1Status"),
    ("v1", "DeleteOptions", "V1DeleteOptions"),
    ("v1", "APIResourceList", "V1APIResourceList"),
    ("v1", "APIGroupList", "V1APIGroupList"),
    ("v1", "APIGroup", "V1APIGroup"),
    ("v1", "APIVersions", "V1APIVersions"),
]

# Types without a kind of their own that the server still needs.
EXTRA_TYPES = ["V1WatchEvent", "VersionInfo", "V1Preconditions"]

# The client types resource.Quantity as a plain str, so which fields hold
# quantities (and accept JSON numbers, like ``cpu: 1``) must be listed here.
QUANTITY_FIELDS = {
    ("V1ResourceRequirements", "limits"),
    ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"),
    ("V1VolumeResourceRequirements", "requests"),
    ("V1PodSpec", "overhead"),
    ("V1PodStatus", "allocatedResources"),
    ("V1ContainerStatus", "allocatedResources"),
    ("V1NodeStatus", "allocatable"),
    ("V1NodeStatus", "capacity"),
    ("V1PersistentVolumeClaimStatus", "allocatedResources"),
    ("V1PersistentVolumeClaimStatus", "capacity"),
    ("V1EmptyDirVolumeSource", "sizeLimit"),
    ("V1ResourceFieldSelector", "divisor"),
    ("V1NodeAllocatableMappedResources", "quantity"),
    ("V1NodeAllocatableOverheadResources", "perContainer"),
    ("V1NodeAllocatableOverheadResources", "perPod"),
}

PRIMITIVES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "datetime": "date-time",
    "date": "date",
    "bytes": "byte",
    "bytearray": "byte",
    "object": "object",
}

# Both spellings of the client's type strings: "List[X]" / "Dict[str, X]"
# (pydantic-based clients) and "list[X]" / "dict(str, X)" (older ones).
_LIST = re.compile(r"[Ll]ist\[(.*)\]")
_MAP = re.compile(r"(?:Dict\[str, (.*)\]|dict\(str, (.*)\))")


def normalize(type_str: str) -> str:
    """Return the schema type for a client type string."""
    if m := _LIST.fullmatch(type_str):
        return "[]" + normalize(m.group(1))
    if m := _MAP.fullmatch(type_str):
        return "{}" + normalize(m.group(1) or m.group(2))
    return PRIMITIVES.get(type_str, type_str)


def _leaf(schema_type: str) -> str:
    return schema_type.lstrip("[]{}")


def _with_leaf(schema_type: str, leaf: str) -> str:
    return schema_type[: len(schema_type) - len(_leaf(schema_type))] + leaf


def _base_types(annotation) -> set:
    """Return the plain classes an annotation allows (Optional/Annotated/Union stripped)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_types(typing.get_args(annotation)[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        out = set()
        for arg in typing.get_args(annotation):
            out |= _base_types(arg)
        return out
    return {annotation}


def _field_info(cls, attr: str):
    """Return the pydantic FieldInfo of a client attribute, or None (pre-pydantic client)."""
    fields = getattr(cls, "model_fields", None)
    if not fields:
        return None
    if attr in fields:
        return fields[attr]
    # Attributes named after Python keywords ("_exec") are stored as "var_exec".
    for info in fields.values():
        if info.alias == attr:
            return info
    return None


def _class_description(cls) -> str:
    doc = (cls.__doc__ or "").split("Attributes:")[0]
    return " ".join(doc.split())


def describe_type(cls, name: str) -> dict:
    """Return the schema entry of one client model class."""
    fields, descriptions, required = {}, {}, []
    for attr, type_str in sorted(cls.openapi_types.items()):
        json_name = cls.attribute_map[attr]
        schema_type = normalize(type_str)
        info = _field_info(cls, attr)
        if schema_type == "object" and info is not None:
            # IntOrString is "object" in openapi_types; its annotation says int | str.
            if _base_types(info.annotation) - {type(None)} == {int, str}:
                schema_type = "int-or-string"
        if (name, json_name) in QUANTITY_FIELDS:
            if _leaf(schema_type) != "string":
                raise SystemExit(f"{name}.{json_name}: quantity override on {schema_type}")
            schema_type = _with_leaf(schema_type, "quantity")
        fields[json_name] = schema_type
        if info is not None:
            if info.description:
                descriptions[json_name] = info.description.strip()
            if info.is_required():
                required.append(json_name)
    entry = {"fields": fields}
    if description := _class_description(cls):
        entry["description"] = description
    if descriptions:
        entry["descriptions"] = descriptions
    if required:
        entry["required"] = sorted(required)
    return entry


def build() -> dict:
    """Return the whole schema document built from the installed client."""
    import kubernetes
    from kubernetes.client import models

    kinds = {}
    for group_version, kind, class_name in KINDS:
        kinds[f"{group_version}/{kind}"] = class_name
        if hasattr(models, class_name + "List"):
            kinds[f"{group_version}/{kind}List"] = class_name + "List"

    types = {}
    pending = sorted(set(kinds.values()) | set(EXTRA_TYPES))
    while pending:
        name = pending.pop()
        if name in types:
            continue
        cls = getattr(models, name)
        types[name] = describe_type(cls, name)
        for schema_type in types[name]["fields"].values():
            leaf = _leaf(schema_type)
            if hasattr(models, leaf) and leaf not in types:
                pending.append(leaf)

    missing = QUANTITY_FIELDS - {
        (t, f) for t, entry in types.items() for f in entry["fields"]
    }
    if missing:
        raise SystemExit(f"quantity fields not found in the client: {sorted(missing)}")
    return {
        "generator": {"kubernetes": kubernetes.__version__, "module": "control.objects.schema_gen"},
        "kinds": kinds,
        "types": types,
    }


def render(document: dict) -> str:
    """Return the document as the committed text (sorted keys, one line per field)."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema file, or with --check report whether it is current."""
    parser = argparse.ArgumentParser(prog="python -m control.objects.schema_gen")
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m control.objects.schema_gen",
                  file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
