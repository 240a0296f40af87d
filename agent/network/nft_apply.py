"""Load nftables scripts into a node's network namespace, skipping unchanged ones.

A node of a local or test cluster is a network namespace, and its Service rules
must live there, never in the machine's own namespace; so every script runs as
``nsenter --net=<path> nft -f -`` (or plain ``nft -f -`` on a real host, where the
path is None). One ``nft -f`` is one kernel transaction: the whole script applies
or none of it does.
"""

import shutil
import subprocess
import threading

from agent.network.nft_ruleset import Ruleset, update_script

INSTALL_HINT = "install it with: apt-get install -y nftables"


class NftError(RuntimeError):
    """nft is missing or refused a script (the message carries its stderr)."""


def find_binary(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not path:
        hint = INSTALL_HINT if name == "nft" else "install util-linux"
        raise NftError(f"{name} not found on PATH; {hint}")
    return path


def nft_command(netns_path=None, check_only=False):
    """The argv that reads a script on stdin inside ``netns_path`` (None: here)."""
    argv = [find_binary("nft")] + (["-c"] if check_only else []) + ["-f", "-"]
    if netns_path:
        argv = [find_binary("nsenter"), f"--net={netns_path}", *argv]
    return argv


def run_script(script, netns_path=None, check_only=False, timeout=120.0):
    """Run ``script`` through ``nft -f -`` (``-c``: only check it); raise NftError."""
    argv = nft_command(netns_path, check_only)
    try:
        done = subprocess.run(argv, input=script.encode(), capture_output=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NftError(f"nft did not finish within {timeout:.0f}s "
                       f"({len(script)} bytes of script)") from exc
    if done.returncode != 0:
        where = f" in network namespace {netns_path}" if netns_path else ""
        raise NftError(f"nft -f failed{where} (exit {done.returncode}): "
                       f"{done.stderr.decode(errors='replace').strip()[:4000]}")


class Syncer:
    """Apply the node's Service table only when it differs from what is in place.

    ``sync`` takes a script (str: applied whole, when its text changed) or a
    Ruleset (agent/network/nft_ruleset.py): the first is applied whole, later ones
    as the change from the last applied, falling back to a whole replace if the
    change is refused. A failed apply forgets what is in place, so the next sync
    replaces the table even with the same input. ``run`` is injectable for tests.
    """

    def __init__(self, netns_path=None, run=run_script, log=None):
        self.netns_path, self._run, self._log = netns_path, run, log
        self._applied = None
        self._lock = threading.Lock()
        self.applied_count = self.skipped_count = self.incremental_count = 0

    def sync(self, wanted):
        """Put ``wanted`` in place unless it already is; return whether nft ran."""
        with self._lock:
            if wanted == self._applied:
                self.skipped_count += 1
                return False
            previous, self._applied = self._applied, None
            change = None
            if isinstance(wanted, Ruleset) and isinstance(previous, Ruleset):
                change = update_script(previous, wanted)
            if change is not None:
                try:
                    self._run(change, self.netns_path)
                    self.incremental_count += 1
                except NftError as exc:
                    if self._log:
                        self._log.warning("msg=incremental nft update refused, replacing "
                                          "the table error=%s", exc)
                    change = None
            if change is None:
                self._run(wanted if isinstance(wanted, str) else wanted.script(),
                          self.netns_path)
            self._applied = wanted
            self.applied_count += 1
            return True

    def in_place(self):
        """Does the table last applied still exist in the kernel? (cheap: names only)

        A resync that finds it replaces nothing: it re-applies the wanted state as an
        incremental change, so a periodic resync never stalls changes behind a
        whole-table transaction (seconds with thousands of Services).
        """
        applied = self._applied
        if not isinstance(applied, Ruleset):
            return False
        argv = [find_binary("nft"), "list", "tables"]
        if self.netns_path:
            argv = [find_binary("nsenter"), f"--net={self.netns_path}", *argv]
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        wanted = f"table {applied.family} {applied.table}"
        return done.returncode == 0 and wanted in done.stdout.decode().splitlines()

    def forget(self):
        """Make the next sync replace the table whatever it gets (someone touched it)."""
        with self._lock:
            self._applied = None
