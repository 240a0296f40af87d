"""The ``kubectl get pdb`` columns, as kube-apiserver's printPodDisruptionBudget (1.32)."""

from control.api.printers import AGE, NAME, column, created_age, metadata_of, spec_of, status_of

PDB_COLUMNS = [
    NAME,
    column("Min Available", description="The minimum number or percentage of available pods "
           "this budget requires."),
    column("Max Unavailable", description="The maximum number or percentage of unavailable "
           "pods this budget requires."),
    column("Allowed Disruptions", "integer", description="The number of disruptions which are "
           "allowed, currently."),
    AGE,
]


def print_poddisruptionbudget(obj, now):
    """NAME, MIN AVAILABLE, MAX UNAVAILABLE (N/A when unset), ALLOWED DISRUPTIONS, AGE."""
    spec = spec_of(obj)
    shown = ["N/A" if spec.get(f) is None else str(spec[f])
             for f in ("minAvailable", "maxUnavailable")]
    return [metadata_of(obj).get("name", ""), *shown,
            int(status_of(obj).get("disruptionsAllowed") or 0), created_age(obj, now)]
