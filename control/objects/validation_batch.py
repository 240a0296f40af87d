"""Validate Jobs and CronJobs as pkg/apis/batch validation (1.32) does.

Counts and deadlines never negative, a completion mode Kubernetes knows (Indexed
with completions), a selector matching the template (a CronJob's jobTemplate
gets one generated, so it may not name one), restart policy OnFailure or Never,
a five-field schedule or a descriptor; on update a Job's selector, template and
completion mode stay as they were. Returns error triples.
"""

from control.objects.validation_common import enum, immutable, invalid, invalid_raw, required
from control.objects.validation_workloads import (
    counts,
    not_supported_raw,
    selector_string,
    spec_of,
    template_errors,
    workload_selector,
)

_CRON_DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                     "@hourly")


def job_spec_errors(spec, path="spec", template_of_cronjob=False):
    """ValidateJobSpec (a CronJob's jobTemplate needs no selector yet)."""
    if not isinstance(spec, dict):
        return [required(f"{path}.template", "")]
    errs = counts(spec, ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                         "ttlSecondsAfterFinished"), path)
    mode = spec.get("completionMode")
    errs += enum(mode, ("NonIndexed", "Indexed"), f"{path}.completionMode")
    if mode == "Indexed" and spec.get("completions") is None:
        errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
    if template_of_cronjob:
        if spec.get("selector") is not None:
            errs.append(invalid_raw(f"{path}.selector", selector_string(spec["selector"]),
                                    "`selector` will be auto-generated"))
        if spec.get("manualSelector") is True:
            errs.append(not_supported_raw(f"{path}.manualSelector", "true", ("nil", "false")))
    else:
        errs += workload_selector(spec, "job")
    return errs + template_errors(spec, f"{path}.template", ("OnFailure", "Never"), owner=None)


def job_errors(obj):
    """ValidateJob."""
    return job_spec_errors(spec_of(obj))


def _schedule_errors(schedule):
    if not schedule:
        return [required("spec.schedule", "")]
    if schedule.startswith("@"):
        if schedule in _CRON_DESCRIPTORS or schedule.startswith("@every "):
            return []
        return [invalid("spec.schedule", schedule,
                        f"unrecognized descriptor: {schedule}")]
    fields = schedule.split()
    if fields and fields[0].startswith(("TZ=", "CRON_TZ=")):
        return [invalid("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use "
                        "timeZone field instead")]
    if len(fields) != 5:
        return [invalid("spec.schedule", schedule,
                        f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")]
    return []


def cronjob_errors(obj):
    """ValidateCronJobSpec."""
    spec = spec_of(obj) or {}
    errs = _schedule_errors(spec.get("schedule"))
    errs += enum(spec.get("concurrencyPolicy"), ("Allow", "Forbid", "Replace"),
                 "spec.concurrencyPolicy")
    errs += counts(spec, ("startingDeadlineSeconds", "successfulJobsHistoryLimit",
                          "failedJobsHistoryLimit"))
    template = spec.get("jobTemplate") if isinstance(spec.get("jobTemplate"), dict) else {}
    return errs + job_spec_errors(template.get("spec"), "spec.jobTemplate.spec",
                                  template_of_cronjob=True)


def job_update_errors(new, old):
    """ValidateJobSpecUpdate: selector, template, completionMode stay as they were."""
    new_spec, old_spec = spec_of(new) or {}, spec_of(old) or {}
    errs = immutable(new_spec.get("selector"), old_spec.get("selector"), "spec.selector",
                     selector_string(new_spec.get("selector")))
    errs += immutable(new_spec.get("template"), old_spec.get("template"), "spec.template",
                      "core.PodTemplateSpec{...}")
    errs += immutable(new_spec.get("completionMode"), old_spec.get("completionMode"),
                      "spec.completionMode")
    return errs
