"""Find and run the real kubectl, for the tests that check kubectl itself.

Core paths are tested with `steer`, ``control.client`` and the official Python
client; only tests marked ``kubectl`` run kubectl, and tests/conftest.py skips them,
with ``MISSING`` as the reason, where kubectl is absent. ``STEER_TEST_NO_KUBECTL=1``
hides an installed kubectl, to prove that nothing else needs it.
"""

import os
import shutil
import subprocess

HIDE_ENV = "STEER_TEST_NO_KUBECTL"
MISSING = ("kubectl is not installed (or hidden by STEER_TEST_NO_KUBECTL): install "
           "kubectl v1.32 on PATH (Debian: `apt-get install kubectl` from the Kubernetes "
           "apt repository, pkgs.k8s.io) to run the kubectl-marked tests")


def kubectl_path():
    """Return the kubectl on PATH, or None if absent or hidden by STEER_TEST_NO_KUBECTL."""
    if os.environ.get(HIDE_ENV, "") not in ("", "0"):
        return None
    return shutil.which("kubectl")


def kubectl_argv(kubeconfig, *args):
    """Return the command line of kubectl ``args`` against ``kubeconfig``.

    Fails (not skips) when kubectl is missing: a test that gets here without the
    ``kubectl`` marker has a core path that depends on kubectl, which is a bug.
    """
    path = kubectl_path()
    if path is None:
        raise AssertionError(f"{MISSING}; a test that runs kubectl must be marked "
                             "@pytest.mark.kubectl")
    return [path, "--kubeconfig", kubeconfig, *args]


def run_kubectl(kubeconfig, *args, input=None, timeout=60, check=True):
    """Run kubectl ``args``; return the CompletedProcess (text), failing on error if asked."""
    result = subprocess.run(kubectl_argv(kubeconfig, *args), input=input, capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result
