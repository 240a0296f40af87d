"""Find the API server the CLI talks to, the credentials it shows, and its namespace.

Order (the agreed interface of issue 5): ``--server`` (with ``--token-file`` or
``--token`` and ``--certificate-authority``; an explicit ``--kubeconfig``/``--context``
comes next, as kubectl honours them), then ``$STEER_SERVER`` (with ``$STEER_TOKEN``),
then ``$STEER_HOME/config`` written by `steer up` (whose ``kubeconfig`` holds the
admin's client certificate), then the current context of ``$KUBECONFIG`` /
``~/.kube/config``. Nothing found means no cluster: say how to get one.
"""

import dataclasses
import os
import sys

import yaml

from cli.errors import CommandError
from control.client import kubeconfig as kc

NO_CLUSTER = "no cluster: run `steer up` (or pass --server)"


def steer_home(env=None):
    env = os.environ if env is None else env
    return env.get("STEER_HOME") or os.path.join(os.path.expanduser("~"), ".steer")


def _read_yaml(path):
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc
    return data if isinstance(data, dict) else None


def steer_config(env=None):
    """The ``$STEER_HOME/config`` document, or None."""
    return _read_yaml(os.path.join(steer_home(env), "config"))


def kubeconfig_context(env=None, path=None, context_name=None):
    """Return (server, token, namespace) of the current (or named) kubeconfig context."""
    for _, config in _kubeconfig_documents(env, path):
        current = context_name or config.get("current-context")
        context = _named(config.get("contexts"), current, "context")
        if context is None:
            continue
        cluster = _named(config.get("clusters"), context.get("cluster"), "cluster") or {}
        user = _named(config.get("users"), context.get("user"), "user") or {}
        if cluster.get("server"):
            return cluster["server"], user.get("token") or None, context.get("namespace")
    return None


def _named(entries, name, field):
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry.get(field) or {}
    return None


def load_client_config(args, env=None):
    """Return the ``ClientConfig`` (server, CA, credentials) by the agreed order.

    CommandError if there is no cluster or its kubeconfig is broken.
    """
    env = os.environ if env is None else env
    try:
        config = _find_config(args, env)
    except kc.KubeconfigError as exc:
        raise CommandError(str(exc)) from None
    token = _flag_token(args)
    changes = {"token": token} if token else {}
    if getattr(args, "certificate_authority", None):
        changes["ca_file"], changes["ca_data"] = args.certificate_authority, None
    return dataclasses.replace(config, **changes) if changes else config


def load_connection(args, env=None):
    """Return (server_url, token) by the agreed order; CommandError if there is no cluster."""
    config = load_client_config(args, env)
    return config.server, config.token


def _find_config(args, env):
    server = getattr(args, "server", None)
    if server:
        return kc.ClientConfig(server.rstrip("/"), token=env.get("STEER_TOKEN") or None)
    if getattr(args, "kubeconfig", None) or getattr(args, "context", None):
        # An explicit --kubeconfig/--context means that file or context, as for kubectl.
        found = kubeconfig_client(env, getattr(args, "kubeconfig", None),
                                  getattr(args, "context", None))
        if not found and getattr(args, "context", None):
            raise CommandError(f"context \"{args.context}\" does not exist")
        if not found:
            raise CommandError(f"no server in kubeconfig {args.kubeconfig}")
        return found
    if env.get("STEER_SERVER"):
        return kc.ClientConfig(env["STEER_SERVER"].rstrip("/"),
                               token=env.get("STEER_TOKEN") or None)
    config = steer_config(env)
    if config and config.get("apiServer"):
        # `steer up` keeps the admin's credentials in its kubeconfig; the config names it.
        found = kubeconfig_client(env, config["kubeconfig"]) if config.get("kubeconfig") else None
        found = found or kc.ClientConfig("")
        return dataclasses.replace(found, server=str(config["apiServer"]).rstrip("/"),
                                   token=config.get("token") or found.token)
    found = kubeconfig_client(env)
    if found:
        return found
    raise CommandError(NO_CLUSTER)


def kubeconfig_client(env=None, path=None, context_name=None):
    """The ``ClientConfig`` of the current (or named) context of the first kubeconfig having it."""
    for candidate, document in _kubeconfig_documents(env, path):
        try:
            return kc.from_dict(document, os.path.dirname(os.path.abspath(candidate)),
                                context_name, source=candidate)
        except kc.KubeconfigError as exc:
            if "does not exist" in str(exc) or "no current-context" in str(exc):
                continue
            raise
    return None


def _kubeconfig_documents(env=None, path=None):
    """Yield (path, parsed document) of ``path``, else of each $KUBECONFIG file, else ~/.kube/config."""
    env = os.environ if env is None else env
    paths = [path] if path else [p for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p]
    for candidate in paths or [os.path.join(os.path.expanduser("~"), ".kube", "config")]:
        document = _read_yaml(candidate)
        if document:
            yield candidate, document


def _flag_token(args):
    """The token of --token-file, else of --token (with a warning: argv is public)."""
    path = getattr(args, "token_file", None)
    if path:
        try:
            with open(path) as handle:
                return handle.read().strip() or None
        except OSError as exc:
            raise CommandError(f"--token-file: {exc}") from None
    token = getattr(args, "token", None)
    if token:
        print("warning: --token is visible to every user of this machine (/proc/PID/cmdline); "
              "prefer --token-file or a kubeconfig", file=sys.stderr)
    return token or None


def default_namespace(args, env=None):
    """``-n``, else the config's namespace, else the kubeconfig context's, else "default"."""
    env = os.environ if env is None else env
    if getattr(args, "namespace", None):
        return args.namespace
    explicit = getattr(args, "kubeconfig", None) or getattr(args, "context", None)
    config = None if explicit else steer_config(env)
    if config and config.get("namespace"):
        return str(config["namespace"])
    if explicit or (not (getattr(args, "server", None) or env.get("STEER_SERVER"))
                    and not config):
        context = kubeconfig_context(env, getattr(args, "kubeconfig", None),
                                     getattr(args, "context", None))
        if context and context[2]:
            return context[2]
    return "default"
