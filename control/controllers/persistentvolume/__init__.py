"""Persistent volumes: the binder (PV controller) and the local-path provisioner.

``binder`` matches claims with volumes (pure), ``localpath`` decides what the
local-path provisioner makes and removes (pure), ``controller`` (claims) and
``reclaim`` (volumes) run both.
"""
