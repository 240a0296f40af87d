"""Kubernetes' protobuf wire format for the built-in kinds (kubectl's typed clients).

generate.py reads the field table (messages.json) from a kubectl binary; schema.py
loads it; wire.py, codec.py and specials.py encode and decode messages against it;
envelope.py adds the ``k8s\\0`` runtime.Unknown envelope and watch frames;
negotiation.py decides, per request, between protobuf and JSON.
"""
