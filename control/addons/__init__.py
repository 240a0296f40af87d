"""Cluster addons that run as ordinary workloads on the cluster (the Ingress controller)."""
