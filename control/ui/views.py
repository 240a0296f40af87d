"""The dashboard's pages that read: login, namespaces, workloads, nodes, events, logs."""

import os
import secrets

import falcon

from control.api.auth import authn
from control.objects import quantity
from control.ui import kinds, sessions
from control.ui.backend import ApiCaller
from control.ui.failure import UiError

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
SELF_REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
NODE_METRICS = "/apis/metrics.k8s.io/v1beta1/nodes"


def cpu_text(text):
    """Show a CPU quantity in millicores as kubectl top does ("250m"); "" if absent."""
    try:
        return f"{quantity.milli_value(str(text))}m" if text else ""
    except ValueError:
        return str(text)


def memory_text(text):
    """Show a memory quantity in MiB as kubectl top does ("512Mi"); "" if absent."""
    try:
        return f"{quantity.value(str(text)) // (1024 * 1024)}Mi" if text else ""
    except ValueError:
        return str(text)


#: What a redirect after a write may say: only these texts, never one from the URL.
NOTICES = {"scaled": "scaled: the controller is creating or removing pods",
           "restarted": "restarted: the pods are being replaced",
           "undone": "rolled back to the previous revision",
           "saved": "saved"}


def notice_text(req):
    return NOTICES.get(req.get_param("notice") or "", "")


def answer_or_raise(answer):
    """Return the answer's body, or raise the API's refusal as the page's error."""
    if not answer.ok:
        raise UiError(answer.code, answer.message)
    return answer.body


def items(answer):
    return answer_or_raise(answer).get("items") or []


class Login:
    def __init__(self, templates, box):
        self.templates = templates
        self.box = box

    def on_get(self, req, resp):
        nonce = secrets.token_urlsafe(24)
        resp.append_header("Set-Cookie", sessions.cookie_header(sessions.LOGIN_COOKIE, nonce, 600))
        self.templates.render(resp, "login.html", csrf=nonce, error="", session=None,
                              certificate=authn.peer_certificate(req.env) is not None)

    def on_post(self, req, resp):
        form = req.context.form
        if not sessions.same_secret(req.cookies.get(sessions.LOGIN_COOKIE), form.get("csrf")):
            raise UiError(403, "the login form's CSRF token is missing or wrong: reload the "
                               "login page and try again", "Bad CSRF token")
        token = (form.get("token") or "").strip() or None
        if token is not None and (len(token) > sessions.MAX_TOKEN_BYTES
                                  or not token.isascii() or not token.isprintable()):
            raise UiError(400, "that is not a bearer token (printable ASCII, at most "
                               f"{sessions.MAX_TOKEN_BYTES} bytes)")
        trial = self.box.new(token)
        review = ApiCaller(req.context.api_app, req.env, trial).call(
            "POST", SELF_REVIEW, body={"apiVersion": "authentication.k8s.io/v1",
                                       "kind": "SelfSubjectReview"})
        status = review.body.get("status") if review.ok else None
        user = ((status if isinstance(status, dict) else {}).get("userInfo") or {}).get(
            "username", "")
        if not user or user == "system:anonymous":
            nonce = secrets.token_urlsafe(24)
            resp.append_header("Set-Cookie",
                               sessions.cookie_header(sessions.LOGIN_COOKIE, nonce, 600))
            return self.templates.render(
                resp, "login.html", 401, csrf=nonce, session=None, certificate=False,
                error="the API server did not accept these credentials")
        session = self.box.new(token, user)
        resp.append_header("Set-Cookie", sessions.cookie_header(
            sessions.SESSION_COOKIE, self.box.seal(session), self.box.lifetime))
        resp.append_header("Set-Cookie", sessions.cookie_header(sessions.LOGIN_COOKIE, "", 0))
        raise falcon.HTTPSeeOther("/ui/namespaces/default/workloads")


class Logout:
    def on_post(self, req, resp):
        resp.append_header("Set-Cookie", sessions.cookie_header(sessions.SESSION_COOKIE, "", 0))
        raise falcon.HTTPSeeOther("/ui/login")


class Index:
    def on_get(self, req, resp):
        raise falcon.HTTPSeeOther("/ui/namespaces/default/workloads")


class Page:
    """A read page: subclasses fill ``values`` from subrequests."""

    template = ""

    def __init__(self, templates):
        self.templates = templates

    def on_get(self, req, resp, **params):
        values = self.values(req.context.api, req, **params)
        self.templates.render(resp, self.template, session=req.context.session, **values)


class Namespaces(Page):
    template = "namespaces.html"

    def values(self, api, req):
        return {"namespaces": items(api.get("/api/v1/namespaces")), "ns": ""}


class Workloads(Page):
    template = "workloads.html"

    def values(self, api, req, ns):
        groups = []
        for plural in kinds.WORKLOADS:
            rows = [(o, kinds.workload_status(plural, o))
                    for o in items(api.get(kinds.path(plural, ns)))]
            groups.append((plural, kinds.KINDS[plural][1], rows))
        return {"ns": ns, "groups": groups}


def pods_of(api, ns, selector):
    return items(api.get(kinds.path("pods", ns), labelSelector=selector or None))


class Workload(Page):
    template = "workload.html"

    def values(self, api, req, ns, plural, name):
        if plural not in kinds.WORKLOADS:
                    raise UiError(404, f"the dashboard does not show {plural}")
        obj = answer_or_raise(api.get(kinds.path(plural, ns, name)))
        selector = kinds.selector_string((obj.get("spec") or {}).get("selector"))
        return {"ns": ns, "plural": plural, "kind": kinds.KINDS[plural][1], "obj": obj,
                "status": kinds.workload_status(plural, obj), "selector": selector,
                "pods": pods_of(api, ns, selector), "kinds": kinds,
                "notice": notice_text(req)}


class PodsFragment(Page):
    """The pod table alone, fetched again by ui.js when a watch event arrives."""

    template = "pods_table.html"

    def values(self, api, req, ns):
        status = ""
        plural, _, name = (req.get_param("owner") or "").partition("/")
        if plural in kinds.WORKLOADS and name:      # the owner's readiness, refreshed too
            status = kinds.workload_status(plural, answer_or_raise(
                api.get(kinds.path(plural, ns, name))))
        return {"ns": ns, "pods": pods_of(api, ns, req.get_param("selector")),
                "kinds": kinds, "status": status}


class Nodes(Page):
    template = "nodes.html"

    def values(self, api, req):
        usage = {}
        metrics = api.get(NODE_METRICS)
        if metrics.ok:      # metrics.k8s.io may be refused or unavailable: usage stays blank
            usage = {m["metadata"]["name"]: m.get("usage") or {}
                     for m in metrics.body.get("items") or []}
        return {"nodes": items(api.get("/api/v1/nodes")), "usage": usage, "ns": "",
                "metrics_error": "" if metrics.ok else metrics.message}


class Events(Page):
    template = "events.html"

    def values(self, api, req, ns):
        events = items(api.get(f"/api/v1/namespaces/{ns}/events"))
        events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
                    reverse=True)
        return {"ns": ns, "events": events[:500]}


class Logs(Page):
    template = "logs.html"

    def values(self, api, req, ns, name):
        pod = answer_or_raise(api.get(kinds.path("pods", ns, name)))
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        chosen = req.get_param("container") or (containers[0] if containers else "")
        return {"ns": ns, "pod": pod, "containers": containers, "container": chosen}


def add_routes(app, templates, box):
    app.add_route("/ui", Index())
    app.add_route("/ui/login", Login(templates, box))
    app.add_route("/ui/logout", Logout())
    app.add_route("/ui/namespaces", Namespaces(templates))
    app.add_route("/ui/nodes", Nodes(templates))
    app.add_route("/ui/namespaces/{ns}/workloads", Workloads(templates))
    app.add_route("/ui/namespaces/{ns}/events", Events(templates))
    app.add_route("/ui/fragment/pods/{ns}", PodsFragment(templates))
    app.add_route("/ui/logs/{ns}/{name}", Logs(templates))
    app.add_route("/ui/namespaces/{ns}/{plural}/{name}", Workload(templates))
