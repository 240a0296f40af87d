"""CustomResourceDefinitions (apiextensions.k8s.io/v1): resources defined at run time.

model.py turns a CRD into served Resources; validation.py and schemacheck.py
refuse what kube-apiserver refuses; strategy.py holds the write rules of CRDs and
of custom objects; sync.py keeps each API server process's resource table in
step with the stored CRDs and empties a deleted CRD's objects; openapi.py
describes the custom group/versions.
"""
