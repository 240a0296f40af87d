"""`steer exec POD -- COMMAND...`: run a command in a container, print its output, exit as it did.

The command's stdout and stderr come back on WebSocket channels (cli/channels.py) and
its exit code in the closing Status. Standard input is not sent: the v4 channel
protocol containerd speaks cannot tell a command that its input ended, so a command
reading it would wait forever (use ``kubectl exec -i``, which goes over SPDY).
"""

import argparse
import json
import sys
import urllib.parse

from cli import channels
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags
from cli.logs_cmd import choose_container


def register(groups):
    p = groups.add_parser("exec", help="run a command in a container (its output and exit code)")
    add_connection_flags(p)
    p.add_argument("pod", metavar="POD")
    p.add_argument("-c", "--container", help="the container (default: the first)")
    # REMAINDER: the command's own options are not steer's; -c after POD is read below.
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG...]")
    p.set_defaults(func=cmd_exec)


def split_command(words, container):
    """Return (command, container) from what follows POD: ``[-c NAME] -- COMMAND...``."""
    if "--" not in words:
        return words, container
    at = words.index("--")
    options, command = words[:at], words[at + 1:]
    while options:
        if options[0] in ("-c", "--container") and len(options) > 1:
            container, options = options[1], options[2:]
        elif options[0].startswith("--container="):
            container, options = options[0].partition("=")[2], options[1:]
        else:
            raise CommandError(f"unknown option {options[0]!r} before --")
    return command, container


def exit_code(status):
    """The command's exit code from the Status on channel 3 (kubelet's shape)."""
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
            return int(cause["message"])
    raise CommandError(status.get("message") or "the command failed")


def refusal_message(exc):
    """The message of the Status the API server refused the stream with."""
    try:
        return json.loads(exc.body)["message"]
    except (ValueError, KeyError, TypeError):
        return f"{exc}: {exc.body[:200].decode('utf-8', 'replace')}"


def cmd_exec(args):
    command, container = split_command(args.command, args.container)
    if not command:
        raise CommandError("you must specify at least one command for the container: "
                           "steer exec POD -- COMMAND [ARG...]")
    session = Session(args)
    pods = session.resolve("pods")
    pod = session.rest.get(pods, session.namespace, args.pod)
    query = [("container", choose_container(pod, container)),
             *(("command", arg) for arg in command), ("stdout", "true"), ("stderr", "true")]
    target = session.rest.path(pods, session.namespace, args.pod, "exec") + "?" + \
        urllib.parse.urlencode(query)
    try:
        stream = channels.connect(session.rest, target)
    except channels.ChannelError as exc:
        raise CommandError(refusal_message(exc)) from None
    outputs = {channels.STDOUT: sys.stdout.buffer, channels.STDERR: sys.stderr.buffer}
    try:
        while (message := stream.receive()) is not None:
            channel, data = message
            if channel in outputs:
                outputs[channel].write(data)
                outputs[channel].flush()
            elif channel == channels.STATUS and data:
                return exit_code(json.loads(data))
    finally:
        stream.close()
    return 0
