"""The generated Kubernetes schema file and the queries over it."""

import pytest

from control.objects import schema


def test_kinds_map_to_their_types():
    assert schema.kind_type("v1", "Pod") == "V1Pod"
    assert schema.kind_type("v1", "Event") == "CoreV1Event"
    assert schema.kind_type("v1", "PodList") == "V1PodList"
    assert schema.kind_type("apps/v1", "Deployment") == "V1Deployment"
    assert schema.kind_type("batch/v1", "CronJob") == "V1CronJob"
    assert schema.kind_type("coordination.k8s.io/v1", "Lease") == "V1Lease"
    assert schema.kind_type("autoscaling/v1", "Scale") == "V1Scale"
    assert schema.kind_type("v1", "Deployment") is None  # wrong group
    assert schema.kind_type("apps/v1", "Pod") is None


def test_every_kind_and_every_referenced_type_is_present():
    wanted = {
        "v1/Namespace", "v1/Node", "v1/Pod", "v1/Service", "v1/Endpoints", "v1/ConfigMap",
        "v1/Secret", "v1/Event", "v1/ServiceAccount", "coordination.k8s.io/v1/Lease",
        "apps/v1/ReplicaSet", "apps/v1/Deployment", "apps/v1/DaemonSet",
        "apps/v1/StatefulSet", "batch/v1/Job", "batch/v1/CronJob", "autoscaling/v1/Scale",
        "v1/Status", "v1/DeleteOptions",
    }
    assert wanted <= set(schema.kinds())
    for type_name in schema.kinds().values():
        assert schema.has_type(type_name)
    for type_name in schema.type_names():
        for field_type in schema.fields(type_name).values():
            leaf = field_type.lstrip("[]{}")
            assert schema.is_scalar(leaf) or schema.has_type(leaf), (type_name, field_type)
    for meta in ("V1ObjectMeta", "V1ListMeta", "V1LabelSelector", "V1OwnerReference",
                 "V1StatusDetails", "V1Preconditions", "V1WatchEvent"):
        assert schema.has_type(meta)


def test_field_types_are_normalized():
    assert schema.fields("V1Pod") == {
        "apiVersion": "string", "kind": "string", "metadata": "V1ObjectMeta",
        "spec": "V1PodSpec", "status": "V1PodStatus",
    }
    assert schema.field_type("V1PodSpec", "containers") == "[]V1Container"
    assert schema.field_type("V1ObjectMeta", "labels") == "{}string"
    assert schema.field_type("V1ObjectMeta", "creationTimestamp") == "date-time"
    assert schema.field_type("V1DeploymentSpec", "replicas") == "integer"
    assert schema.field_type("V1Container", "stdin") == "boolean"
    assert schema.field_type("V1Secret", "data") == "{}byte"
    assert schema.field_type("V1ManagedFieldsEntry", "fieldsV1") == "object"
    # IntOrString and Quantity, which the client types as object and str.
    assert schema.field_type("V1ServicePort", "targetPort") == "int-or-string"
    assert schema.field_type("V1HTTPGetAction", "port") == "int-or-string"
    assert schema.field_type("V1RollingUpdateDeployment", "maxSurge") == "int-or-string"
    assert schema.field_type("V1ResourceRequirements", "limits") == "{}quantity"
    assert schema.field_type("V1EmptyDirVolumeSource", "sizeLimit") == "quantity"
    assert schema.field_type("V1Probe", "exec") == "V1ExecAction"  # "_exec" in Python
    assert schema.field_type("V1Pod", "nope") is None
    with pytest.raises(schema.UnknownType):
        schema.fields("V1Nope")


def test_descriptions_and_required_fields():
    assert schema.type_description("V1Pod").startswith("Pod is a collection of containers")
    assert "Number or name of the port" in schema.field_description("V1ServicePort", "targetPort")
    assert schema.field_description("V1Pod", "nope") == ""
    assert schema.required_fields("V1Container") == ["name"]
    assert schema.required_fields("V1Pod") == []


def test_resolve_path_steps_through_lists_and_maps():
    assert schema.resolve_path("V1Pod", []) == "V1Pod"
    assert schema.resolve_path("V1Pod", ["spec", "containers"]) == "[]V1Container"
    assert schema.resolve_path("V1Pod", ["spec", "containers", "ports"]) == "[]V1ContainerPort"
    assert schema.resolve_path("V1Deployment", ["spec", "template", "spec", "nodeName"]) == "string"
    assert schema.resolve_path("V1Pod", ["spec", "nodeName", "x"]) is None
    assert schema.resolve_path("V1Pod", ["spec", "nope"]) is None


def test_schema_file_is_small():
    from pathlib import Path

    size = (Path(schema.__file__).parent / "k8s_schema.json").stat().st_size
    assert size < 1_500_000


def test_committed_schema_is_what_the_generator_produces():
    from control.objects import schema_gen

    built = schema_gen.build()
    committed = schema.document()
    assert built["generator"] == committed["generator"], (
        "k8s_schema.json was generated with another kubernetes client: "
        "run python -m control.objects.schema_gen")
    assert built == committed, "k8s_schema.json is stale: run python -m control.objects.schema_gen"
    assert schema_gen.render(built) == schema_gen.SCHEMA_PATH.read_text(encoding="utf-8")


def test_generator_normalizes_both_client_spellings():
    from control.objects.schema_gen import normalize

    assert normalize("List[V1Container]") == "[]V1Container"
    assert normalize("list[V1Container]") == "[]V1Container"
    assert normalize("Dict[str, str]") == "{}string"
    assert normalize("dict(str, str)") == "{}string"
    assert normalize("Dict[str, List[str]]") == "{}[]string"
    assert normalize("datetime") == "date-time"
    assert normalize("bytes") == "byte"
    assert normalize("float") == "number"


def test_generator_check_mode_reports_a_stale_file(tmp_path, capsys):
    from control.objects import schema_gen

    stale = tmp_path / "k8s_schema.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert schema_gen.main(["--check", "--output", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert schema_gen.main(["--output", str(stale)]) == 0
    assert schema_gen.main(["--check", "--output", str(stale)]) == 0


def test_the_server_side_modules_do_not_import_the_client():
    import subprocess
    import sys

    code = ("import sys, control.objects.schema, control.objects.validation; "
            "control.objects.schema.document(); "
            "assert 'kubernetes' not in sys.modules, 'kubernetes imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
