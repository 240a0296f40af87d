"""Read the API server's own configuration files (audit policy, encryption config).

Both are Kubernetes-shaped documents an admin writes in YAML or JSON; a file that
cannot be read or decoded gets one clear error naming the file.
"""

import yaml


def read_document(path, error):
    """Return the document in ``path``; raise ``error(message)`` if it cannot be read."""
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path} is not YAML or JSON: {exc}") from None
