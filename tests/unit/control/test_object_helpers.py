"""The helpers every component shares: time stamps, conditions, taints and tolerations."""

import datetime

import pytest

from control.objects import conditions, meta, taints

UTC = datetime.timezone.utc
MOMENT = datetime.datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC)


# -- time ---------------------------------------------------------------------------------
def test_utcnow_is_aware_utc():
    now = meta.utcnow()
    assert now.tzinfo is not None and now.utcoffset() == datetime.timedelta(0)


def test_timestamps_are_rfc3339_in_utc():
    assert meta.timestamp(MOMENT) == "2026-01-02T03:04:05Z"
    assert meta.micro_timestamp(MOMENT) == "2026-01-02T03:04:05.000120Z"
    plus_two = MOMENT.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert meta.timestamp(plus_two) == "2026-01-02T03:04:05Z"
    assert meta.timestamp(MOMENT.replace(tzinfo=None)) == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("text, expected", [
    ("2026-01-02T03:04:05Z", MOMENT.replace(microsecond=0)),
    ("2026-01-02T03:04:05.000120Z", MOMENT),
    ("2026-01-02T05:04:05+02:00", MOMENT.replace(microsecond=0)),
    ("2026-01-02T03:04:05", MOMENT.replace(microsecond=0)),     # no zone: UTC
    ("", None), (None, None), ("yesterday", None),
])
def test_parse_time(text, expected):
    assert meta.parse_time(text) == expected


def test_parse_time_reads_what_timestamp_writes():
    assert meta.parse_time(meta.timestamp(MOMENT)) == MOMENT.replace(microsecond=0)
    assert meta.parse_time(meta.micro_timestamp(MOMENT)) == MOMENT


# -- conditions ---------------------------------------------------------------------------
def with_conditions(*pairs):
    return {"status": {"conditions": [{"type": t, "status": s} for t, s in pairs]}}


def test_find_and_is_true():
    node = with_conditions(("MemoryPressure", "False"), ("Ready", "True"))
    assert conditions.find(node, "Ready") == {"type": "Ready", "status": "True"}
    assert conditions.find(node, "DiskPressure") is None
    assert conditions.is_true(node, "Ready") and not conditions.is_true(node, "MemoryPressure")


@pytest.mark.parametrize("obj, ready", [
    (with_conditions(("Ready", "True")), True),
    (with_conditions(("Ready", "False")), False),
    (with_conditions(("Ready", "Unknown")), False),
    (with_conditions(("ContainersReady", "True")), False),
    ({"status": {}}, False), ({}, False), (None, False),
    ({"status": {"conditions": ["junk", {"type": "Ready", "status": "True"}]}}, True),
])
def test_is_ready(obj, ready):
    assert conditions.is_ready(obj) is ready


# -- taints -------------------------------------------------------------------------------
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}
DEDICATED = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize("toleration, taint, expected", [
    ({"key": "node.kubernetes.io/not-ready", "operator": "Exists"}, NOT_READY, True),
    ({"operator": "Exists"}, NOT_READY, True),                            # every key
    ({"operator": "Exists", "effect": "NoSchedule"}, NOT_READY, False),   # other effect
    ({"key": "dedicated", "value": "gpu"}, DEDICATED, True),               # Equal by default
    ({"key": "dedicated", "operator": "Equal", "value": "cpu"}, DEDICATED, False),
    ({"key": "other", "operator": "Exists"}, DEDICATED, False),
    ({"key": "dedicated", "operator": "Bogus"}, DEDICATED, False),
    ("junk", DEDICATED, False),
])
def test_tolerates(toleration, taint, expected):
    assert taints.tolerates(toleration, taint) is expected


def test_pod_tolerates_if_any_toleration_does():
    pod = {"spec": {"tolerations": [{"key": "x", "operator": "Exists"},
                                    {"key": "dedicated", "value": "gpu"}]}}
    assert taints.pod_tolerates(pod, DEDICATED)
    assert not taints.pod_tolerates(pod, NOT_READY)
    assert not taints.pod_tolerates({"spec": {}}, NOT_READY)
