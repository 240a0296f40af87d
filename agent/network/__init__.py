"""The node side of the pod network: the CNI configuration from the podCIDR.

Routes to other nodes' podCIDRs come with the cluster-network issue.
"""
