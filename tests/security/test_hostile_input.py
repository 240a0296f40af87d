"""Hostile input against a real API server: each attack gets a 4xx and the worker lives.

Every test sends the attack as found by fuzzing (issue 10), checks the answer (the
code, a Status body with a clear message) and then that the same single worker
still answers a GET at once.
"""

import json
import threading
import time

import pytest

from tests.support.apiproc import eventually

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
#: Shorter waits than the defaults: a 2 s body read timeout, the system namespace loop.
SERVER_ARGS = ["--request-body-timeout", "2", "--system-namespaces-interval", "0.5"]


def configmap(name, **fields):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


def assert_status(answer, code, *words):
    """The answer is ``code`` with a Status body whose message holds ``words``."""
    assert answer.status == code, answer
    body = answer.json
    assert body["kind"] == "Status" and body["code"] == code, body
    for word in words:
        assert word in body["message"], body["message"]


def assert_serving(raw):
    """The worker answers an ordinary GET within a second or two."""
    start = time.monotonic()
    answer = raw.request("GET", CONFIGMAPS)
    assert answer.status == 200, answer
    assert time.monotonic() - start < 3


def create(raw, name, **fields):
    answer = raw.request("POST", CONFIGMAPS, configmap(name, **fields))
    assert answer.status == 201, answer
    return answer


# -- patches -----------------------------------------------------------------------
def test_json_patch_copy_bomb_is_refused(raw):
    create(raw, "copy-bomb", data={"a": "x" * 100})
    # Each copy doubles data (the fuzzer's form copied "" and died after 67 s).
    bomb = [{"op": "copy", "from": "/data", "path": f"/data/k{n}"} for n in range(60)]
    start = time.monotonic()
    answer = raw.request("PATCH", f"{CONFIGMAPS}/copy-bomb", bomb,
                         content_type="application/json-patch+json")
    assert_status(answer, 422, "copy")
    assert time.monotonic() - start < 10
    assert_serving(raw)


def test_json_patch_operation_count_is_capped(raw):
    create(raw, "many-ops")
    ops = [{"op": "test", "path": "/kind", "value": "ConfigMap"}] * 10_001
    answer = raw.request("PATCH", f"{CONFIGMAPS}/many-ops", ops,
                         content_type="application/json-patch+json")
    assert_status(answer, 422, "10000")
    assert_serving(raw)


def test_merge_patch_result_over_the_object_cap_is_413(raw):
    create(raw, "merge-big")
    answer = raw.request("PATCH", f"{CONFIGMAPS}/merge-big", {"data": {"big": "x" * 1_100_000}},
                         content_type="application/merge-patch+json")
    assert_status(answer, 413, "bytes")
    assert raw.request("GET", f"{CONFIGMAPS}/merge-big").json.get("data") is None
    assert_serving(raw)


# -- bodies ------------------------------------------------------------------------
def test_yaml_alias_bomb_in_managed_fields_is_refused(raw):
    bomb = "\n".join([
        "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: alias-bomb",
        "  managedFields:", "  - manager: x", "    fieldsV1:",
        '      a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"      {chr(98 + n)}: &{chr(98 + n)} [*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)},"
          f"*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)},*{chr(97 + n)},"
          f"*{chr(97 + n)}]" for n in range(8))])
    assert len(bomb) < 1000
    start = time.monotonic()
    answer = raw.request("POST", CONFIGMAPS, bomb, content_type="application/yaml")
    assert_status(answer, 400, "alias")
    assert time.monotonic() - start < 3
    assert raw.request("GET", f"{CONFIGMAPS}/alias-bomb").status == 404
    assert_serving(raw)


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
def test_deeply_nested_body_is_400(raw, content_type):
    start = time.monotonic()
    answer = raw.request("POST", CONFIGMAPS, "[" * 100_000, content_type=content_type)
    assert_status(answer, 400, "nest")      # libyaml stops at 1,000 levels itself
    assert time.monotonic() - start < 3
    assert_serving(raw)


def test_deep_free_form_field_is_400_not_a_recursion_error(raw):
    deep = {}
    for _ in range(900):
        deep = {"f": deep}
    body = configmap("deep-field")
    body["metadata"]["managedFields"] = [{"manager": "x", "fieldsV1": deep}]
    answer = raw.request("POST", CONFIGMAPS, body)
    assert_status(answer, 400, "nested too deeply")
    assert_serving(raw)


def test_chunked_body_is_read(raw):
    body = json.dumps(configmap("chunked", data={"k": "v"})).encode()
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:half], body[half:]))
    request = (f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    answer = raw.send(request + chunks + b"0\r\n\r\n")
    assert answer.status == 201, answer
    assert raw.request("GET", f"{CONFIGMAPS}/chunked").json["data"] == {"k": "v"}


def test_slow_body_times_out_with_408(raw):
    sock = raw.connect()
    try:
        sock.sendall((f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{").encode())
        start = time.monotonic()
        answer = raw.receive(sock)
        assert_status(answer, 408, "not received in time")
        assert time.monotonic() - start < 10
    finally:
        sock.close()
    assert_serving(raw)


def test_slow_bodies_do_not_hold_the_mutating_limit(raw):
    """200 clients trickling bodies (the default mutating limit) leave writes free."""
    socks = []
    try:
        for _ in range(200):
            sock = raw.connect()
            sock.sendall((f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
                         .encode())
            socks.append(sock)
        for n in range(3):
            answer = raw.request("POST", CONFIGMAPS, configmap(f"not-starved-{n}"))
            assert answer.status == 201, answer
    finally:
        for sock in socks:
            sock.close()
    assert_serving(raw)


def test_watch_on_a_post_counts_as_a_write(raw):
    answer = raw.request("POST", CONFIGMAPS + "?watch=true", configmap("watch-post"))
    assert answer.status == 201, answer
    assert answer.json["metadata"]["name"] == "watch-post"


def test_oversized_object_is_413_and_not_stored(raw):
    answer = raw.request("POST", CONFIGMAPS, configmap("huge", data={"k": "x" * 1_100_000}))
    assert_status(answer, 413, "bytes")
    assert raw.request("GET", f"{CONFIGMAPS}/huge").status == 404
    assert_serving(raw)


def test_oversized_header_is_refused(raw):
    answer = raw.request("GET", CONFIGMAPS, headers={"X-Big": "a" * 20_000})
    assert 400 <= answer.status < 500, answer
    assert_serving(raw)


# -- web pages: Origin and content types ---------------------------------------------
def test_foreign_origin_is_forbidden(raw):
    answer = raw.request("POST", CONFIGMAPS, configmap("csrf"),
                         headers={"Origin": "http://evil.example"})
    assert_status(answer, 403, "Origin")
    assert raw.request("GET", f"{CONFIGMAPS}/csrf").status == 404


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_web_form_content_types_are_415(raw, content_type):
    answer = raw.request("POST", CONFIGMAPS, json.dumps(configmap("form")),
                         content_type=content_type)
    assert_status(answer, 415, "content type")
    assert raw.request("GET", f"{CONFIGMAPS}/form").status == 404


# -- former 500s --------------------------------------------------------------------
def test_unknown_field_named_empty_is_a_warning(raw):
    body = configmap("empty-field")
    body[""] = 1
    answer = raw.request("POST", CONFIGMAPS, body)
    assert answer.status == 201, answer
    assert 'unknown field' in answer.headers["warning"]


@pytest.mark.parametrize("field", ["new\nline", "caf\u00e9", "\u4e2d\u6587", 'quo"te\\'])
def test_unknown_field_names_are_escaped_in_the_warning(raw, field):
    name = f"odd-{abs(hash(field)) % 10_000}"
    body = configmap(name)
    body["metadata"]["labels"] = {"a": "b"}
    body[field] = 1
    answer = raw.request("POST", CONFIGMAPS, body)
    assert answer.status == 201, answer
    assert answer.headers["warning"].startswith('299 - "unknown field')
    assert raw.request("GET", f"{CONFIGMAPS}/{name}").status == 200


def test_strict_unknown_field_creates_nothing(raw):
    body = configmap("strict-odd")
    body["bad\nname"] = 1
    answer = raw.request("POST", CONFIGMAPS + "?fieldValidation=Strict", body)
    assert_status(answer, 400, "unknown field")
    assert raw.request("GET", f"{CONFIGMAPS}/strict-odd").status == 404


def test_huge_limit_is_400(raw):
    assert_status(raw.request("GET", CONFIGMAPS + "?limit=" + "1" + "0" * 30), 400, "limit")
    assert_status(raw.request("GET", CONFIGMAPS + "?limit=9223372036854775808"), 400, "limit")
    assert_serving(raw)


def test_null_metadata_is_400(raw):
    answer = raw.request("POST", CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": None})
    assert_status(answer, 400, "metadata")
    assert_serving(raw)


def test_405_carries_allow(raw):
    answer = raw.request("PUT", CONFIGMAPS, configmap("x"))
    assert_status(answer, 405)
    assert answer.headers["allow"] == "GET, POST, DELETE"
    answer = raw.request("POST", f"{CONFIGMAPS}/x", configmap("x"))
    assert answer.status == 405 and "allow" in answer.headers
    assert answer.json["kind"] == "Status"


# -- watches --------------------------------------------------------------------------
def test_future_resource_version_does_not_poison_the_watch_cache(raw):
    path = "/api/v1/namespaces/default/secrets"
    start = time.monotonic()
    answer = raw.request("GET", path + "?watch=true&resourceVersion=999999999999")
    assert_status(answer, 504, "Too large resource version")
    assert answer.json["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert time.monotonic() - start < 10
    lines = []

    def watch():
        sock = raw.connect()
        sock.sendall((f"GET {path}?watch=true&timeoutSeconds=5 HTTP/1.1\r\n"
                      "Host: 127.0.0.1\r\nConnection: close\r\n\r\n").encode())
        answer = raw.receive(sock)
        lines.extend(line for line in answer.body.splitlines() if line.strip())
        sock.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "after-poison"}}
    assert raw.request("POST", path, secret).status == 201
    watcher.join(15)
    names = [json.loads(line)["object"]["metadata"].get("name") for line in lines]
    assert "after-poison" in names


# -- namespace lifecycle ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_cannot_be_deleted(raw, name):
    answer = raw.request("DELETE", f"/api/v1/namespaces/{name}")
    assert_status(answer, 403, f'namespaces "{name}" is forbidden: this namespace may not '
                  "be deleted")
    namespace = raw.request("GET", f"/api/v1/namespaces/{name}").json
    assert "deletionTimestamp" not in namespace["metadata"]


def test_kube_node_lease_is_recreated(raw):
    path = "/api/v1/namespaces/kube-node-lease"
    old_uid = raw.request("GET", path).json["metadata"]["uid"]
    assert raw.request("DELETE", path).status in (200, 202)
    # No namespace controller runs here: finish the deletion as it would.
    terminating = raw.request("GET", path).json
    terminating["spec"]["finalizers"] = []
    assert raw.request("PUT", path + "/finalize", terminating).status == 200

    def recreated():
        answer = raw.request("GET", path)
        return answer.status == 200 and answer.json["metadata"]["uid"] != old_uid and \
            answer.json["status"]["phase"] == "Active"
    eventually(recreated, timeout=15, message="kube-node-lease re-created")


def test_no_objects_in_a_missing_namespace(raw):
    answer = raw.request("POST", "/api/v1/namespaces/nowhere/configmaps", configmap("x"))
    assert_status(answer, 404, 'namespaces "nowhere" not found')
