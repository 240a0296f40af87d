"""Find the API server the CLI talks to, and the namespace it works in.

Order (the agreed interface of issue 5): ``--server`` (with ``--token``; an explicit
``--kubeconfig``/``--context`` comes next, as kubectl honours them), then
``$STEER_SERVER`` (with ``$STEER_TOKEN``), then ``$STEER_HOME/config`` written by
`steer up`, then the current context of ``$KUBECONFIG`` / ``~/.kube/config``.
Nothing found means no cluster: say how to get one.
"""

import os

import yaml

from cli.errors import CommandError

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
    env = os.environ if env is None else env
    paths = [path] if path else [p for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p]
    if not paths:
        paths = [os.path.join(os.path.expanduser("~"), ".kube", "config")]
    for path in paths:
        config = _read_yaml(path)
        if not config:
            continue
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


def load_connection(args, env=None):
    """Return (server_url, token) by the agreed order; CommandError if there is no cluster."""
    env = os.environ if env is None else env
    server = getattr(args, "server", None)
    if server:
        return server.rstrip("/"), getattr(args, "token", None) or env.get("STEER_TOKEN") or None
    if getattr(args, "kubeconfig", None) or getattr(args, "context", None):
        # An explicit --kubeconfig/--context means that file or context, as for kubectl.
        context = kubeconfig_context(env, getattr(args, "kubeconfig", None),
                                     getattr(args, "context", None))
        if not context and getattr(args, "context", None):
            raise CommandError(f"context \"{args.context}\" does not exist")
        if not context:
            raise CommandError(f"no server in kubeconfig {args.kubeconfig}")
        return context[0].rstrip("/"), getattr(args, "token", None) or context[1]
    if env.get("STEER_SERVER"):
        return env["STEER_SERVER"].rstrip("/"), (getattr(args, "token", None)
                                                 or env.get("STEER_TOKEN") or None)
    config = steer_config(env)
    if config and config.get("apiServer"):
        return str(config["apiServer"]).rstrip("/"), (getattr(args, "token", None)
                                                      or config.get("token") or None)
    context = kubeconfig_context(env)
    if context:
        return context[0].rstrip("/"), getattr(args, "token", None) or context[1]
    raise CommandError(NO_CLUSTER)


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
