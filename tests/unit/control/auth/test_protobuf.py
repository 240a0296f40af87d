"""kubectl's protobuf review bodies, read as JSON."""

import pytest

from control import errors
from control.api.auth import protobuf


def field(number, payload):
    """Encode one length-delimited field (payloads here stay under 128 bytes)."""
    payload = payload.encode() if isinstance(payload, str) else payload
    assert len(payload) < 128
    return bytes([number << 3 | 2, len(payload)]) + payload


def envelope(api_version, kind, raw):
    type_meta = field(1, api_version) + field(2, kind)
    return protobuf.MAGIC + field(1, type_meta) + field(2, raw) + field(4, protobuf.MEDIA_TYPE)


def test_a_self_subject_access_review_as_kubectl_auth_can_i_sends_it():
    attributes = field(1, "team") + field(2, "list") + field(5, "pods")
    raw = field(1, b"") + field(2, field(1, attributes))
    body = protobuf.decode_review(envelope("authorization.k8s.io/v1",
                                           "SelfSubjectAccessReview", raw))
    assert body == {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": {"namespace": "team", "verb": "list",
                                                    "resource": "pods"}}}


def test_subject_access_review_groups_and_varints_are_read():
    spec = field(2, field(1, "/healthz") + field(2, "get")) + field(3, "bob") + \
        field(4, "dev") + field(4, "ops") + bytes([7 << 3, 0x96, 0x01])
    body = protobuf.decode_review(envelope("authorization.k8s.io/v1", "SubjectAccessReview",
                                           field(2, spec)))
    assert body["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"},
                            "user": "bob", "groups": ["dev", "ops"]}


def test_other_kinds_and_garbage_are_refused():
    with pytest.raises(errors.UnsupportedMediaType):
        protobuf.decode_review(envelope("v1", "Pod", b""))
    with pytest.raises(errors.BadRequest):
        protobuf.decode_review(b"not protobuf")
    with pytest.raises(errors.BadRequest):
        protobuf.decode_review(protobuf.MAGIC + bytes([0x0A, 0x7F, 0x01]))
