"""Reading upstream resolvers from a resolv.conf, and never forwarding to ourselves."""

import pytest

from control.dns.upstream import parse_address, read_nameservers, without_self


def test_nameservers_of_a_resolv_conf(tmp_path):
    path = tmp_path / "resolv.conf"
    path.write_text("# a comment\nsearch example.com\nnameserver 192.0.2.53  # first\n"
                    "nameserver fe80::1%eth0\n; nameserver 192.0.2.99\nnameserver not-an-ip\n"
                    "options ndots:5\nnameserver 2001:db8::53\n")
    assert read_nameservers(str(path)) == [("192.0.2.53", 53), ("fe80::1", 53),
                                           ("2001:db8::53", 53)]


def test_no_path_or_no_file_means_no_upstream(tmp_path):
    assert read_nameservers("") == []
    assert read_nameservers(None) == []
    assert read_nameservers(str(tmp_path / "missing")) == []


@pytest.mark.parametrize("text,expected", [
    ("10.0.0.1", ("10.0.0.1", 53)),
    ("10.0.0.1:5353", ("10.0.0.1", 5353)),
    ("[fd00::1]:5353", ("fd00::1", 5353)),
    ("[fd00::1]", ("fd00::1", 53)),
    ("fd00::1", ("fd00::1", 53)),
])
def test_addresses(text, expected):
    assert parse_address(text) == expected


def test_this_server_is_not_its_own_upstream():
    servers = [("127.0.0.1", 53), ("127.0.0.53", 53), ("192.0.2.1", 53), ("127.0.0.1", 5353)]
    assert without_self(servers, "0.0.0.0", 53) == [("192.0.2.1", 53), ("127.0.0.1", 5353)]
    assert without_self(servers, "127.0.0.1", 53) == servers[1:]
    assert without_self(servers, "10.0.0.10", 53) == servers
