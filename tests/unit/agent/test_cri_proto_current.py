"""The checked-in CRI modules are what api.proto generates, and its wire numbers are CRI's.

If the first test fails: run `make cri-proto` and commit the regenerated files.
"""
import importlib.util
from pathlib import Path

import pytest

from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri import generate

CRI_DIR = Path(generate.__file__).parent


@pytest.mark.skipif(importlib.util.find_spec("grpc_tools") is None,
                    reason="grpcio-tools is not installed (pip install -e '.[test]')")
def test_generated_modules_match_the_proto(tmp_path):
    written = generate.generate(tmp_path)

    for path in written:
        checked_in = CRI_DIR / path.name
        assert path.read_bytes() == checked_in.read_bytes(), (
            f"{checked_in} is stale: run `make cri-proto`")


def test_the_grpc_module_imports_the_messages_by_package_name():
    source = (CRI_DIR / "api_pb2_grpc.py").read_text()
    assert "from agent.runtime.cri import api_pb2" in source


# (message, field, number) that upstream k8s.io/cri-api runtime/v1 assigns; the places
# where numbers are not in declaration order are the easy ones to get wrong.
UPSTREAM_NUMBERS = [
    ("PodSandboxConfig", "linux", 8),
    ("LinuxPodSandboxConfig", "sysctls", 3),
    ("LinuxSandboxSecurityContext", "run_as_group", 8),
    ("LinuxSandboxSecurityContext", "privileged", 6),
    ("LinuxSandboxSecurityContext", "seccomp", 9),
    ("LinuxSandboxSecurityContext", "seccomp_profile_path", 7),
    ("LinuxContainerSecurityContext", "run_as_username", 6),
    ("LinuxContainerSecurityContext", "apparmor_profile", 9),
    ("LinuxContainerSecurityContext", "seccomp_profile_path", 10),
    ("LinuxContainerSecurityContext", "no_new_privs", 11),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("LinuxContainerSecurityContext", "masked_paths", 13),
    ("LinuxContainerSecurityContext", "apparmor", 16),
    ("LinuxContainerResources", "memory_swap_limit_in_bytes", 10),
    ("ContainerConfig", "linux", 15),
    ("ContainerStatus", "log_path", 15),
    ("Container", "image_ref", 5),
    ("Namespace", "options", 2),
    ("ExecRequest", "tty", 3),
    ("AttachRequest", "stdin", 2),
    ("AttachRequest", "tty", 3),
    ("Image", "uid", 5),
    ("UpdateContainerResourcesRequest", "annotations", 4),
    ("ReopenContainerLogRequest", "container_id", 1),
    ("ImageFsInfoResponse", "container_filesystems", 2),
]


@pytest.mark.parametrize("message, field, number", UPSTREAM_NUMBERS)
def test_field_numbers_are_cri_v1s(message, field, number):
    assert api.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number == number


def test_services_have_cri_v1_names():
    assert api.DESCRIPTOR.package == "runtime.v1"
    assert set(api.DESCRIPTOR.services_by_name) == {"RuntimeService", "ImageService"}
