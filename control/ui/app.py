"""Serve the web dashboard under /ui/ beside the API (``mount(api_app, ...)``).

The dashboard is its own small falcon app. Its pages are rendered on the server
(Jinja2, autoescaped) and a few lines of our own JavaScript (static/ui.js) follow
watches through server-sent events. It never reads the store: each page is made
of subrequests through the API app as the logged-in user (backend.py), so the API
server's authentication, RBAC and admission decide what a user sees and may do.
"""

import logging
import urllib.parse

import falcon
import jinja2

from control.ui import actions, live, sessions, views
from control.ui.backend import ApiCaller
from control.ui.failure import UiError

log = logging.getLogger("steer.ui")

PREFIX = "/ui"
#: A form (the YAML editor's is the largest) may carry at most this many bytes.
MAX_FORM_BYTES = 1024 * 1024
#: Anyone may fetch these: the login page and the static files.
_OPEN_PATHS = ("/ui/login", "/ui/static/")
SECURITY_HEADERS = {
    # Scripts and styles only from our own files: no inline script can run, even if
    # some object field slipped through escaping.
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self'; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Templates:
    """Render the package's templates, every value HTML-escaped."""

    def __init__(self):
        self.env = jinja2.Environment(loader=jinja2.PackageLoader("control.ui", "templates"),
                                      autoescape=True, undefined=jinja2.ChainableUndefined)
        self.env.filters["q"] = lambda text: urllib.parse.quote(str(text), safe="")
        self.env.filters["cpu"] = views.cpu_text
        self.env.filters["memory"] = views.memory_text

    def render(self, resp, template, code=200, **values):
        resp.status = falcon.code_to_http_status(code)
        resp.content_type = "text/html; charset=utf-8"
        resp.text = self.env.get_template(template).render(**values)


class SessionGate:
    """Load the session; send strangers to the login page; check every POST's CSRF token."""

    def __init__(self, box):
        self.box = box

    def process_request(self, req, resp):
        req.context.session = self.box.open(req.cookies.get(sessions.SESSION_COOKIE))
        req.context.form = read_form(req) if req.method == "POST" else {}
        if any(req.path == p or req.path.startswith(p) for p in _OPEN_PATHS):
            return
        session = req.context.session
        if session is None:
            if req.method == "GET" and "/live/" not in req.path and "/fragment/" not in req.path:
                raise falcon.HTTPSeeOther(f"{PREFIX}/login")
            raise UiError(401, "your session has ended: log in again")
        if req.method == "POST" and not sessions.same_secret(
                session.csrf, req.context.form.get("csrf")):
            raise UiError(403, "the form's CSRF token is missing or wrong: reload the page "
                               "and try again", "Bad CSRF token")
        req.context.api = ApiCaller(req.context.api_app, req.env, session)

    def process_response(self, req, resp, resource, req_succeeded):
        for name, value in SECURITY_HEADERS.items():
            resp.set_header(name, value)


def read_form(req):
    """Read a urlencoded form of at most MAX_FORM_BYTES (413 above that)."""
    raw = req.bounded_stream.read(MAX_FORM_BYTES + 1)
    if len(raw) > MAX_FORM_BYTES:
        raise UiError(413, f"the form is larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        pairs = urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True,
                                       max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UiError(400, f"the form could not be read: {exc}") from None
    return dict(pairs)


class _ApiAppOnContext:
    """Hand the API app to the resources through req.context."""

    def __init__(self, api_app):
        self.api_app = api_app

    def process_request(self, req, resp):
        req.context.api_app = self.api_app


def build(api_app, box):
    """Return the dashboard's falcon app; ``box`` seals the sessions."""
    templates = Templates()
    app = falcon.App(middleware=[_ApiAppOnContext(api_app), SessionGate(box)])
    app.req_options.strip_url_path_trailing_slash = True

    def ui_error(req, resp, exc, params):
        templates.render(resp, "error.html", exc.code, title=exc.title, message=exc.message,
                         session=req.context.get("session"))
    def internal_error(req, resp, exc, params):
        # Falcon's own errors and redirects keep their more specific default handlers.
        log.exception("event=dashboard_internal_error method=%s path=%s", req.method,
                      req.path[:200])
        ui_error(req, resp, UiError(500, "an internal error occurred; the API server's log "
                                         f"has the details ({type(exc).__name__})"), params)
    app.add_error_handler(Exception, internal_error)
    app.add_error_handler(UiError, ui_error)
    app.add_static_route(f"{PREFIX}/static", views.STATIC_DIR)
    views.add_routes(app, templates, box)
    actions.add_routes(app, templates)
    live.add_routes(app, templates)
    return app


class Mounted:
    """WSGI app: /ui/ to the dashboard, everything else to the API (attributes too)."""

    def __init__(self, api_app, ui_app):
        self.api_app = api_app
        self.ui_app = ui_app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == PREFIX or path.startswith(PREFIX + "/"):
            return self.ui_app(environ, start_response)
        return self.api_app(environ, start_response)

    def __getattr__(self, name):
        return getattr(self.api_app, name)


def mount(api_app, signing_key_file=None):
    """Serve the dashboard beside ``api_app``; sessions sealed under the signing key."""
    box = sessions.SessionBox(sessions.load_key(signing_key_file))
    return Mounted(api_app, build(api_app, box))
