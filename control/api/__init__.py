"""The Kubernetes-shaped REST API: falcon resources, discovery, watch streaming."""
