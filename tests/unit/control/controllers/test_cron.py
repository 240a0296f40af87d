"""Cron schedules: parsing (robfig/cron's standard rules) and next / latest times."""

import datetime

import pytest

from control.controllers import cron

UTC = datetime.timezone.utc


def t(text):
    """An aware UTC time from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("spec, after, expected", [
    ("* * * * *", "2026-01-01 12:00", "2026-01-01 12:01"),
    ("* * * * *", "2026-01-01 12:00:59", "2026-01-01 12:01"),
    ("*/15 * * * *", "2026-01-01 12:07", "2026-01-01 12:15"),
    ("5/20 * * * *", "2026-01-01 12:26", "2026-01-01 12:45"),      # N/step = N-59/step
    ("10-20/5 * * * *", "2026-01-01 12:16", "2026-01-01 12:20"),
    ("0,30 9-17 * * *", "2026-01-01 17:30", "2026-01-02 09:00"),
    ("0 0 * * *", "2026-01-31 23:59", "2026-02-01 00:00"),         # month end
    ("0 0 31 * *", "2026-01-31 00:00", "2026-03-31 00:00"),        # no 31st in Feb
    ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"),        # next leap year
    ("0 0 29 2 *", "2100-01-01 00:00", "2104-02-29 00:00"),        # 2100 is no leap year
    ("0 0 1 1 *", "2026-12-31 23:59", "2027-01-01 00:00"),
    ("@yearly", "2026-06-01 00:00", "2027-01-01 00:00"),
    ("@annually", "2026-06-01 00:00", "2027-01-01 00:00"),
    ("@monthly", "2026-02-15 00:00", "2026-03-01 00:00"),
    ("@weekly", "2026-01-01 00:00", "2026-01-04 00:00"),            # a Thursday -> Sunday
    ("@daily", "2026-01-01 00:00", "2026-01-02 00:00"),
    ("@midnight", "2026-01-01 00:00", "2026-01-02 00:00"),
    ("@hourly", "2026-01-01 00:00", "2026-01-01 01:00"),
    ("0 12 * JAN-MAR MON", "2026-03-31 00:00", "2027-01-04 12:00"),
    ("0 12 * * mon-fri", "2026-01-02 12:00", "2026-01-05 12:00"),  # Friday -> Monday
    ("0 12 * * SAT,sun", "2026-01-01 00:00", "2026-01-03 12:00"),
    ("0 0 ? * 0", "2026-01-01 00:00", "2026-01-04 00:00"),          # ? as *
    # Both restricted: either matches (the 13th, or a Friday).
    ("0 0 13 * 5", "2026-01-01 00:00", "2026-01-02 00:00"),
    ("0 0 13 * 5", "2026-01-09 00:00", "2026-01-13 00:00"),
    # Day of week '*': day of month alone decides; '*/2' is not a star.
    ("0 0 13 * *", "2026-01-01 00:00", "2026-01-13 00:00"),
    ("0 0 13 * */2", "2026-01-01 00:00", "2026-01-03 00:00"),       # Saturday (6): even
    ("0 0 13 * */1", "2026-01-01 00:00", "2026-01-13 00:00"),
    ("0 0 30 2 *", "2026-01-01 00:00", None),                       # never
])
def test_next_after(spec, after, expected):
    got = cron.parse(spec).next_after(t(after))
    assert got == (t(expected) if expected else None)


@pytest.mark.parametrize("spec, zone, after, expected", [
    # New York: clocks jump from 02:00 to 03:00 on 2026-03-08; 02:30 does not happen that day.
    ("30 2 * * *", "America/New_York", "2026-03-07 12:00", "2026-03-09 06:30"),
    ("30 3 * * *", "America/New_York", "2026-03-07 12:00", "2026-03-08 07:30"),   # EDT
    ("30 3 * * *", "America/New_York", "2026-01-07 12:00", "2026-01-08 08:30"),   # EST
    # Clocks go back from 02:00 to 01:00 on 2026-11-01: 01:30 happens twice.
    ("30 1 * * *", "America/New_York", "2026-11-01 00:00", "2026-11-01 05:30"),
    ("30 1 * * *", "America/New_York", "2026-11-01 05:30", "2026-11-01 06:30"),
    ("30 1 * * *", "America/New_York", "2026-11-01 06:30", "2026-11-02 06:30"),
    ("0 9 * * *", "Asia/Kolkata", "2026-01-01 00:00", "2026-01-01 03:30"),
    ("0 0 1 * *", "Pacific/Auckland", "2026-01-01 00:00", "2026-01-31 11:00"),
])
def test_next_after_in_a_time_zone(spec, zone, after, expected):
    assert cron.parse(spec, zone).next_after(t(after)) == t(expected)
    assert cron.parse(f"CRON_TZ={zone} {spec}").next_after(t(after)) == t(expected)
    assert cron.parse(f"TZ={zone} {spec}").next_after(t(after)) == t(expected)


@pytest.mark.parametrize("spec, at, expected", [
    ("* * * * *", "2026-01-01 12:00:30", "2026-01-01 12:00"),
    ("0 * * * *", "2026-01-01 12:00", "2026-01-01 12:00"),          # at counts
    ("0 0 1 * *", "2026-03-15 00:00", "2026-03-01 00:00"),
    ("0 0 29 2 *", "2027-01-01 00:00", "2024-02-29 00:00"),
    ("0 0 30 2 *", "2027-01-01 00:00", None),
])
def test_latest_at_or_before(spec, at, expected):
    assert cron.parse(spec).latest_at_or_before(t(at)) == (t(expected) if expected else None)


@pytest.mark.parametrize("spec, message", [
    ("* * * *", "expected exactly 5 fields"),
    ("* * * * * *", "expected exactly 5 fields"),
    ("60 * * * *", "above maximum"),
    ("* 24 * * *", "above maximum"),
    ("* * 0 * *", "below minimum"),
    ("* * * 13 *", "above maximum"),
    ("* * * * 7", "above maximum"),
    ("5-1 * * * *", "beyond end"),
    ("*/0 * * * *", "positive"),
    ("a * * * *", "failed to parse int"),
    ("1-2-3 * * * *", "too many hyphens"),
    ("1/2/3 * * * *", "too many slashes"),
    ("@every 1h", "not supported"),
    ("@fortnightly", "unrecognized descriptor"),
    ("CRON_TZ=Mars/Olympus 0 0 * * *", "bad location"),
    ("", "expected exactly 5 fields"),
])
def test_invalid_schedules(spec, message):
    with pytest.raises(cron.CronError, match=message):
        cron.parse(spec)


def test_prefix_and_time_zone_field_together_are_refused():
    with pytest.raises(cron.CronError, match="both"):
        cron.parse("TZ=UTC * * * * *", "Europe/Berlin")


def test_bad_time_zone_field():
    with pytest.raises(cron.CronError, match="bad location"):
        cron.parse("* * * * *", "Nowhere/Special")


@pytest.mark.parametrize("spec, earliest, now, expected, count", [
    ("* * * * *", "2026-01-01 12:00", "2026-01-01 12:00:59", None, 0),
    ("* * * * *", "2026-01-01 12:00", "2026-01-01 12:01", "2026-01-01 12:01", 1),
    ("* * * * *", "2026-01-01 12:00", "2026-01-01 12:05:10", "2026-01-01 12:05", 5),
    ("0 * * * *", "2026-01-01 12:00", "2026-01-02 11:30", "2026-01-02 11:00", 23),
    # More than 100 missed: counting stops, the latest time is still exact.
    ("* * * * *", "2026-01-01 00:00", "2026-01-09 13:37:12", "2026-01-09 13:37", 101),
    ("0 0 1,2 * *", "2026-01-01 00:00", "2026-03-01 12:00", "2026-03-01 00:00", 4),
])
def test_most_recent_schedule_time(spec, earliest, now, expected, count):
    got, missed = cron.most_recent_schedule_time(cron.parse(spec), t(earliest), t(now))
    assert got == (t(expected) if expected else None)
    assert missed == count
