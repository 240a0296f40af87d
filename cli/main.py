"""The `steer` command: one module per verb group, dispatched from here."""

import argparse
import sys

from cli import cluster_cmd, store_cmd


def build_parser():
    parser = argparse.ArgumentParser(
        prog="steer", description="Drive a Steersman cluster.")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND")
    groups.required = True
    store_cmd.register(groups)
    cluster_cmd.register(groups)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except store_cmd.CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
