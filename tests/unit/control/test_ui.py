"""The dashboard through the real API app: login, RBAC as the user, writes, hostile input."""

import re

import falcon.testing
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from control.api.app import create_app
from control.api.auth import user
from control.api.auth.setup import AuthOptions
from control.ui import sessions
from tests.support.fake_store import FakeStore

ADMIN = {"Authorization": "Bearer admin-token"}
DEPLOYMENTS = "/apis/apps/v1/namespaces/team/deployments"
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def deployment(name="web", replicas=1):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


@pytest.fixture
def client(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "sa.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    options = AuthOptions(authorization_mode="Node,RBAC", policy_ttl=0,
                          service_account_signing_key_file=str(key_file),
                          static_tokens={
                              "admin-token": user.authenticated("admin", ["system:masters"]),
                              "alice-token": user.authenticated("alice"),
                              "bob-token": user.authenticated("bob")})
    client = falcon.testing.TestClient(create_app(FakeStore(), auth_options=options))
    assert client.simulate_post("/api/v1/namespaces", headers=ADMIN, json={
        "metadata": {"name": "team"}}).status_code == 201
    assert client.simulate_post(f"{RBAC}/namespaces/team/rolebindings", headers=ADMIN, json={
        "metadata": {"name": "alice-view", "namespace": "team"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "User", "name": "alice",
                      "apiGroup": "rbac.authorization.k8s.io"}]}).status_code == 201
    assert client.simulate_post(DEPLOYMENTS, headers=ADMIN,
                                json=deployment()).status_code == 201
    return client


def csrf_in(html):
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(client, token):
    """Log in through the form; return the session's Cookie header and CSRF token."""
    page = client.simulate_get("/ui/login")
    nonce = page.cookies[sessions.LOGIN_COOKIE].value
    result = client.simulate_post(
        "/ui/login", headers={"Cookie": f"{sessions.LOGIN_COOKIE}={nonce}",
                              "Content-Type": "application/x-www-form-urlencoded"},
        body=f"csrf={nonce}&token={token}")
    assert result.status_code == 303, result.text
    cookie = {"Cookie": f"{sessions.SESSION_COOKIE}="
                        f"{result.cookies[sessions.SESSION_COOKIE].value}"}
    html = client.simulate_get("/ui/namespaces", headers=cookie).text
    return cookie, csrf_in(html)


def post(client, path, cookie, **form):
    from urllib.parse import urlencode
    return client.simulate_post(path, headers={
        **cookie, "Content-Type": "application/x-www-form-urlencoded"}, body=urlencode(form))


def test_login_page_is_served_with_protective_headers(client):
    page = client.simulate_get("/ui/login")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    raw = page.headers["Set-Cookie"]
    assert "HttpOnly" in raw and "Secure" in raw and "SameSite=Strict" in raw


def test_a_stranger_is_sent_to_login_and_live_streams_answer_401(client):
    page = client.simulate_get("/ui/namespaces/team/workloads")
    assert page.status_code == 303 and page.headers["Location"].endswith("/ui/login")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert client.simulate_get("/ui/live/pods/team").status_code == 401


def test_session_cookie_is_protected_and_a_bad_token_is_refused(client):
    page = client.simulate_get("/ui/login")
    nonce = page.cookies[sessions.LOGIN_COOKIE].value
    headers = {"Cookie": f"{sessions.LOGIN_COOKIE}={nonce}",
               "Content-Type": "application/x-www-form-urlencoded"}
    refused = client.simulate_post("/ui/login", headers=headers,
                                   body=f"csrf={nonce}&token=wrong-token")
    assert refused.status_code == 401 and "did not accept" in refused.text
    assert sessions.SESSION_COOKIE not in refused.cookies
    accepted = client.simulate_post("/ui/login", headers=headers,
                                    body=f"csrf={nonce}&token=admin-token")
    assert accepted.status_code == 303
    sealed = accepted.cookies[sessions.SESSION_COOKIE]
    assert sealed.http_only and sealed.secure and sealed.same_site == "Strict"
    assert sealed.path == "/ui"
    assert "admin-token" not in sealed.value    # sealed, never stored in clear


def test_login_with_a_wrong_csrf_token_is_403(client):
    client.simulate_get("/ui/login")
    result = client.simulate_post(
        "/ui/login", headers={"Cookie": f"{sessions.LOGIN_COOKIE}=aaaa",
                              "Content-Type": "application/x-www-form-urlencoded"},
        body="csrf=bbbb&token=admin-token")
    assert result.status_code == 403 and "CSRF" in result.text


def test_workloads_are_shown_with_their_pods_and_nodes_and_namespaces(client):
    cookie, _ = login(client, "admin-token")
    workloads = client.simulate_get("/ui/namespaces/team/workloads", headers=cookie)
    assert workloads.status_code == 200 and ">web</a>" in workloads.text
    detail = client.simulate_get("/ui/namespaces/team/deployments/web", headers=cookie)
    assert detail.status_code == 200 and 'id="scale"' in detail.text
    assert "selector=app%3Dweb" in detail.text
    assert client.simulate_get("/ui/namespaces", headers=cookie).status_code == 200
    assert client.simulate_get("/ui/nodes", headers=cookie).status_code == 200
    assert client.simulate_get("/ui/fragment/pods/team", headers=cookie,
                               params={"selector": "app=web"}).status_code == 200


def test_a_user_without_rights_sees_403_and_no_data(client):
    cookie, _ = login(client, "bob-token")
    page = client.simulate_get("/ui/namespaces/team/workloads", headers=cookie)
    assert page.status_code == 403 and "forbidden" in page.text.lower()
    assert ">web</a>" not in page.text
    assert client.simulate_get("/ui/live/pods/team", headers=cookie).status_code == 403
    assert client.simulate_get("/ui/live/logs/team/web-1", headers=cookie).status_code == 403
    assert client.simulate_get("/ui/yaml/team/deployments/web", headers=cookie).status_code == 403
    assert "client certificate" not in client.simulate_get("/ui/login").text


def test_scale_is_decided_by_rbac_as_the_user(client):
    viewer, csrf = login(client, "alice-token")
    assert client.simulate_get("/ui/namespaces/team/deployments/web",
                               headers=viewer).status_code == 200
    refused = post(client, "/ui/act/team/deployments/web/scale", viewer, csrf=csrf, replicas=3)
    assert refused.status_code == 403
    admin, csrf = login(client, "admin-token")
    done = post(client, "/ui/act/team/deployments/web/scale", admin, csrf=csrf, replicas=3)
    assert done.status_code == 303
    assert client.simulate_get(f"{DEPLOYMENTS}/web", headers=ADMIN).json["spec"]["replicas"] == 3


def test_a_post_without_the_csrf_token_is_refused_and_the_server_keeps_serving(client):
    cookie, csrf = login(client, "admin-token")
    for bad in ({}, {"csrf": "x" + csrf}):
        result = post(client, "/ui/act/team/deployments/web/scale", cookie, replicas=5, **bad)
        assert result.status_code == 403 and "CSRF" in result.text
    assert client.simulate_get(f"{DEPLOYMENTS}/web", headers=ADMIN).json["spec"]["replicas"] == 1
    assert client.simulate_get("/ui/namespaces", headers=cookie).status_code == 200


def test_restart_stamps_the_template(client):
    cookie, csrf = login(client, "admin-token")
    assert post(client, "/ui/act/team/deployments/web/restart", cookie,
                csrf=csrf).status_code == 303
    annotations = client.simulate_get(f"{DEPLOYMENTS}/web", headers=ADMIN).json[
        "spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations


def test_an_invalid_edit_shows_the_422_causes_inline(client):
    cookie, csrf = login(client, "admin-token")
    page = client.simulate_get("/ui/yaml/team/deployments/web", headers=cookie)
    assert page.status_code == 200 and "replicas: 1" in page.text
    text = client.simulate_get(f"{DEPLOYMENTS}/web", headers=ADMIN).json
    import yaml
    text["spec"]["replicas"] = -2
    result = post(client, "/ui/yaml/team/deployments/web", cookie, csrf=csrf,
                  yaml=yaml.safe_dump(text))
    assert result.status_code == 422
    assert 'id="causes"' in result.text and "spec.replicas" in result.text
    assert "replicas: -2" in result.text       # the user's text is kept for fixing
    text["spec"]["replicas"] = 2
    saved = post(client, "/ui/yaml/team/deployments/web", cookie, csrf=csrf,
                 yaml=yaml.safe_dump(text))
    assert saved.status_code == 303


@pytest.mark.parametrize("body, code, words", [
    ("a: " + "x" * (1024 * 1024 + 10), 413, "larger than"),
    ("a: " + "[" * 5000 + "]" * 5000, 400, "nest"),
    ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", 400, "alias"),
    ("- just\n- a list\n", 400, "one object"),
])
def test_hostile_yaml_is_a_4xx_with_a_reason_and_the_server_keeps_serving(
        client, body, code, words):
    cookie, csrf = login(client, "admin-token")
    result = post(client, "/ui/yaml/team/deployments/web", cookie, csrf=csrf, yaml=body)
    assert result.status_code == code
    assert words in result.text.lower()
    assert client.simulate_get("/ui/namespaces/team/deployments/web",
                               headers=cookie).status_code == 200


def test_object_fields_are_escaped(client):
    cookie, _ = login(client, "admin-token")
    assert client.simulate_post("/api/v1/namespaces/team/events", headers=ADMIN, json={
        "metadata": {"name": "evil"}, "reason": "<b>Bold</b>",
        "message": "<script>alert(1)</script>",
        "involvedObject": {"kind": "Pod", "name": "x", "namespace": "team"}}).status_code == 201
    page = client.simulate_get("/ui/namespaces/team/events", headers=cookie)
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text and "<b>Bold" not in page.text


def test_a_forged_or_expired_session_goes_back_to_login(client):
    forged = {"Cookie": f"{sessions.SESSION_COOKIE}=gAAAAAforged"}
    assert client.simulate_get("/ui/namespaces", headers=forged).status_code == 303
    now = [1000.0]
    box = sessions.SessionBox(sessions.key_from_secret(b"k"), clock=lambda: now[0], lifetime=60)
    sealed = box.seal(box.new("t", "u"))
    assert box.open(sealed).token == "t"
    now[0] += 61
    assert box.open(sealed) is None
    other = sessions.SessionBox(sessions.key_from_secret(b"other"), clock=lambda: now[0])
    assert other.open(sealed) is None


def test_logout_clears_the_session(client):
    cookie, csrf = login(client, "admin-token")
    result = post(client, "/ui/logout", cookie, csrf=csrf)
    assert result.status_code == 303
    assert result.cookies[sessions.SESSION_COOKIE].value == ""


def test_the_pod_stream_says_ready_then_a_change_per_event(client):
    import falcon.testing as ft
    cookie, _ = login(client, "admin-token")
    environ = ft.create_environ("/ui/live/pods/team", query_string="selector=app%3Dweb",
                                headers=cookie)
    started = []
    body = client.app(environ, lambda status, headers: started.append(status))
    chunks = iter(body)
    try:
        assert started[0].startswith("200")
        assert next(chunks).startswith(b"event: ready")
        assert client.simulate_post("/api/v1/namespaces/team/pods", headers=ADMIN, json={
            "metadata": {"name": "web-1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}).status_code == 201
        event = next(chunk for chunk in chunks if chunk)
        assert event == b"event: change\ndata: ADDED web-1\n\n"
    finally:
        body.close()


def test_undo_picks_the_revision_before_the_current_one():
    from control.ui.actions import previous_template
    deploy = {"metadata": {"uid": "u1"}}

    def rs(revision, image, uid="u1"):
        return {"metadata": {"ownerReferences": [{"uid": uid}],
                             "annotations": {"deployment.kubernetes.io/revision": revision}},
                "spec": {"template": {"metadata": {"labels": {"app": "a",
                                                              "pod-template-hash": "h"}},
                                      "spec": {"containers": [{"image": image}]}}}}
    template = previous_template(deploy, [rs("3", "v3"), rs("10", "v10"), rs("2", "v2"),
                                          rs("9", "other", uid="u2")])
    assert template["spec"]["containers"][0]["image"] == "v3"
    assert template["metadata"]["labels"] == {"app": "a"}
    assert previous_template(deploy, [rs("1", "v1")]) is None


def test_a_client_certificate_logs_in_without_a_token(client):
    from control.api.auth import authn
    peer = {authn.PEER_CERT_KEY: {"subject": ((("commonName", "carol"),),
                                              (("organizationName", "system:masters"),))}}
    page = client.simulate_get("/ui/login", extras=peer)
    assert "client certificate" in page.text
    nonce = page.cookies[sessions.LOGIN_COOKIE].value
    result = client.simulate_post("/ui/login", extras=peer, body=f"csrf={nonce}&token=",
                                  headers={"Cookie": f"{sessions.LOGIN_COOKIE}={nonce}",
                                           "Content-Type": "application/x-www-form-urlencoded"})
    assert result.status_code == 303
    cookie = {"Cookie": f"{sessions.SESSION_COOKIE}="
                        f"{result.cookies[sessions.SESSION_COOKIE].value}"}
    assert ">web</a>" in client.simulate_get("/ui/namespaces/team/workloads", headers=cookie,
                                             extras=peer).text
    # The cookie alone, from a connection without the certificate, is anonymous: refused.
    assert client.simulate_get("/ui/namespaces/team/workloads",
                               headers=cookie).status_code in (401, 403)


@pytest.mark.parametrize("form, words", [
    ({"token": "x" * 5000}, "at most"),
    ({"token": "a\u00e9b"}, "printable ascii"),
    ({**{f"f{i}": "v" for i in range(200)}}, "could not be read"),
])
def test_a_hostile_login_form_is_a_400_and_the_server_keeps_serving(client, form, words):
    page = client.simulate_get("/ui/login")
    nonce = page.cookies[sessions.LOGIN_COOKIE].value
    result = post(client, "/ui/login", {"Cookie": f"{sessions.LOGIN_COOKIE}={nonce}"},
                  csrf=nonce, **form)
    assert result.status_code == 400 and words in result.text.lower()
    assert client.simulate_get("/ui/login").status_code == 200


def test_an_internal_error_is_a_500_page_without_a_traceback(client, monkeypatch):
    from control.ui import views
    cookie, _ = login(client, "admin-token")

    def broken(*args, **kwargs):
        raise RuntimeError("secret detail")
    monkeypatch.setattr(views.Namespaces, "values", broken)
    page = client.simulate_get("/ui/namespaces", headers=cookie)
    assert page.status_code == 500 and "RuntimeError" in page.text
    assert "secret detail" not in page.text and "Traceback" not in page.text
    assert page.headers["X-Frame-Options"] == "DENY"


def test_only_known_notices_are_shown_and_the_fragment_carries_the_owner_status(client):
    cookie, _ = login(client, "admin-token")
    spoof = client.simulate_get("/ui/namespaces/team/deployments/web", headers=cookie,
                                params={"notice": "call 555-0100 for support"})
    assert "555-0100" not in spoof.text
    known = client.simulate_get("/ui/namespaces/team/deployments/web", headers=cookie,
                                params={"notice": "scaled"})
    assert 'id="notice"' in known.text
    fragment = client.simulate_get("/ui/fragment/pods/team", headers=cookie,
                                   params={"selector": "app=web", "owner": "deployments/web"})
    assert 'id="workload-status">0/1<' in fragment.text


def test_selectors_quantities_and_statuses_are_shown_as_kubectl_shows_them():
    from control.ui import kinds, views
    assert kinds.selector_string({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [
        {"key": "t", "operator": "In", "values": ["x", "y"]},
        {"key": "u", "operator": "NotIn", "values": ["z"]},
        {"key": "v", "operator": "Exists"}, {"key": "w", "operator": "DoesNotExist"}]}) == \
        "a=1,b=2,t in (x,y),u notin (z),v,!w"
    assert kinds.path("pods", "a b", "p/q", "log") == "/api/v1/namespaces/a%20b/pods/p%2Fq/log"
    assert views.cpu_text("1999359u") == "2000m" and views.memory_text("2Gi") == "2048Mi"
    assert views.cpu_text("") == "" and views.memory_text("junk") == "junk"
    assert kinds.workload_status("daemonsets", {"status": {"numberReady": 2,
                                                           "desiredNumberScheduled": 3}}) == "2/3"
    assert kinds.workload_status("jobs", {"spec": {"completions": 2},
                                          "status": {"succeeded": 1}}) == "1/2 succeeded"
