"""The `steer` command: one module per verb group, dispatched from here."""

import argparse
import os
import sys

from cli import (
    apply_cmd,
    baremetal,
    cluster_cmd,
    delete_cmd,
    describe_cmd,
    events_cmd,
    exec_cmd,
    get_cmd,
    image_cmd,
    label_cmd,
    logs_cmd,
    node_cmd,
    portforward_cmd,
    resources_cmd,
    rollout_cmd,
    scale_cmd,
    store_cmd,
    top_cmd,
    wait_cmd,
)
from cli.errors import CommandError, describe_api_error
from cli.kube import add_connection_flags
from control.client import errors as api_errors

#: The kubectl-shaped verb groups, in the order `steer --help` lists them.
VERB_MODULES = (get_cmd, describe_cmd, apply_cmd, delete_cmd, scale_cmd, rollout_cmd,
                logs_cmd, exec_cmd, portforward_cmd, label_cmd, node_cmd, events_cmd, top_cmd,
                resources_cmd, wait_cmd)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="steer", description="Drive a Steersman cluster.")
    add_connection_flags(parser, top_level=True)
    groups = parser.add_subparsers(dest="group", metavar="COMMAND")
    groups.required = True
    for module in VERB_MODULES:
        module.register(groups)
    store_cmd.register(groups)
    cluster_cmd.register(groups)
    baremetal.register(groups)
    image_cmd.register(groups)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `steer get pods | head -1`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not complain, and exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except api_errors.ConnectionFailed as exc:
        server = getattr(args, "resolved_server", None) or "the configured address"
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            print(f"error: the API server at {server} has a certificate the configured CA "
                  f"does not vouch for: {exc}", file=sys.stderr)
            return 1
        print(f"error: cannot reach the API server at {server}: is the cluster up? "
              "run `steer up`", file=sys.stderr)
        return 1
    except api_errors.ApiException as exc:
        print(describe_api_error(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
