"""The rules every kind shares, as kube-apiserver's generic registry strategies hold them.

Each write of the object service goes through the strategy of its resource
(``strategy_for`` in this package): it fills in what the server decides on create
and update, validates, reserves what an object holds (a Service's clusterIP) and
says how an object is deleted. A kind with rules of its own overrides the hooks
it needs, in a module of its own; every other kind uses this class as it is.
"""

import json

from control import errors
from control.objects import meta, podvalidation, support, validation_kinds


def no_op():
    """Undo or release nothing: the kind reserves nothing."""


class Strategy:
    """Hold the rules of one resource; these defaults apply to every kind."""

    def __init__(self, resource):
        self.resource = resource

    # -- create and update (RESTCreateStrategy, RESTUpdateStrategy) ----------------------
    def prepare_for_create(self, obj):
        """Fill in what the server sets on a new, defaulted object; return the object."""
        return obj

    def prepare_for_update(self, old, new):
        """Return ``new`` with what a client may not change carried over from ``old``.

        A kind with a status subresource keeps its stored status: only a write to
        the status subresource (status.py) changes it. As kube-apiserver's BeforeUpdate:
        a namespace other than the stored one is a 400, a uid other than the stored
        one a 422 (none given: the stored one is kept).
        """
        self.check_identity(old, new)
        return meta.prepare_update(old, new, keep_status="status" in self.resource.subresources)

    def check_identity(self, old, new):
        """Refuse an update whose body names another namespace or another uid."""
        new_meta, old_meta = new.get("metadata") or {}, old.get("metadata") or {}
        namespace = new_meta.get("namespace")
        if self.resource.namespaced and namespace and namespace != old_meta.get("namespace"):
            raise errors.BadRequest("the namespace of the provided object does not match the "
                                    "namespace sent on the request")
        uid = new_meta.get("uid")
        if uid and uid != old_meta.get("uid"):
            self.refuse(old, [("metadata.uid", "FieldValueInvalid",
                               f"Invalid value: {json.dumps(uid)}: field is immutable")])

    def validate(self, obj):
        """Refuse (422) an object that breaks the rules of its kind."""
        name = obj["metadata"].get("name", "")
        problems = meta.name_errors(self.resource.kind, name)
        # Pods and pod templates: the names and paths the node agent turns into files.
        problems += podvalidation.validate_object(self.resource.kind, obj)
        problems += validation_kinds.errors_for(self.resource.kind, obj, self.resource.namespaced)
        self.refuse(obj, problems)

    def validate_update(self, obj, old):
        """Refuse (422) an update: ``obj`` breaks its kind's rules or changes a fixed field."""
        self.validate(obj)
        self.refuse(obj, validation_kinds.update_errors_for(self.resource.kind, obj, old))

    def meta_errors(self, obj):
        """Return the ObjectMeta errors of ``obj`` (for kinds whose validate is their own)."""
        return validation_kinds.errors_for(self.resource.kind, obj, self.resource.namespaced,
                                           with_pod_spec=False)

    def refuse(self, obj, problems):
        """Raise one 422 holding every problem, as kube-apiserver aggregates them."""
        if problems:
            raise errors.Invalid(self.resource.kind, obj["metadata"].get("name", ""), problems,
                                 group=self.resource.group)

    def warnings(self, obj):
        """Return the warnings a write of ``obj`` answers with (fields not acted on)."""
        return support.warnings_for(obj)

    # -- what an object holds (genericregistry.Store's BeginCreate, BeginUpdate, AfterDelete)
    def begin_create(self, obj, allocator):
        """Reserve what ``obj`` needs before it is stored; return a function undoing that.

        ``allocator`` hands out Services' addresses and ports (None: allocation is off).
        """
        return no_op

    def begin_update(self, old, new, allocator):
        """Reserve what ``new`` needs; return (undo if the write fails, release after it)."""
        return no_op, no_op

    def after_delete(self, obj, allocator):
        """Release what an object removed from the store held."""

    # -- deletion (RESTDeleteStrategy and RESTGracefulDeleteStrategy) --------------------
    def grace_period(self, obj, requested):
        """Return the seconds ``obj`` gets to stop before it goes (0: remove it now).

        ``requested`` is the request's gracePeriodSeconds, None when not given.
        """
        return 0

    def awaits_cleanup(self, obj):
        """Return whether something must empty ``obj`` before it may go."""
        return False

    def check_delete(self, obj):
        """Refuse (403) deleting ``obj`` when its kind forbids it (admission on delete)."""

    def prepare_for_delete(self, obj):
        """Adjust an object that is marked for deletion and waits for its finalizers."""
