"""The query and path parameters of the API's operations, as kube-apiserver declares them.

Each is an OpenAPI 3 parameter object; openapi_v2.py turns them into swagger 2.0
ones. The lists per verb follow kube-apiserver's operations, so that generated
clients expose the same arguments.
"""


def _param(name, location, kind, description, required=False):
    param = {"name": name, "in": location, "description": description,
             "schema": {"type": kind}}
    if required:
        param["required"] = True
    return param


NAMESPACE = _param("namespace", "path", "string",
                   "object name and auth scope, such as for teams and projects", True)
NAME = _param("name", "path", "string", "name of the object", True)
PRETTY = _param("pretty", "query", "string", "If 'true', the output is pretty printed.")

_QUERY = {
    "allowWatchBookmarks": ("boolean", "ask a watch for BOOKMARK events"),
    "continue": ("string", "the token of a previous list's next page"),
    "fieldSelector": ("string", "restrict the list by fields (metadata.name=x, ...)"),
    "labelSelector": ("string", "restrict the list by labels (app=x, tier in (a,b), ...)"),
    "limit": ("integer", "most objects to return in one page"),
    "resourceVersion": ("string", "read at, or watch from, this resourceVersion"),
    "resourceVersionMatch": ("string", "how resourceVersion applies to a list: Exact or "
                                       "NotOlderThan"),
    "sendInitialEvents": ("boolean", "start a watch with synthetic ADDED events"),
    "timeoutSeconds": ("integer", "end the list or watch call after this many seconds"),
    "watch": ("boolean", "stream add, update and delete events instead of listing"),
    "dryRun": ("string", "All: validate and default the request, store nothing"),
    "fieldManager": ("string", "name of the actor making the change"),
    "fieldValidation": ("string", "Ignore, Warn or Strict handling of unknown and "
                                  "duplicate fields"),
    "force": ("boolean", "apply: take the fields other managers own"),
    "gracePeriodSeconds": ("integer", "seconds before the object is deleted; 0 deletes now"),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean", "delete an object the server cannot read (corrupt); dangerous"),
    "orphanDependents": ("boolean", "deprecated: use propagationPolicy"),
    "propagationPolicy": ("string", "Orphan, Background or Foreground deletion of dependents"),
    # pods/log
    "container": ("string", "the container, when the pod has more than one"),
    "follow": ("boolean", "stream the log while the container runs"),
    "insecureSkipTLSVerifyBackend": ("boolean", "do not verify the node's serving "
                                                "certificate"),
    "limitBytes": ("integer", "stop after this many bytes"),
    "previous": ("boolean", "the log of the previous, terminated container"),
    "sinceSeconds": ("integer", "only lines newer than this many seconds"),
    "stream": ("string", "All, Stdout or Stderr"),
    "tailLines": ("integer", "only this many lines from the end"),
    "timestamps": ("boolean", "prefix every line with its RFC 3339 timestamp"),
    # pods/exec, attach, portforward
    "command": ("string", "the command to run (repeat for each argument)"),
    "stdin": ("boolean", "attach the standard input"),
    "stdout": ("boolean", "attach the standard output"),
    "stderr": ("boolean", "attach the standard error"),
    "tty": ("boolean", "allocate a terminal"),
    "ports": ("integer", "a port to forward (repeat for more)"),
}


def query(*names):
    """Return the query parameter objects of these names, in the order given."""
    return [_param(name, "query", *_QUERY[name]) for name in names]


LIST = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
        "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds",
        "watch")
WRITE = ("dryRun", "fieldManager", "fieldValidation")
PATCH = WRITE + ("force",)
DELETE = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
          "orphanDependents", "propagationPolicy")
DELETE_COLLECTION = ("continue", "dryRun", "fieldSelector", "gracePeriodSeconds",
                     "ignoreStoreReadErrorWithClusterBreakingPotential", "labelSelector",
                     "limit", "orphanDependents", "propagationPolicy", "resourceVersion",
                     "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds")
LOG = ("container", "follow", "insecureSkipTLSVerifyBackend", "limitBytes", "previous",
       "sinceSeconds", "stream", "tailLines", "timestamps")
CONNECT = {"exec": ("command", "container", "stderr", "stdin", "stdout", "tty"),
           "attach": ("container", "stderr", "stdin", "stdout", "tty"),
           "portforward": ("ports",)}
