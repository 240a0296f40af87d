"""The PySyncObj adapter: the version check, and the journal under PySyncObj's names."""

import pytest

from store.pysyncobj_compat import (
    REQUIRED,
    UnsupportedPySyncObj,
    check_version,
    installed_version,
    open_journal,
)


@pytest.mark.parametrize("version", ["0.3.17", "0.3.18", "0.3.99", "0.3.17.post1"])
def test_supported_versions_pass(version):
    check_version(version)


@pytest.mark.parametrize("version", ["0.3.16", "0.3", "0.2.9", "0.4.0", "1.0", "banana"])
def test_other_versions_name_both_versions_and_the_fix(version):
    with pytest.raises(UnsupportedPySyncObj) as failure:
        check_version(version)
    message = str(failure.value)
    assert version in message and REQUIRED in message
    assert f"pip install 'pysyncobj{REQUIRED}'" in message


def test_a_missing_pysyncobj_says_how_to_install_it():
    with pytest.raises(UnsupportedPySyncObj, match="not installed.*pip install"):
        check_version(None)


def test_the_installed_version_is_supported():
    check_version(installed_version())


def test_the_journal_answers_to_pysyncobj_names_and_persists(tmp_path):
    path = str(tmp_path / "raft.journal")
    journal = open_journal(path, str(tmp_path / "raft.dump"))
    for index in (1, 2, 3):
        journal.add(b"cmd%d" % index, index, 1)
    journal.deleteEntriesFrom(2)
    journal.setCurrentTerm(4, "peer:1")
    journal.setRaftCommitIndex(2)
    journal.onOneSecondTimer()
    journal._destroy()
    reopened = open_journal(path, None)
    assert [reopened[i] for i in range(len(reopened))] == [(b"cmd1", 1, 1), (b"cmd2", 2, 1)]
    assert (reopened.getCurrentTerm(), reopened.getVotedForNodeId()) == (4, "peer:1")
    assert reopened.getRaftCommitIndex() == 2
    reopened.deleteEntriesTo(1)
    assert reopened[0] == (b"cmd2", 2, 1) and len(reopened) == 1
    reopened._destroy()
