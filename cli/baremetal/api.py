"""The admin's few REST calls to a bare-metal cluster's API server (drain, delete a Node).

As the admin (the cluster CA's admin certificate), to the first control host that
answers, through ``reach`` (cli/baremetal/reach.py) so the simulated hosts' LAN works
too. JSON in and out; a Kubernetes Status error becomes an ApiError with its message.
"""

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

API_PORT = 6443


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status


class AdminApi:
    def __init__(self, credentials, reach, control_hosts, port=API_PORT, timeout=10.0):
        self.credentials, self.reach, self.port, self.timeout = credentials, reach, port, timeout
        self.control_hosts = list(control_hosts)
        self._context = None

    def context(self):
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.credentials.ca_file)
            self._context.load_cert_chain(*self.credentials.admin_cert())
        return self._context

    def request(self, method, path, body=None, content_type="application/json", query=None):
        """Send one request to the first control host that answers; the decoded JSON."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        last = None
        for host in self.control_hosts:
            url = "https://%s:%d" % self.reach.address(host.address, self.port) + path
            req = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": content_type,
                                                  "Accept": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout,
                                            context=self.context()) as resp:
                    return json.loads(resp.read() or b"{}")
            except urllib.error.HTTPError as exc:
                try:
                    message = json.loads(exc.read()).get("message", exc.reason)
                except ValueError:
                    message = exc.reason
                raise ApiError(exc.code, message) from None
            except (urllib.error.URLError, OSError) as exc:
                last = exc          # that API server is down: try the next one
        raise OSError(f"no API server answers ({last})")

    def get(self, path, **query):
        return self.request("GET", path, query=query or None)

    def delete(self, path):
        return self.request("DELETE", path)

    def merge_patch(self, path, body):
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")
