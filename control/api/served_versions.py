"""The verbs of a version served from another version's storage, by conversion.

kube-apiserver keeps one stored form per resource and converts every request and
answer to the version asked for. Here a served version is a ``kinds.Resource``
with a ``conversion`` (kinds.Conversion): the object service hands its verbs to
these functions, which check the body against the served version's schema,
convert it to the stored form, run the ordinary verb on the storage resource
(defaults, validation, admission and strategies all see the stored form, as they
see the internal one upstream) and convert the answer back. Patches and
server-side apply go through ``get`` and ``update``, so they apply to the served
form. Watches and Tables convert with ``from_storage`` (watch.py, table.py).
"""

from control.api import fields


def _check(resource, body, field_validation, warnings):
    """Refuse a body that is not of the served version; return it as the schema reads it."""
    fields.check_kind(resource, body)
    return fields.check_fields(resource, body, field_validation, warnings)


def get(service, resource, namespace, name):
    conversion = resource.conversion
    return conversion.from_storage(service.get(conversion.storage, namespace, name))


def list_(service, resource, namespace, **options):
    conversion = resource.conversion
    items, revision, token = service.list(conversion.storage, namespace, **options)
    return [conversion.from_storage(obj) for obj in items], revision, token


def create(service, resource, namespace, body, field_validation, warnings, **options):
    conversion = resource.conversion
    body = _check(resource, body, field_validation, warnings)
    created = service.create(conversion.storage, namespace, conversion.to_storage(body),
                             "Ignore", warnings, **options)
    return conversion.from_storage(created)


def update(service, resource, namespace, name, body, subresource, field_validation, warnings,
           **options):
    conversion = resource.conversion
    body = _check(resource, body, field_validation, warnings)
    stored = conversion.to_storage({**body, "apiVersion": resource.api_version,
                                    "kind": resource.kind})
    updated = service.update(conversion.storage, namespace, name, stored, subresource,
                             "Ignore", warnings, **options)
    return conversion.from_storage(updated)


def remove(service, resource, namespace, name, options):
    conversion = resource.conversion
    obj, gone = service.remove(conversion.storage, namespace, name, options)
    return conversion.from_storage(obj), gone
