"""Builders of the objects the Ingress controller reads, for its tests."""

import base64


def ingress(name="web", namespace="default", rules=(), default=None, tls=(), created="2026-01-01",
            class_name="steer", annotations=None):
    spec = {"rules": list(rules)}
    if class_name:
        spec["ingressClassName"] = class_name
    if default is not None:
        spec["defaultBackend"] = default
    if tls:
        spec["tls"] = list(tls)
    meta = {"name": name, "namespace": namespace, "creationTimestamp": f"{created}T00:00:00Z",
            "uid": f"uid-{namespace}-{name}"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": spec}


def backend(service, number=80):
    port = {"number": number} if isinstance(number, int) else {"name": number}
    return {"service": {"name": service, "port": port}}


def rule(host, *paths):
    """paths: (path, pathType, service) triples."""
    entries = [{"path": p, "pathType": t, "backend": backend(s)} for p, t, s in paths]
    found = {"http": {"paths": entries}}
    if host:
        found["host"] = host
    return found


def service(name, namespace="default", port=80, port_name=""):
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": port_name, "port": port, "protocol": "TCP",
                                "targetPort": 8080}]}}


def endpoint_slice(service_name, addresses, port=8080, namespace="default", port_name="",
                   not_ready=()):
    endpoints = [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]
    endpoints += [{"addresses": [a], "conditions": {"ready": False}} for a in not_ready]
    return {"metadata": {"name": f"{service_name}-abc", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port,
                                              "protocol": "TCP"}],
            "endpoints": endpoints}


def tls_secret(name, cert_pem, key_pem, namespace="default", kind="kubernetes.io/tls"):
    return {"metadata": {"name": name, "namespace": namespace}, "type": kind,
            "data": {"tls.crt": base64.b64encode(cert_pem).decode(),
                     "tls.key": base64.b64encode(key_pem).decode()}}


def self_signed(*hosts):
    """A (certificate PEM, key PEM) for ``hosts`` (subjectAltNames), made with cryptography."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
