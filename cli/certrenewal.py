"""Re-issue a running local cluster's certificates before they expire (`steer up`'s supervisor).

`steer up` issues every component a certificate (cli/local_pki.py, cli/local_store.py).
While the cluster runs, the supervisor (cli/supervisor.py) calls ``Renewer.run``:
every ``interval`` it re-runs the same issuing, which replaces only certificates
with less than a third of their life left, in place. The components read them
again themselves, so nothing restarts:

- the API server re-reads its serving certificate, and the client certificates it
  presents to agents and the store, in the TLS handshake (control/api/tlsreload.py);
- the scheduler, controller manager and proxies re-read their kubeconfig's client
  certificate for each new connection (control/client/rest.py);
- the store members re-read their serving certificate when it changes or on SIGHUP
  (store/server.py);
- the agents renew their own by CSRs, signed by the controller manager with the
  cluster CA (agent/certrotation.py, control/controllers/csrsigning.py);
- the admin's ``$STEER_HOME/kubeconfig`` embeds its certificate: it is rewritten.

``--cert-lifetime 60s`` makes the leaf certificates short, to watch this happen.
"""

import argparse
import logging
import os
import re
import time

from cli import pki

log = logging.getLogger("steer.certrenewal")

#: Longest wait between two checks, in seconds.
MAX_INTERVAL = 300.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_lifetime(text):
    """Seconds from "90", "60s", "10m", "12h" or "365d" (argparse type); at least 30 s."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 60s, 10m, 12h or 365d")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 30:
        raise argparse.ArgumentTypeError(
            f"{text!r} is shorter than 30s: components could not renew in time")
    return seconds


def check_interval(lifetime):
    """Seconds between checks: a sixth of a short lifetime, at most MAX_INTERVAL."""
    return MAX_INTERVAL if not lifetime else max(1.0, min(MAX_INTERVAL, lifetime / 6))


def signing_flags(creds, lifetime):
    """The controller manager's flags to sign the agents' CSRs with the cluster CA."""
    flags = ["--cluster-signing-cert-file", creds.ca_file,
             "--cluster-signing-key-file", os.path.join(creds.dir, pki.CA_KEY)]
    if lifetime:
        flags += ["--cluster-signing-duration", f"{lifetime:g}s"]
    return flags


class Renewer:
    """Renew the certificates of the local cluster in ``home`` while it runs."""

    def __init__(self, home, clock=time.monotonic):
        self.home, self.clock = home, clock

    def _state(self):
        from cli.local_cluster import LocalCluster
        return LocalCluster(self.home).state

    def renew_once(self):
        """Re-issue what is near expiry; return the names re-issued."""
        from cli.cluster_cmd import credentials  # not at import: it imports the supervisor
        from cli.local_store import LocalStoreCluster
        state = self._state()
        if not state.get("apiServer"):
            return []
        creds = credentials(self.home, state)
        issued = list(creds.issued)
        admin_kubeconfig = os.path.join(self.home, "kubeconfig")
        if "admin" in issued and os.path.exists(admin_kubeconfig):
            # It embeds the admin's certificate (`steer` and kubectl read it each run).
            creds.write_admin_kubeconfig(admin_kubeconfig, state["apiServer"])
        store_dir = (state.get("store") or {}).get("dir")
        if store_dir and os.path.exists(store_dir):
            LocalStoreCluster.load(store_dir).ensure_certificates()
        if issued:
            log.info("event=certificates_renewed names=%s", ",".join(issued))
        return issued

    def run(self, stop):
        """Check and renew every interval until ``stop`` (an Event) is set."""
        while True:
            lifetime = None
            try:
                lifetime = self._state().get("certLifetime")
                self.renew_once()
            except Exception as exc:       # noqa: BLE001 - keep supervising; retry next time
                log.warning("event=certificate_renewal_failed error=%r", str(exc))
            if stop.wait(check_interval(lifetime)):
                return
