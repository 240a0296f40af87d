"""Jobs: a generated selector, so that a Job never adopts another Job's pods."""

from control.api.strategies.base import Strategy
from control.objects import defaults


class JobStrategy(Strategy):
    """kube-apiserver's Job PrepareForCreate: generate the selector."""

    def prepare_for_create(self, obj):
        return generate_selector(obj)


def generate_selector(job):
    """Label a Job's template with its name and uid and select the uid.

    Unless ``spec.manualSelector``. Returns the Job defaulted again, so that a Job
    without labels takes its template's (now generated) ones, as Kubernetes shows.
    """
    spec = job["spec"] = job.get("spec") or {}
    if spec.get("manualSelector"):
        return job
    # A Job without a name is refused by validation after this (422), not here (500).
    name, uid = job["metadata"].get("name", ""), job["metadata"]["uid"]
    template = spec["template"] = spec.get("template") or {}
    template_meta = template["metadata"] = template.get("metadata") or {}
    labels = template_meta["labels"] = template_meta.get("labels") or {}
    for key, value in (("job-name", name), ("batch.kubernetes.io/job-name", name),
                       ("controller-uid", uid), ("batch.kubernetes.io/controller-uid", uid)):
        labels.setdefault(key, value)
    selector = spec["selector"] = spec.get("selector") or {}
    match_labels = selector["matchLabels"] = selector.get("matchLabels") or {}
    match_labels.setdefault("batch.kubernetes.io/controller-uid", uid)
    return defaults.apply_defaults(job)
