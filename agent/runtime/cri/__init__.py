"""The Kubernetes Container Runtime Interface (CRI v1): wire format and client.

api.proto declares the part of runtime.v1 Steersman uses; api_pb2*.py are generated
from it (agent/runtime/cri/generate.py) and checked in. client.CriClient is the one
way the agent talks to containerd.
"""
