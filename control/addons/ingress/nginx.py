"""Run nginx under the controller: write files, check them, start it, reload it gracefully.

A new configuration is written beside the running one and checked with
``nginx -t`` first; only a configuration that passes replaces it, and the master
is told with SIGHUP (what ``nginx -s reload`` sends): it starts workers on the
new configuration and lets the old ones finish the requests they hold before
they exit, so a reload drops no connection. Nothing is written or reloaded when
the rendered text is the one running. TLS files are 0600 in a 0700 directory;
they are named by their content, so a file the running nginx uses never
changes, and files no configuration names any more are removed after a reload.
"""

import logging
import os
import signal
import subprocess

log = logging.getLogger(__name__)

CONF_NAME = "nginx.conf"


class ConfigRejected(Exception):
    """``nginx -t`` refused a rendered configuration; the running one is kept."""


class Nginx:
    """One nginx master process, its configuration file and its TLS directory."""

    def __init__(self, binary, run_dir, tls_dir, popen=subprocess.Popen, run=subprocess.run):
        self.binary, self.run_dir, self.tls_dir = binary, run_dir, tls_dir
        self.conf = os.path.join(run_dir, CONF_NAME)
        self._popen, self._run = popen, run
        self.process = None
        self.text = None          # the configuration nginx runs
        self.reloads = 0

    def prepare(self):
        # Workers (user nobody) write proxy buffers under it; secrets live in tls_dir only.
        os.makedirs(self.run_dir, mode=0o755, exist_ok=True)
        os.chmod(self.run_dir, 0o755)
        os.makedirs(self.tls_dir, mode=0o700, exist_ok=True)
        os.chmod(self.tls_dir, 0o700)

    def apply(self, rendered):
        """Make nginx run ``rendered``; return True if it changed. ConfigRejected if invalid."""
        if rendered.text == self.text and self.running():
            return False
        self.prepare()
        for name, data in rendered.files.items():
            self._write_secret(os.path.join(self.tls_dir, name), data)
        candidate = self.conf + ".new"
        with open(candidate, "w") as f:
            f.write(rendered.text)
        checked = self._run([self.binary, "-t", "-q", "-e", "stderr", "-c", candidate],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=60)
        if checked.returncode != 0:
            os.unlink(candidate)
            raise ConfigRejected((checked.stderr or checked.stdout).strip()[-2000:])
        os.replace(candidate, self.conf)
        if self.running():
            self.process.send_signal(signal.SIGHUP)
            self.reloads += 1
        else:
            self.process = self._popen([self.binary, "-e", "stderr", "-c", self.conf,
                                        "-g", "daemon off;"], stdin=subprocess.DEVNULL)
        self.text = rendered.text
        self._remove_unused(set(rendered.files))
        return True

    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=10.0):
        """Stop gracefully (SIGQUIT: finish requests), then for good after ``timeout``."""
        if not self.running():
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _write_secret(self, path, data):
        if os.path.exists(path):
            return
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)

    def _remove_unused(self, keep):
        for name in os.listdir(self.tls_dir):
            if name not in keep:
                try:
                    os.unlink(os.path.join(self.tls_dir, name))
                except OSError as exc:
                    log.warning("msg=cannot remove an unused TLS file %s: %s", name, exc)
