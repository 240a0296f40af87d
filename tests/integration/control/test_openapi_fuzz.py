"""Schemathesis over the served OpenAPI v3 (core, apps, batch, coordination.k8s.io).

A real store and API server; requests as the admin (client certificate). Every
operation gets a few generated requests (deterministic: derandomized Hypothesis,
no example database); the checks are ``not_a_server_error`` and
``response_schema_conformance``. What the run may touch is scoped in the document
it is given, never in the server:

- ``{namespace}`` is the namespace this test creates, so deletes and
  deletecollections stay inside it;
- writes to cluster-scoped resources (namespaces, nodes) are left out: a random
  PUT, PATCH or DELETE there could remove kube-system or default, which the
  server itself keeps;
- ``watch`` is left out of list operations: a watch is a stream of events, not
  one document (tests/integration/control/test_client.py covers watches);
- pods/exec, attach and portforward are left out: they upgrade the connection to
  a node agent, and this test has none.
"""

import copy
import json
import os
import time

import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis (setup.cfg's test extra) is not installed")

import hypothesis  # noqa: E402  (after the importorskip)
import requests  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

from control.objects import kinds  # noqa: E402

GROUP_VERSIONS = ("api/v1", "apis/apps/v1", "apis/batch/v1", "apis/coordination.k8s.io/v1")
NAMESPACE = "fuzz"
#: Generated requests per operation, for requests the schema allows (positive) and
#: requests it does not (negative: a 4xx is expected, never a 5xx). The whole run stays
#: within a few minutes on 2 cores; STEER_FUZZ_EXAMPLES and STEER_FUZZ_SEED run a
#: longer or another search by hand.
EXAMPLES = {GenerationMode.POSITIVE: int(os.environ.get("STEER_FUZZ_EXAMPLES", "4")),
            GenerationMode.NEGATIVE: int(os.environ.get("STEER_FUZZ_EXAMPLES", "2"))}
SEED = os.environ.get("STEER_FUZZ_SEED")
LEFT_OUT_QUERY = {"watch", "allowWatchBookmarks", "sendInitialEvents"}
CONNECTIONS = ("/exec", "/attach", "/portforward")


def _get_json(server, path):
    with server.urlopen(server.url + path, timeout=30) as response:
        return json.load(response)


def scoped_document(documents, namespace):
    """Merge the group/version documents and scope them as the module docstring says."""
    merged = {"openapi": "3.0.0", "info": {"title": "Steersman (fuzzed)", "version": "v1"},
              "paths": {}, "components": {"schemas": {}}}
    for doc in documents:
        merged["components"]["schemas"].update(doc["components"]["schemas"])
        for path, item in doc["paths"].items():
            if path.endswith(CONNECTIONS):
                continue
            item = copy.deepcopy(item)
            namespaced = "{namespace}" in path
            for method in ("put", "patch", "delete", "post"):
                if not namespaced and method in item:
                    del item[method]
            for param in item.get("parameters", []):
                if param["name"] == "namespace":
                    param["schema"] = {"type": "string", "enum": [namespace]}
            for method, op in item.items():
                if method != "parameters":
                    op["parameters"] = [p for p in op["parameters"]
                                        if p["name"] not in LEFT_OUT_QUERY]
            if set(item) - {"parameters"}:
                merged["paths"][path] = item
    return merged


@pytest.fixture(scope="module")
def target(server):
    server.rest_client().create(kinds.NAMESPACES, None, {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    index = _get_json(server, "/openapi/v3")["paths"]
    documents = [_get_json(server, index[key]["serverRelativeURL"]) for key in GROUP_VERSIONS]
    return scoped_document(documents, NAMESPACE)


def _run_operation(operation, server, session, mode):
    """Send EXAMPLES[mode] generated requests; return the first failure's text, or None."""
    strategy = operation.as_strategy(generation_mode=mode)

    @hypothesis.settings(max_examples=EXAMPLES[mode], derandomize=SEED is None, database=None,
                         deadline=None,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.seed(int(SEED or 0))
    @hypothesis.given(strategy)
    def run(case):
        try:
            response = case.call(base_url=server.url, session=session, timeout=60,
                                 verify=server.ca_file, cert=(server.cert_file, server.key_file))
            case.validate_response(response, checks=[not_a_server_error,
                                                     response_schema_conformance])
        except BaseException as exc:
            # Kept: a replay may pass (a create that now conflicts), hiding the first.
            first.append(exc)
            raise
    first = []
    try:
        run()
    except BaseException as exc:  # noqa: BLE001 - Schemathesis raises exception groups
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        return f"{operation.label}: {_describe(first[0] if first else exc)[:3000]}"
    return None


def _describe(exc):
    """The exception and, for a group (Hypothesis, Schemathesis), each exception in it."""
    text = f"{type(exc).__name__}: {exc}"
    for inner in getattr(exc, "exceptions", ()):
        text += "\n  " + _describe(inner).replace("\n", "\n  ")
    return text


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors_and_responses_match_the_schema(server, target, mode):
    schema = schemathesis.openapi.from_dict(target)
    session = requests.Session()
    failures, operations, timings = [], 0, []
    started, cpu_started = time.monotonic(), time.process_time()
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        began = time.monotonic()
        failure = _run_operation(operation, server, session, mode)
        timings.append((time.monotonic() - began, operation.label))
        if failure is not None:
            failures.append(failure)
    elapsed = time.monotonic() - started
    print(f"fuzzed {operations} operations x {EXAMPLES[mode]} {mode} examples in {elapsed:.0f}s "
          f"({time.process_time() - cpu_started:.0f}s of this process's CPU); slowest:",
          ", ".join(f"{label} {seconds:.1f}s" for seconds, label in sorted(timings)[-5:]))
    assert operations > 100
    assert not failures, f"{len(failures)} of {operations} operations failed:\n\n" + \
        "\n\n".join(failures)


def test_the_server_still_serves_its_own_namespaces(server, target):
    client = server.rest_client()
    for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert client.get(kinds.NAMESPACES, None, name)["metadata"]["name"] == name
