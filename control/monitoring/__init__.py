"""The monitoring addon's own parts that run in the cluster (the target discovery sidecar)."""
