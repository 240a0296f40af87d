"""Read a Kubernetes watch: newline-delimited JSON events from a streaming response.

``RestClient.watch`` builds a ``Watch``; iterating it sends the request on its own
connection (a watch holds its connection for minutes, so it cannot share the
keep-alive one) and yields (type, object) pairs until the server ends the stream.
"""

import http.client
import json
import socket
import threading

from control.client import errors


class Watch:
    """One watch request: iterate for (type, object); ``close()`` from any thread to stop."""

    def __init__(self, conn, url, headers):
        self._conn, self._url, self._headers = conn, url, headers
        self._lock = threading.Lock()
        self._sock = None
        self._response = None
        self._closed = False

    def open(self):
        """Send the request and wait for the response headers; raise ApiException on errors."""
        if self._response is not None:
            return self
        with self._lock:
            if self._closed:
                return self
            try:
                self._conn.connect()
            except OSError as exc:
                self._conn.close()
                raise errors.ConnectionFailed(f"watch {self._url}: {exc}") from exc
            self._sock = self._conn.sock
        try:
            self._conn.request("GET", self._url, headers=self._headers)
            response = self._conn.getresponse()
        except (OSError, http.client.HTTPException, AttributeError) as exc:
            # AttributeError: close() from another thread dropped the socket mid-call.
            closed_by_caller = self._closed
            self.close()
            if closed_by_caller:
                return self
            raise errors.ConnectionFailed(f"watch {self._url}: {exc}") from exc
        if response.status >= 400:
            data = response.read()
            self.close()
            raise errors.from_status(response.status, data,
                                     {k.lower(): v for k, v in response.getheaders()})
        self._response = response
        return self

    def __iter__(self):
        try:
            self.open()
            while not self._closed:
                try:
                    line = self._response.readline()
                except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
                    if self._closed:
                        return
                    raise errors.ConnectionFailed(f"watch stream broken: {exc}") from exc
                if not line:
                    return
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    raise errors.ConnectionFailed(f"watch stream garbled: {line[:200]!r}") from exc
                yield event.get("type"), event.get("object") or {}
        finally:
            self.close()

    def close(self):
        """Stop the watch; a thread blocked reading (or opening) it wakes and stops."""
        with self._lock:
            first, self._closed = not self._closed, True
        if first and self._sock is not None:
            try:
                # shutdown() (unlike close()) wakes a thread blocked in recv() on the socket.
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._response is not None:
            self._response.close()
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
