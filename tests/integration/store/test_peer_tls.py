"""The Raft peer port: mutual TLS from the store CA, then checked msgpack frames.

Every attack goes over a bare socket to one member of a shared 3-node cluster:
no certificate, a certificate from another CA, plain TCP garbage, then (with a
real member's certificate) hostile frames and a pickle that would run code.
Each time that connection closes and the cluster keeps committing.
"""

import os
import pickle
import socket
import ssl
import time

import pytest

from cli import pki
from store import peer_frames
from tests.support.storeproc import wait_for


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def frame(message):
    return peer_frames.pack(message)


def split(addr):
    host, _, port = addr.rpartition(":")
    return host, int(port)


def connect(addr, context=None, timeout=10.0):
    """A socket to a member's peer port, TLS-wrapped with ``context`` if given."""
    host, port = split(addr)
    sock = socket.create_connection((host, port), timeout=timeout)
    if context is not None:
        try:
            sock = context.wrap_socket(sock, server_hostname=host)
        except (ssl.SSLError, ConnectionError):
            sock.close()
            return None       # refused during the handshake (TLS 1.2 style)
    return sock


def closed_by_peer(sock, send=b"", deadline=20.0):
    """Send ``send``, then read (and drop) until the member closes; True once it has."""
    if sock is None:
        return True
    try:
        if send:
            sock.sendall(send)
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            sock.settimeout(max(0.1, until - time.monotonic()))
            if not sock.recv(65536):
                return True
    except (ssl.SSLError, ConnectionError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    finally:
        sock.close()
    return False


def assert_commits(cluster):
    with cluster.client(timeout=20) as c:
        rev = c.put(b"peer/still-committing", os.urandom(4))["revision"]
        assert c.get(b"peer/still-committing")["revision"] >= rev


def member_context(cluster, i):
    """A client context holding member ``i``'s certificate, trusting the store CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cluster.ca_file)
    context.load_cert_chain(*cluster._member_files(cluster.nodes[i]))
    return context


@pytest.fixture
def ends(cluster):
    """(target, impostor): the member others dial, and the one whose certificate the test holds."""
    order = sorted(range(len(cluster.nodes)), key=lambda i: cluster.nodes[i].peer_addr)
    return order[0], order[-1]


def node_log(cluster, i):
    with open(os.path.join(cluster.base_dir, f"{cluster.nodes[i].name}.log")) as f:
        return f.read()


def test_plain_tcp_garbage_is_refused_before_any_decoding(cluster, ends):
    target, _ = ends
    sock = connect(cluster.nodes[target].peer_addr)
    local_port = sock.getsockname()[1]
    assert closed_by_peer(sock, frame({"type": "hello"}) + b"GET / HTTP/1.0\r\n\r\n" * 100)
    assert_commits(cluster)
    assert f"{local_port})" not in node_log(cluster, target), "plain bytes reached the decoder"


def test_a_peer_without_a_certificate_is_refused(cluster, ends):
    target, impostor = ends
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cluster.ca_file)
    hello = frame({"type": "hello", "member": cluster.nodes[impostor].peer_addr,
                   "cluster": cluster.token})
    sock = connect(cluster.nodes[target].peer_addr, context)
    local_port = sock.getsockname()[1] if sock is not None else None
    assert closed_by_peer(sock, hello)
    assert_commits(cluster)
    assert local_port is None or f"{local_port})" not in node_log(cluster, target), \
        "a peer without a certificate got its frames decoded"


def test_a_member_certificate_from_another_ca_is_refused(cluster, ends, tmp_path):
    target, impostor = ends
    other = pki.CertificateAuthority.create(str(tmp_path), common_name="other-cluster-ca")
    issued = other.issue(str(tmp_path), "s9", "s9", dns_names=["localhost"],
                         ip_addresses=["127.0.0.1"], server=True, client=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cluster.ca_file)
    context.load_cert_chain(issued.cert, issued.key)
    sock = connect(cluster.nodes[target].peer_addr, context)
    local_port = sock.getsockname()[1] if sock is not None else None
    hello = frame({"type": "hello", "member": cluster.nodes[impostor].peer_addr,
                   "cluster": cluster.token})
    assert closed_by_peer(sock, hello)
    assert_commits(cluster)
    assert local_port is None or f"{local_port})" not in node_log(cluster, target), \
        "a peer from another CA got its frames decoded"


def hostile_after_tls(cluster, ends, data, with_hello=True):
    """Open a TLS connection with a real member certificate, send ``data``; True if closed."""
    target, impostor = ends
    sock = connect(cluster.nodes[target].peer_addr, member_context(cluster, impostor))
    assert sock is not None, "a member certificate must pass the handshake"
    hello = frame({"type": "hello", "member": cluster.nodes[impostor].peer_addr,
                   "cluster": cluster.token}) if with_hello else b""
    return closed_by_peer(sock, hello + data)


HELLO_ATTACKS = {   # (cluster, impostor's address) -> the first frame
    "huge length": lambda c, me: peer_frames.HEADER.pack(0xFFFFFFF0),
    "length just over the hello cap":
        lambda c, me: peer_frames.HEADER.pack(peer_frames.MAX_HELLO_BYTES + 1),
    "not msgpack": lambda c, me: peer_frames.HEADER.pack(4) + b"\xc1\xc1\xc1\xc1",
    "not a hello": lambda c, me: frame({"type": "append_entries", "term": 99,
                                        "commit_index": 0}),
    "another cluster": lambda c, me: frame({"type": "hello", "member": me, "cluster": "other"}),
    "not a member": lambda c, me: frame({"type": "hello", "member": "127.0.0.1:1",
                                         "cluster": c.token}),
}


@pytest.mark.parametrize("attack", sorted(HELLO_ATTACKS))
def test_a_bad_first_frame_closes_that_connection_only(cluster, ends, attack):
    data = HELLO_ATTACKS[attack](cluster, cluster.nodes[ends[1]].peer_addr)
    assert hostile_after_tls(cluster, ends, data, with_hello=False)
    assert_commits(cluster)


def test_the_dialing_rule_is_enforced(cluster, ends):
    target, impostor = ends
    # The member with the greatest address dials everyone; nobody may dial it.
    sock = connect(cluster.nodes[impostor].peer_addr, member_context(cluster, target))
    hello = frame({"type": "hello", "member": cluster.nodes[target].peer_addr,
                   "cluster": cluster.token})
    assert closed_by_peer(sock, hello)
    assert_commits(cluster)


AFTER_HELLO_ATTACKS = {
    "huge length": peer_frames.HEADER.pack(peer_frames.MAX_FRAME_BYTES + 1),
    "malformed msgpack": peer_frames.HEADER.pack(3) + b"\xc1\x00\x00",
    "a list": frame([1, 2, 3]),
    "wrong field types": frame({"type": "append_entries", "term": "9", "commit_index": []}),
    "unknown type": frame({"type": "set_version", "ver": 1}),
    "a second hello": frame({"type": "hello", "member": "x", "cluster": "y"}),
}


@pytest.mark.parametrize("attack", sorted(AFTER_HELLO_ATTACKS))
def test_a_hostile_frame_from_a_member_closes_that_connection_only(cluster, ends, attack):
    assert hostile_after_tls(cluster, ends, AFTER_HELLO_ATTACKS[attack])
    assert_commits(cluster)


def test_a_pickle_from_a_peer_is_refused_and_never_runs(cluster, ends, tmp_path):
    marker = tmp_path / "pickle-ran"
    payload = pickle.dumps(_RunsCode(str(marker)), 2)
    # PySyncObj's chunked append unpickles its data on "finish": refused.
    chunked = frame({"type": "append_entries", "transmission": "finish", "data": payload,
                     "term": 0, "commit_index": 0, "prevLogIdx": 0, "prevLogTerm": 0})
    assert hostile_after_tls(cluster, ends, chunked)
    # A raw pickle instead of a msgpack body: refused too.
    assert hostile_after_tls(cluster, ends, peer_frames.HEADER.pack(len(payload)) + payload)
    assert_commits(cluster)
    assert not marker.exists(), "a pickle from a peer ran code"


def test_the_cluster_still_has_all_members_after_the_attacks(cluster):
    assert_commits(cluster)
    with cluster.client(timeout=20) as c:
        wait_for(lambda: len(c.members()) == 3, message="three members")
    # Every member applies the latest write: the links between members came back.
    with cluster.client(timeout=20) as c:
        rev = c.put(b"peer/final", b"v")["revision"]
    for i in range(len(cluster.nodes)):
        with cluster.node_client(i, timeout=20) as c:
            wait_for(lambda c=c: c.get(b"peer/final", serializable=True)["revision"] >= rev,
                     message=f"member {i} to apply the last write")
