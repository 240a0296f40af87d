"""The store members' peer protocol, so an upgrade knows whether old and new can talk.

Members speaking different peer protocols cannot form one Raft group: a rolling,
one-member-at-a-time upgrade works only between releases with the same
``PEER_PROTOCOL``; across a change every member is stopped and all start on the
new release together (``steer cluster upgrade --mode together``).

1: PySyncObj's pickled messages encrypted with a shared secret (before mutual TLS).
2: mutual TLS between members, msgpack frames (store/peer_transport.py).

``READS_DATA_OF``: the protocols whose members' journal and snapshots this release
reads on start (old pickled entries load through store/raft_codec.py).
"""

PEER_PROTOCOL = 2
READS_DATA_OF = (1, 2)
