"""The options of a write (create, update, patch, delete): dryRun, fieldManager, force.

kube-apiserver validates them as CreateOptions, UpdateOptions or PatchOptions and
refuses bad ones with a 422 naming the option. A write without a fieldManager is
recorded under the client's User-Agent up to its first '/' ("kubectl",
"python-requests"...), as Kubernetes does.
"""

import dataclasses

from control import errors

DRY_RUN_ALL = "All"
#: Kubernetes' FieldManagerMaxLength.
MAX_MANAGER_LENGTH = 128
#: The manager of writes the server makes itself (bootstrap, controllers in process).
SERVER_MANAGER = "steer-apiserver"


@dataclasses.dataclass(frozen=True)
class WriteOptions:
    manager: str = SERVER_MANAGER
    dry_run: bool = False
    force: bool = False


DEFAULT = WriteOptions()


def from_request(req, verb, apply=False):
    """Read and check the write options of a request; ``verb``: Create, Update or Patch."""
    problems = dry_run_problems(req.get_param_as_list("dryRun") or [])
    manager = req.get_param("fieldManager") or ""
    problems += manager_problems(manager)
    force_text = req.get_param("force")
    force = False
    if force_text not in (None, ""):
        if force_text.lower() not in ("true", "false", "1", "0"):
            raise errors.BadRequest(f"query parameter force={force_text[:40]!r} must be true "
                                    "or false")
        force = force_text.lower() in ("true", "1")
        if not apply:
            problems.append(("force", "FieldValueForbidden",
                             "Forbidden: may not be specified for non-apply patch"))
    if apply and not manager:
        problems.append(("fieldManager", "FieldValueRequired",
                         "Required value: is required for apply patch"))
    if problems:
        raise errors.Invalid(f"{verb}Options", "", problems, group="meta.k8s.io")
    if not manager:
        manager = _from_user_agent(req.get_header("User-Agent"))
    return WriteOptions(manager, bool(req.get_param_as_list("dryRun")), force)


def dry_run_problems(values):
    """Return field errors for dryRun values other than "All"."""
    if all(value == DRY_RUN_ALL for value in values):
        return []
    shown = ", ".join(f'"{value[:60]}"' for value in values[:5])
    return [("dryRun", "FieldValueNotSupported",
             f'Unsupported value: []string{{{shown}}}: supported values: "{DRY_RUN_ALL}"')]


def manager_problems(manager):
    """Return field errors for a fieldManager too long or not printable."""
    if len(manager.encode()) > MAX_MANAGER_LENGTH:
        return [("fieldManager", "FieldValueTooLong",
                 f"Too long: may not be more than {MAX_MANAGER_LENGTH} bytes")]
    if not manager.isprintable():
        return [("fieldManager", "FieldValueInvalid",
                 f"Invalid value: {manager!r}: must be composed of printable characters")]
    return []


def _from_user_agent(user_agent):
    prefix = (user_agent or "").split("/", 1)[0].strip()
    prefix = prefix.encode()[:MAX_MANAGER_LENGTH].decode("utf-8", "ignore")
    return prefix if prefix and prefix.isprintable() else "unknown"


def check_delete_dry_run(values):
    """Refuse (422) dryRun values other than "All" on a delete."""
    problems = dry_run_problems(values)
    if problems:
        raise errors.Invalid("DeleteOptions", "", problems, group="meta.k8s.io")
