"""Call the API server's own WSGI app in-process, as the dashboard's user.

Every read and write the dashboard makes is a subrequest through the whole API
stack (audit, limits, authentication, RBAC, admission, validation) with the user's
bearer token — or, for a certificate login, the user's TLS connection — so the
dashboard can never show or change more than the user could with kubectl.
"""

import io
import json
import urllib.parse
from dataclasses import dataclass

#: Keys of the browser's WSGI environ a subrequest keeps: the TLS peer (certificate
#: logins), the client address for the audit log, and the Host the guard checks.
_PEER_KEYS = ("gunicorn.socket", "steer.peer_cert")
_COPIED_KEYS = ("REMOTE_ADDR", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme",
                "wsgi.errors", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
                "SERVER_PROTOCOL")


@dataclass
class Answer:
    """A subrequest's status code and decoded JSON body (a Status on errors)."""

    code: int
    body: dict

    @property
    def ok(self):
        return 200 <= self.code < 300

    @property
    def message(self):
        return str(self.body.get("message") or f"the API server answered {self.code}")

    def causes(self):
        """Return (field, message) pairs of a 422's details, for inline display."""
        details = self.body.get("details") or {}
        return [(c.get("field", ""), c.get("message", "")) for c in details.get("causes") or []]


class ApiCaller:
    """Subrequests for one browser request, authenticated as ``session``'s user."""

    def __init__(self, api_app, outer_environ, session):
        self.api_app = api_app
        self.outer = outer_environ
        self.session = session

    def _environ(self, method, path, query, body, content_type, accept):
        environ = {k: self.outer[k] for k in _COPIED_KEYS if k in self.outer}
        environ.setdefault("SERVER_NAME", "localhost")
        environ.setdefault("SERVER_PORT", "443")
        environ.setdefault("wsgi.url_scheme", "https")
        environ.setdefault("wsgi.errors", io.StringIO())
        environ.update({
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
            "QUERY_STRING": urllib.parse.urlencode(query or {}),
            "wsgi.version": (1, 0), "wsgi.input": io.BytesIO(body or b""),
            "CONTENT_LENGTH": str(len(body or b"")), "HTTP_ACCEPT": accept,
            "HTTP_USER_AGENT": "steer-dashboard"})
        if body:
            environ["CONTENT_TYPE"] = content_type
        if self.session.uses_certificate:
            environ.update({k: self.outer[k] for k in _PEER_KEYS if k in self.outer})
        else:
            environ["HTTP_AUTHORIZATION"] = f"Bearer {self.session.token}"
        return environ

    def stream(self, method, path, query=None, body=None,
               content_type="application/json", accept="application/json"):
        """Start a subrequest; return (code, iterable of byte chunks). Close the iterable."""
        status = []

        def start_response(line, headers, exc_info=None):
            status.append(int(line.split()[0]))

        chunks = self.api_app(self._environ(method, path, query, body, content_type, accept),
                              start_response)
        iterator = iter(chunks)
        # WSGI lets an app call start_response at its first chunk (falcon calls it
        # before); only then wait for that chunk (a watch may send none for a while).
        first = b"" if status else next(iterator, b"")

        def body_chunks():
            try:
                if first:
                    yield first
                yield from iterator
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        return status[0], body_chunks()

    def call(self, method, path, query=None, body=None, content_type="application/json"):
        """Run a subrequest to completion and decode its JSON answer."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        code, chunks = self.stream(method, path, query, body, content_type)
        raw = b"".join(chunks)
        try:
            decoded = json.loads(raw) if raw else {}
        except ValueError:
            decoded = {"message": raw[:500].decode("utf-8", "replace")}
        return Answer(code, decoded if isinstance(decoded, dict) else {"items": decoded})

    def get(self, path, **query):
        return self.call("GET", path, query={k: v for k, v in query.items() if v is not None})
