"""An acknowledged-write ledger for fault tests on simulated hosts (tests/support/hosts.py).

A thread writes numbered ConfigMaps through a bare-metal cluster's API servers and
records each write's outcome; afterwards every write the API acknowledged (201) must
be found. Used by tests/e2e/test_baremetal_create.py's fault sequence.
"""

import http.client
import json
import os
import ssl
import threading


class Ledger:
    """A writer thread: one ConfigMap after another through the API servers, each write's
    outcome recorded, so that no acknowledged (201) write may be missing afterwards.

    A write goes to the next API server in turn; one that cannot be connected to (its
    host is down: nothing was sent) hands the write to the next. Anything after the
    request was sent and not answered 201 counts as failed (it may or may not have
    landed, as for any client).
    """

    def __init__(self, bed, home, hosts, cluster="bm"):
        self.bed, self.hosts = bed, list(hosts)
        self.acknowledged, self.failed = [], []
        self.done = threading.Event()
        pki = os.path.join(home, "clusters", cluster, "pki")
        self.context = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.context.load_cert_chain(os.path.join(pki, "admin.crt"),
                                     os.path.join(pki, "admin.key"))
        self.thread = threading.Thread(target=self._run, name="ledger", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.done.set()
        self.thread.join(60)

    def _connect(self, host):
        raw = self.bed.sock(host.address, 6443, timeout=3.0)
        try:
            raw.settimeout(10.0)
            return self.context.wrap_socket(raw, server_hostname=host.address)
        except BaseException:
            raw.close()
            raise

    def _write(self, number):
        body = json.dumps({"metadata": {"name": f"ledger-{number}", "labels": {"ledger": "1"}},
                           "data": {"n": str(number)}})
        hosts = self.hosts[number % len(self.hosts):] + self.hosts[:number % len(self.hosts)]
        for host in hosts:
            try:
                sock = self._connect(host)
            except OSError:
                continue            # that API server is down: try the next one
            conn = http.client.HTTPConnection(host.address, 6443)
            conn.sock = sock
            try:
                conn.request("POST", "/api/v1/namespaces/default/configmaps", body,
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                return response.status
            except OSError as exc:
                return repr(exc)
            finally:
                conn.close()
        return "no API server answered"

    def _run(self):
        number = 0
        while not self.done.is_set():
            number += 1
            outcome = self._write(number)
            if outcome == 201:
                self.acknowledged.append(f"ledger-{number}")
            else:
                self.failed.append((f"ledger-{number}", outcome))
            self.done.wait(0.05)
