"""Reach a host over SSH (paramiko): verified host key, commands, atomic file writes.

The admin's side of bare-metal provisioning. A host key is accepted only when it is
in known_hosts or matches a fingerprint the admin gave (``SHA256:...``, what
``ssh-keygen -lf`` prints); anything else is refused before any credential is sent.
Where the login user is not root, commands and writes go through ``sudo -n``.
"""

import os
import posixpath
import select
import shlex
import socket
import time
import uuid
from dataclasses import dataclass

import paramiko

from agent.provision.hosttarget import HostTarget, fingerprint, same_fingerprint

RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")
__all__ = ["AuthError", "HostConnection", "HostKeyError", "HostTarget", "RemoteCommandError",
           "RunResult", "SSHError", "connect", "fingerprint", "same_fingerprint"]


class SSHError(Exception):
    """Anything that went wrong reaching or using a host."""


class HostKeyError(SSHError):
    """The host's key is unknown or differs from the known one."""


class AuthError(SSHError):
    """The host refused our key or password."""


class RemoteCommandError(SSHError):
    """A command on the host failed (exit status not 0, or it timed out: status None)."""

    def __init__(self, host, command, exit_status, stderr):
        self.host, self.command = host, command
        self.exit_status, self.stderr = exit_status, stderr
        status = ("did not finish in time" if exit_status is None
                  else f"exited {exit_status}")
        detail = stderr.decode(errors="replace").strip()[-1500:] if stderr else ""
        super().__init__(f"{host}: `{command}` {status}" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class RunResult:
    exit_status: int
    stdout: bytes
    stderr: bytes


def _known_keys(target, known_hosts):
    if known_hosts is None:
        default = os.path.expanduser("~/.ssh/known_hosts")
        known_hosts = default if os.path.exists(default) else None
    if known_hosts is None:
        return {}
    try:
        keys = paramiko.HostKeys(os.fspath(known_hosts))
    except OSError as exc:
        raise HostKeyError(f"cannot read known_hosts {known_hosts}: {exc}") from exc
    return dict(keys.lookup(target.known_hosts_name) or {})


def _verify_host_key(target, transport, known, given_fingerprint):
    key = transport.get_remote_server_key()
    blob, seen = key.asbytes(), fingerprint(key.asbytes())
    if given_fingerprint is not None:
        if same_fingerprint(given_fingerprint, blob):
            return
        raise HostKeyError(
            f"{target}: host key {key.get_name()} {seen} does not match the fingerprint "
            f"given ({given_fingerprint}). Check the key on the host's console "
            "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); nothing was sent to it.")
    expected = known.get(key.get_name())
    if expected is None:
        raise HostKeyError(
            f"{target}: host key {key.get_name()} {seen} is not known. If that is the "
            "host's key (compare with ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub on its "
            f"console), pass --fingerprint {seen} or add it to known_hosts.")
    if expected.asbytes() != blob:
        raise HostKeyError(
            f"{target}: host key CHANGED: it offers {key.get_name()} {seen} but known_hosts "
            f"has {fingerprint(expected.asbytes())}. Someone may be intercepting the "
            "connection; if the host was reinstalled, check its new key on its console and "
            f"remove the old one (ssh-keygen -R {target.known_hosts_name}).")


def _load_key(key_filename):
    try:
        return paramiko.PKey.from_path(os.fspath(key_filename))
    except paramiko.PasswordRequiredException as exc:
        raise AuthError(f"key {key_filename} is encrypted: load it into ssh-agent "
                        "(ssh-add) and leave out the key file") from exc
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise AuthError(f"cannot load private key {key_filename}: {exc}") from exc


def _authenticate(target, transport, key_filename, password):
    tried = []
    try:
        if password is not None:
            tried.append("password")
            transport.auth_password(target.user, password, fallback=False)
            return
        keys = ([_load_key(key_filename)] if key_filename is not None
                else list(paramiko.Agent().get_keys()))
        if not keys:
            raise AuthError(f"{target}: no key to log in with: start ssh-agent and ssh-add "
                            "a key, or give a key file")
        for key in keys:
            tried.append(f"key {fingerprint(key.asbytes())}")
            try:
                transport.auth_publickey(target.user, key)
                return
            except paramiko.AuthenticationException:
                continue
    except paramiko.BadAuthenticationType as exc:
        raise AuthError(f"{target}: the host does not accept {tried[-1]} logins "
                        f"(it allows: {', '.join(exc.allowed_types)})") from exc
    except paramiko.AuthenticationException as exc:
        raise AuthError(f"{target}: authentication failed with {tried[-1]}: wrong "
                        f"password or unknown user {target.user!r}") from exc
    raise AuthError(f"{target}: the host refused every key offered ({', '.join(tried)}); "
                    f"authorize one in ~{target.user}/.ssh/authorized_keys there")


def connect(target, *, known_hosts=None, fingerprint=None, key_filename=None,
            password=None, sock=None, timeout=10):
    """Open a verified, authenticated connection to ``target`` (a HostTarget or text).

    ``sock``: an already connected socket (e.g. one made inside a network namespace).
    Keys come from ``key_filename`` or, without one, from the SSH agent.
    """
    if isinstance(target, str):
        target = HostTarget.parse(target)
    if sock is None:
        try:
            sock = socket.create_connection((target.host, target.port), timeout=timeout)
        except OSError as exc:
            raise SSHError(f"{target}: cannot connect: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        known = {} if fingerprint is not None else _known_keys(target, known_hosts)
        if known:   # ask for the key type we know, as OpenSSH does
            wanted = [a for name in known for a in (RSA_ALGORITHMS if name == "ssh-rsa"
                                                    else (name,))]
            options = transport.get_security_options()
            options.key_types = [t for t in options.key_types if t in wanted] or wanted
        transport.start_client(timeout=timeout)
        _verify_host_key(target, transport, known, fingerprint)
        transport.set_keepalive(15)
        _authenticate(target, transport, key_filename, password)
    except paramiko.SSHException as exc:
        transport.close()
        raise SSHError(f"{target}: SSH handshake failed: {exc}") from exc
    except BaseException:
        transport.close()
        raise
    return HostConnection(target, transport)


class HostConnection:
    """An authenticated SSH connection to one host."""

    def __init__(self, target, transport, clock=time.monotonic):
        self.target = target
        self.transport = transport
        self.is_root = target.user == "root"
        self._clock = clock
        self._sftp = None

    # -- commands -----------------------------------------------------------
    def run(self, command, *, sudo=False, check=True, timeout=300, input=None):
        """Run ``command`` (argv list or shell text); return RunResult."""
        text = shlex.join(command) if isinstance(command, (list, tuple)) else command
        wire = text
        if sudo and not self.is_root:
            wire = "sudo -n -- sh -c " + shlex.quote(text)
        try:
            channel = self.transport.open_session(timeout=30)
        except (paramiko.SSHException, OSError) as exc:
            raise SSHError(f"{self.target}: the connection is lost ({exc}); "
                           "connect again") from exc
        try:
            channel.exec_command(wire)
            if input:
                channel.sendall(input)
            channel.shutdown_write()
            stdout, stderr = self._collect(channel, timeout, text)
            status = channel.recv_exit_status()
        finally:
            channel.close()
        if check and status != 0:
            raise RemoteCommandError(str(self.target), text, status, stderr)
        return RunResult(status, stdout, stderr)

    def _collect(self, channel, timeout, text):
        out, err = [], []
        deadline = self._clock() + timeout
        while True:
            while channel.recv_ready():
                out.append(channel.recv(65536))
            while channel.recv_stderr_ready():
                err.append(channel.recv_stderr(65536))
            if channel.exit_status_ready() and channel.eof_received and not (
                    channel.recv_ready() or channel.recv_stderr_ready()):
                return b"".join(out), b"".join(err)
            if channel.closed and not (channel.recv_ready() or channel.recv_stderr_ready()):
                return b"".join(out), b"".join(err)
            left = deadline - self._clock()
            if left <= 0:
                raise RemoteCommandError(str(self.target), text, None, b"".join(err))
            select.select([channel], [], [], min(left, 1.0))

    # -- files --------------------------------------------------------------
    @property
    def sftp(self):
        if self._sftp is None:
            self._sftp = self.transport.open_sftp_client()
        return self._sftp

    def put_bytes(self, data, path, mode=0o600):
        """Write ``data`` to ``path`` atomically (temp file + rename) with ``mode``.

        A missing directory is made (its last component 0700); the mode is set before
        any byte lands, so a secret is never readable by others, even half-written.
        """
        self._put(path, mode, lambda f: f.write(data))

    def put_file(self, local, path, mode=0o644):
        """Copy the local file ``local`` to ``path`` atomically with ``mode``."""
        with open(local, "rb") as src:
            self._put(path, mode, lambda f: _copy(src, f))

    def _put(self, path, mode, write):
        directory = posixpath.dirname(path)
        if self.is_root:
            self.run(["mkdir", "-p", "-m", "0700", directory])
            tmp = posixpath.join(directory, f".{posixpath.basename(path)}.{uuid.uuid4().hex}")
        else:
            staging = self.run(["mktemp", "-d"]).stdout.decode().strip()
            tmp = posixpath.join(staging, "file")
        try:
            with self.sftp.open(tmp, "wx") as remote:
                self.sftp.chmod(tmp, mode)
                remote.set_pipelined(True)
                write(remote)
            if self.is_root:
                self.sftp.posix_rename(tmp, path)
            else:
                self.run(f"mkdir -p -m 0700 {shlex.quote(directory)} && "
                         f"install -m {mode:04o} -o root -g root {shlex.quote(tmp)} "
                         f"{shlex.quote(path + '.steer-tmp')} && "
                         f"mv -f {shlex.quote(path + '.steer-tmp')} {shlex.quote(path)}",
                         sudo=True)
        except BaseException:
            if self.is_root:
                self.run(["rm", "-f", tmp], check=False)
            raise
        finally:
            if not self.is_root:
                self.run(["rm", "-rf", posixpath.dirname(tmp)], check=False)

    def read_bytes(self, path):
        """The content of ``path`` on the host, or None when it does not exist."""
        if self.is_root:
            try:
                with self.sftp.open(path, "rb") as remote:
                    return remote.read()
            except FileNotFoundError:
                return None
        result = self.run(f"test -e {shlex.quote(path)} || exit 3; cat {shlex.quote(path)}",
                          sudo=True, check=False)
        if result.exit_status == 3:
            return None
        if result.exit_status != 0:
            raise RemoteCommandError(str(self.target), f"cat {path}", result.exit_status,
                                     result.stderr)
        return result.stdout

    def close(self):
        if self._sftp is not None:
            self._sftp.close()
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _copy(src, dst, chunk=1 << 20):
    while block := src.read(chunk):
        dst.write(block)
