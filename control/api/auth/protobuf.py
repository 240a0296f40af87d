"""Read the protobuf review bodies kubectl sends (``kubectl auth can-i``, ``whoami``).

The generic codec (control/api/protobuf/) reads every built-in kind; this keeps
the narrower entry point for the review kinds: any other kind is a 415 here.
"""

from control import errors
from control.api.protobuf import envelope, negotiation

MEDIA_TYPE = envelope.MEDIA_TYPE
MAGIC = envelope.MAGIC
REVIEW_KINDS = ("SelfSubjectAccessReview", "SubjectAccessReview", "LocalSubjectAccessReview",
                "SelfSubjectRulesReview", "TokenReview", "SelfSubjectReview")


def decode_review(raw):
    """Return the JSON object of a protobuf-encoded review; 415 for any other kind."""
    body = negotiation.decode_request(raw)
    if body.get("kind") not in REVIEW_KINDS:
        raise errors.UnsupportedMediaType(
            f"protobuf bodies are only read for reviews here, not {body.get('kind') or 'this'}")
    return body
