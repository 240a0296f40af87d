"""Assign pending pods to nodes: a pure placement function and the loop that binds.

``placement.schedule`` maps an immutable ``Snapshot`` and a pod to a ``Placement``;
``loop.Scheduler`` feeds it from informer caches and binds through the API.
"""
