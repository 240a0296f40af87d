"""The pure parts of agent/provision/ssh.py: host targets and fingerprints."""

import base64

import pytest

from agent.provision.ssh import HostTarget, RemoteCommandError, fingerprint, same_fingerprint

# A key and the fingerprint `ssh-keygen -lf` printed for it.
PUBLIC = "AAAAC3NzaC1lZDI1NTE5AAAAIO6iNrfrk/B7YqLAOHD6ETKXRyMHUkf7CC8JUcM6S0WU"
PRINTED = "SHA256:CZ137pVLFhjzZ9C2sHQ7Zph07jlL+sI54nqD0SA0S0A"


@pytest.mark.parametrize("text, user, host, port", [
    ("admin@h1", "admin", "h1", 22),
    ("admin@10.0.0.5:2222", "admin", "10.0.0.5", 2222),
    ("h1", "root", "h1", 22),
    ("h1:2200", "root", "h1", 2200),
    ("ops@[fd00::5]:22", "ops", "fd00::5", 22),
    ("ops@[fd00::5]", "ops", "fd00::5", 22),
    ("  root@host.example  ", "root", "host.example", 22),
])
def test_parse_targets(text, user, host, port):
    assert HostTarget.parse(text) == HostTarget(user, host, port)


@pytest.mark.parametrize("text", ["@h1", "admin@", "admin@h1:0", "admin@h1:99999",
                                  "admin@h1:ssh", "admin@fd00::5", "admin@[fd00::5",
                                  "admin@[fd00::5]x", "admin@:22"])
def test_parse_refuses_malformed_targets(text):
    with pytest.raises(ValueError):
        HostTarget.parse(text)


def test_known_hosts_name_and_text():
    assert HostTarget.parse("a@h1").known_hosts_name == "h1"
    assert HostTarget.parse("a@h1:2222").known_hosts_name == "[h1]:2222"
    assert str(HostTarget.parse("a@[fd00::5]:2222")) == "a@[fd00::5]:2222"
    assert str(HostTarget.parse("h1")) == "root@h1"


def test_fingerprint_is_what_ssh_keygen_prints():
    blob = base64.b64decode(PUBLIC)
    assert fingerprint(blob) == PRINTED
    assert same_fingerprint(PRINTED, blob)
    assert same_fingerprint(PRINTED.removeprefix("SHA256:"), blob)
    assert same_fingerprint(PRINTED + "=", blob)
    assert not same_fingerprint("SHA256:" + "A" * 43, blob)


def test_remote_command_error_names_host_command_and_status():
    err = RemoteCommandError("root@h1", "false", 1, b"boom\n")
    assert str(err) == "root@h1: `false` exited 1: boom"
    assert "did not finish in time" in str(RemoteCommandError("root@h1", "sleep 9", None, b""))
