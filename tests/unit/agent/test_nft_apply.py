"""Applying nftables scripts: unchanged scripts are skipped, failures retried."""

import pytest

from agent.network import nft_apply
from agent.network.nft_apply import NftError, Syncer


class Recorder:
    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def __call__(self, script, netns_path):
        self.calls.append((script, netns_path))
        if self.fail:
            raise NftError("nft -f failed: boom")


def test_an_unchanged_script_is_skipped():
    run = Recorder()
    syncer = Syncer("/run/netns/node-1", run=run)
    assert syncer.sync("a\n") is True
    assert syncer.sync("a\n") is False
    assert syncer.sync("b\n") is True
    assert run.calls == [("a\n", "/run/netns/node-1"), ("b\n", "/run/netns/node-1")]
    assert (syncer.applied_count, syncer.skipped_count) == (2, 1)


def test_a_failed_apply_is_retried_with_the_same_script():
    run = Recorder(fail=True)
    syncer = Syncer(None, run=run)
    for _ in range(2):
        with pytest.raises(NftError):
            syncer.sync("a\n")
    run.fail = False
    assert syncer.sync("a\n") is True
    assert len(run.calls) == 3


def test_forget_makes_the_next_sync_apply():
    run = Recorder()
    syncer = Syncer(None, run=run)
    syncer.sync("a\n")
    syncer.forget()
    assert syncer.sync("a\n") is True


def test_the_command_enters_the_namespace(monkeypatch):
    monkeypatch.setattr(nft_apply, "find_binary", lambda name: f"/usr/sbin/{name}")
    assert nft_apply.nft_command("/run/netns/n1") == [
        "/usr/sbin/nsenter", "--net=/run/netns/n1", "/usr/sbin/nft", "-f", "-"]
    assert nft_apply.nft_command(None, check_only=True) == ["/usr/sbin/nft", "-c", "-f", "-"]


def test_a_missing_nft_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(nft_apply.shutil, "which", lambda *a, **k: None)
    with pytest.raises(NftError, match="apt-get install -y nftables"):
        nft_apply.nft_command(None)


def _ruleset(chain_rules):
    from agent.network.nft_ruleset import Chain, Ruleset
    return Ruleset("steer-proxy", (), (Chain("c", "", tuple(chain_rules)),), ())


def test_rulesets_after_the_first_are_applied_as_changes():
    run = Recorder()
    syncer = Syncer(None, run=run)
    syncer.sync(_ruleset(["accept"]))
    syncer.sync(_ruleset(["drop"]))
    assert syncer.sync(_ruleset(["drop"])) is False
    assert "delete table ip steer-proxy" in run.calls[0][0]
    assert run.calls[1][0] == ("add table ip steer-proxy\nflush chain ip steer-proxy c\n"
                               "add rule ip steer-proxy c drop\n")
    assert syncer.incremental_count == 1


def test_a_refused_change_falls_back_to_replacing_the_table():
    scripts = []

    def run(script, _netns):
        scripts.append(script)
        if "delete table" not in script:
            raise NftError("nft -f failed: No such file or directory")

    syncer = Syncer(None, run=run)
    syncer.sync(_ruleset(["accept"]))
    assert syncer.sync(_ruleset(["drop"])) is True
    assert len(scripts) == 3 and "delete table" in scripts[2]
    assert syncer.incremental_count == 0


def test_in_place_asks_the_kernel_for_the_applied_tables_name(monkeypatch):
    from agent.network import nft_apply
    from agent.network.nft_ruleset import Ruleset

    syncer = nft_apply.Syncer("/run/netns/x", run=lambda *a: None)
    assert syncer.in_place() is False              # nothing applied yet
    syncer.sync(Ruleset("steer-proxy"))
    seen = []

    class Done:
        def __init__(self, out):
            self.returncode, self.stdout = 0, out

    def fake_run(argv, **kwargs):
        seen.append(argv)
        return Done(tables)
    monkeypatch.setattr(nft_apply.subprocess, "run", fake_run)
    tables = b"table inet steer-netpol\ntable ip steer-proxy\n"
    assert syncer.in_place() is True
    assert seen[0][:2] == [nft_apply.find_binary("nsenter"), "--net=/run/netns/x"]
    assert seen[0][-2:] == ["list", "tables"]
    tables = b"table inet steer-netpol\n"
    assert syncer.in_place() is False
