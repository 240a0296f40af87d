"""Cluster DNS: names for Services, their endpoints and pods, answered from informer caches.

``view`` reads Services, EndpointSlices (or Endpoints) and Pods out of caches;
``records`` turns a question into an answer for the cluster domain (pure);
``server`` serves it over UDP and TCP and forwards every other name upstream.
"""
