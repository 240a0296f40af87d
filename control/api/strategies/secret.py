"""Secrets: ``stringData`` is a write-only convenience, merged into ``data``.

As the Kubernetes API does when it decodes a Secret: each stringData value is
base64-encoded into data (overriding a data key of the same name) and stringData
is never stored or returned.
"""

import base64

from control.api.strategies.base import Strategy


class SecretStrategy(Strategy):
    """Merge stringData into data on every create and update (patches included)."""

    def prepare_for_create(self, obj):
        return merge_string_data(super().prepare_for_create(obj))

    def prepare_for_update(self, old, new):
        return super().prepare_for_update(old, merge_string_data(new))


def merge_string_data(secret):
    """Move ``stringData`` into ``data`` (base64 of the UTF-8 text); return the Secret."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.get("data") if isinstance(secret.get("data"), dict) else {}
        for key, value in string_data.items():
            text = value if isinstance(value, str) else str(value)
            data[key] = base64.b64encode(text.encode()).decode()
        secret["data"] = data
    return secret
