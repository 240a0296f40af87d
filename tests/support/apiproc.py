"""Run a real store cluster and a real `steer-apiserver` for API integration tests.

``LocalApiServer`` starts both on free loopback ports, the API server with TLS by
default: a CA of its own (cli/pki.py) signs its serving certificate and an admin
client certificate (CN=admin, O=system:masters). Tests reach it with
``rest_client()`` (or ``client_kwargs``), ``kubeconfig`` (kubectl and the official
Python client) and ``ca_file``/``cert_file``/``key_file``; ``tls=False`` serves
plain HTTP instead. Every process it started is stopped by pid.
"""

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import yaml

from cli.local_store import LocalStoreCluster, free_ports
from cli.pki import CertificateAuthority, ensure_key_pair
from control.client import RestClient
from tests.support import children
from tests.support.kubectl import run_kubectl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAFT_ARGS = ["--election-min", "1.0", "--election-max", "2.0"]
#: The identities of Kubernetes' components (CN, O), as kubeadm issues them.
IDENTITIES = {
    "admin": ("admin", ("system:masters",)),
    "control.scheduler.main": ("system:kube-scheduler", ()),
    "control.controllers.manager": ("system:kube-controller-manager", ()),
    "agent.proxy": ("system:kube-proxy", ()),
}


def write_kubeconfig(path, server, ca_file=None, cert_file=None, key_file=None, token=None,
                     namespace=None):
    """Write a one-context kubeconfig (0600) naming files, as kubectl and clients read it."""
    user = {k: v for k, v in (("client-certificate", cert_file), ("client-key", key_file),
                              ("token", token)) if v}
    cluster = {"server": server, **({"certificate-authority": ca_file} if ca_file else {})}
    context = {"cluster": "steersman", "user": "user",
               **({"namespace": namespace} if namespace else {})}
    document = {"apiVersion": "v1", "kind": "Config", "current-context": "steersman",
                "clusters": [{"name": "steersman", "cluster": cluster}],
                "users": [{"name": "user", "user": user}],
                "contexts": [{"name": "steersman", "context": context}]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(document, handle, sort_keys=False)
    return path


class LocalApiServer:
    """A 3-node store and one API server (gunicorn, one worker) in ``base_dir``."""

    def __init__(self, base_dir, store_nodes=3, workers=1, threads=16, store=None,
                 extra_args=(), tls=True, ca=None):
        self.base_dir = str(base_dir)
        os.makedirs(self.base_dir, exist_ok=True)
        # A second server can share the first one's store (``store=first.store``).
        self.owns_store = store is None
        self.store = store or LocalStoreCluster(store_nodes, os.path.join(self.base_dir, "store"),
                                                extra_args=RAFT_ARGS)
        self.port = free_ports(1)[0]
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        self.extra_args = list(extra_args)     # more steer-apiserver flags
        self.kubeconfig = os.path.join(self.base_dir, "kubeconfig")
        self.log_path = os.path.join(self.base_dir, "apiserver.log")
        self.pki_dir = os.path.join(self.base_dir, "pki")
        # The ServiceAccount token signing key (TokenRequest works), as `steer up` gives one.
        self.sa_key_file = os.path.join(self.base_dir, "sa.key")
        ensure_key_pair(self.sa_key_file, os.path.join(self.base_dir, "sa.pub"))
        self.ca = self.ca_file = self.cert_file = self.key_file = self.kubelet_client = None
        self._context = None
        if tls:
            # Two servers on one store may share a CA (``ca=first.ca``): one client fits both.
            self.ca = ca or CertificateAuthority.create(os.path.join(self.pki_dir, "ca"))
            self.ca_file = self.ca.cert_path
            self.serving = self.ca.issue(self.pki_dir, "apiserver", "kube-apiserver",
                                         dns_names=["localhost"], ip_addresses=["127.0.0.1"],
                                         server=True)
            admin = self.issue_client("admin", *IDENTITIES["admin"])
            self.cert_file, self.key_file = admin.cert, admin.key
            # What the server presents to the agents' ports (pods/log), as `steer up` does.
            self.kubelet_client = self.issue_client(
                "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"])
        self.proc = None

    # -- credentials ------------------------------------------------------------------
    def issue_client(self, name, common_name, organizations=()):
        """Issue a client certificate (CN user, O groups) from this server's CA."""
        return self.ca.issue(self.pki_dir, name, common_name, organizations, client=True)

    def agent_tls_args(self, node_name, ip="127.0.0.1"):
        """steer-agent flags serving TLS as ``node_name`` with a certificate of this CA.

        CN system:node:<node>, SANs the node name and ``ip``; callers must present a
        certificate of this CA (the server's kubelet client). Plain HTTP without a CA.
        """
        if not self.tls:
            return ["--insecure-plain-http"]
        serving = self.ca.issue(self.pki_dir, f"{node_name}-serving", f"system:node:{node_name}",
                                dns_names=[node_name], ip_addresses=[ip], server=True)
        return ["--tls-cert-file", serving.cert, "--tls-private-key-file", serving.key,
                "--client-ca-file", self.ca_file]

    @property
    def client_kwargs(self):
        """RestClient keywords that reach this server as the admin."""
        if not self.tls:
            return {}
        return {"ca_file": self.ca_file, "cert_file": self.cert_file, "key_file": self.key_file}

    def rest_client(self, **kwargs):
        """A RestClient of this server, as the admin (``kwargs``: timeout, retries, ...)."""
        return RestClient(self.url, **self.client_kwargs, **kwargs)

    def kubeconfig_for(self, name, common_name=None, organizations=()):
        """Write ``<name>.kubeconfig`` for a client certificate CN=common_name; return its path.

        Without ``common_name`` it is the admin's kubeconfig under another name.
        """
        cert, key = self.cert_file, self.key_file
        if self.tls and common_name:
            issued = self.issue_client(name, common_name, organizations)
            cert, key = issued.cert, issued.key
        return write_kubeconfig(os.path.join(self.base_dir, f"{name}.kubeconfig"), self.url,
                                self.ca_file, cert, key)

    def ssl_context(self):
        """A client SSLContext trusting this server's CA, as the admin (None over plain HTTP)."""
        if not self.tls:
            return None
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.ca_file)
            self._context.load_cert_chain(self.cert_file, self.key_file)
        return self._context

    def http_connection(self, timeout=30):
        """An ``http.client`` connection to this server (HTTPS as the admin, or HTTP)."""
        if not self.tls:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.ssl_context())

    def open_socket(self, timeout=30):
        """A connected socket to this server (TLS-wrapped as the admin, or plain)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if not self.tls:
            return sock
        return self.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")

    def urlopen(self, request, timeout=10):
        """``urllib.request.urlopen`` against this server, as the admin."""
        return urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context())

    # -- the processes ----------------------------------------------------------------
    def start(self, timeout=60):
        if self.owns_store:
            self.store.start_all()
            self.store.wait_ready(timeout)
        env = {**os.environ, "PYTHONPATH": ROOT}
        tls_args = (["--tls-cert-file", self.serving.cert,
                     "--tls-private-key-file", self.serving.key,
                     "--client-ca-file", self.ca_file,
                     "--kubelet-certificate-authority", self.ca_file,
                     "--kubelet-client-certificate", self.kubelet_client.cert,
                     "--kubelet-client-key", self.kubelet_client.key] if self.tls
                    else ["--insecure-plain-http"])
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            # The port was free when picked; another process (any outgoing connection's
            # ephemeral port) may take it before gunicorn binds: then pick another.
            logged = os.path.getsize(self.log_path) if os.path.exists(self.log_path) else 0
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "control.api.server",
                     "--bind", f"127.0.0.1:{self.port}",
                     "--store-endpoints", ",".join(self.store.endpoints),
                     "--workers", str(self.workers), "--threads", str(self.threads),
                     *tls_args, *self.store.apiserver_tls_flags(),
                     "--service-account-signing-key-file", self.sa_key_file, *self.extra_args],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    cwd=ROOT)
            if self._wait_ready(deadline):
                break
            with open(self.log_path, "rb") as f:
                f.seek(logged)
                port_taken = b"Address already in use" in f.read()
            if not port_taken or attempt == 2:
                raise RuntimeError(f"steer-apiserver did not become ready:\n{self.logs()}")
            children.stop(self.proc)
            self.port = free_ports(1)[0]
            self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        write_kubeconfig(self.kubeconfig, self.url, self.ca_file, self.cert_file, self.key_file,
                         token=None if self.tls else "dev-token")
        return self

    def _wait_ready(self, deadline):
        """True once /readyz answers; False if the process exited or the deadline passed."""
        while True:
            try:
                self.urlopen(self.url + "/readyz", timeout=2)
                return True
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    return False
                time.sleep(0.1)

    def stop(self):
        children.stop(self.proc)
        if self.owns_store:
            self.store.stop_all()

    def steer_argv(self, *args):
        """The command line of `steer ARGS` against this server (for Popen), as the admin."""
        return [sys.executable, "-m", "cli.main", "--kubeconfig", self.kubeconfig, *args]

    def steer(self, *args, input=None, timeout=60, check=True):
        """Run `steer ARGS` against this server; return the CompletedProcess (text)."""
        result = subprocess.run(self.steer_argv(*args), input=input, capture_output=True,
                                text=True, timeout=timeout, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": ROOT})
        if check and result.returncode != 0:
            raise AssertionError(f"steer {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def kubectl(self, *args, input=None, timeout=60, check=True):
        """Run the real kubectl against this server (kubectl-marked tests only)."""
        return run_kubectl(self.kubeconfig, *args, input=input, timeout=timeout, check=check)

    def logs(self):
        text = ""
        if os.path.exists(self.log_path):
            with open(self.log_path, errors="replace") as f:
                text = f.read()[-20000:]
        return f"--- apiserver ---\n{text}\n{self.store.logs()}"


class ComponentProcesses:
    """Run copies of a control-plane process (scheduler, controller manager) by identity.

    Each copy gets short leader-election timings so handover tests stay quick,
    logs to ``<base_dir>/<identity>.log``, and is stopped or killed by its pid.
    """

    def __init__(self, server, base_dir, module, extra_args=()):
        self.server, self.base_dir, self.module = server, str(base_dir), module
        self.extra_args = list(extra_args)
        self.procs = {}
        self._kubeconfig = None

    def start(self, identity):
        with open(os.path.join(self.base_dir, f"{identity}.log"), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.module, "--kubeconfig", self.kubeconfig(),
                 "--identity", identity, "--lease-duration", "3", "--renew-deadline", "2",
                 "--retry-period", "0.5", "--log-level", "DEBUG", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": ROOT})
        self.procs[identity] = proc
        return proc

    def kubeconfig(self):
        """This component's kubeconfig: its own client certificate (the admin's if unknown)."""
        if self._kubeconfig is None:
            name = self.module.rsplit(".", 2)[-2]
            self._kubeconfig = self.server.kubeconfig_for(name, *IDENTITIES.get(self.module, ()))
        return self._kubeconfig

    def kill(self, identity):
        proc = self.procs[identity]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self):
        for proc in self.procs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()

    def logs(self):
        text = []
        for identity in self.procs:
            with open(os.path.join(self.base_dir, f"{identity}.log"), errors="replace") as f:
                text.append(f"--- {identity} ---\n{f.read()[-8000:]}")
        return "\n".join(text)


def eventually(predicate, timeout=30.0, message="condition", logs=None):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}\n{logs() if logs else ''}")
        time.sleep(0.05)
