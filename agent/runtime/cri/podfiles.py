"""Files the agent writes for a pod's containers: /etc/hosts and the termination log.

As kubelet: every container of a pod (unless hostNetwork) mounts one managed
hosts file with the localhost lines and the pod's own IP and hostname, and each
container attempt gets an empty file at terminationMessagePath whose content
becomes ``terminated.message`` (at most 4096 bytes); with the policy
FallbackToLogsOnError an empty file after a failure takes the log's tail.
"""

import os

from agent import logs, paths

MAX_MESSAGE_BYTES = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048


def hosts_text(ip, hostname, host_aliases=()):
    lines = ["# Kubernetes-managed hosts file (written by steer-agent).",
             "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
             "fe00::2\tip6-allrouters"]
    if ip and hostname:
        lines.append(f"{ip}\t{hostname}")
    for alias in host_aliases or ():
        names = [n for n in alias.get("hostnames") or () if n]
        if alias.get("ip") and names:
            lines.append(f"{alias['ip']}\t" + "\t".join(names))
    return "\n".join(lines) + "\n"


def write_hosts(pod_dir, ip, hostname, host_aliases=()):
    """Write ``<pod dir>/etc-hosts`` (0644: containers of any user read it); return its path."""
    path = os.path.join(pod_dir, "etc-hosts")
    tmp = path + ".tmp"
    paths.remove_entry(tmp, pod_dir)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(hosts_text(ip, hostname, host_aliases))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


def termination_file(pod_dir, name, attempt):
    """Create an empty, world-writable termination-log file for one attempt; return its path.

    World-writable as kubelet makes it: a container running as any user must be
    able to write its message; the pod's directory (0700) keeps the host out.
    """
    directory = paths.join_under(paths.make_private_dir(os.path.join(pod_dir, "containers")),
                                 paths.check_name(name, "container"), "container name")
    paths.make_private_dir(directory)
    path = os.path.join(directory, f"{int(attempt)}-termination-log")
    paths.remove_entry(path, directory)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    os.close(fd)
    os.chmod(path, 0o666)
    return path


def termination_message(host_path, policy, exit_code, log_path):
    """The message of a finished attempt, or None."""
    message = ""
    if host_path:
        try:
            fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                message = f.read(MAX_MESSAGE_BYTES).decode("utf-8", "replace")
        except OSError:
            message = ""
    if not message and policy == "FallbackToLogsOnError" and exit_code and log_path:
        try:
            tail = b"".join(logs.read(log_path, tail_lines=FALLBACK_LINES))
        except OSError:
            tail = b""
        message = tail[-FALLBACK_BYTES:].decode("utf-8", "replace")
    return message or None
