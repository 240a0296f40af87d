"""Parse standard cron schedules and compute their times, as Kubernetes' CronJobs do.

Kubernetes parses ``spec.schedule`` with robfig/cron v3's ``ParseStandard``; this
module follows its rules so a schedule means the same thing here:

* five fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
  JAN-DEC), day of week (0-6 or SUN-SAT, 0 = Sunday); each a comma list of
  ``*``, ``?``, ``N``, ``N-M``, optionally ``/step`` (``N/step`` means ``N-max/step``);
  names are case-insensitive;
* the macros @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly;
* a ``CRON_TZ=<zone>`` or ``TZ=<zone>`` prefix, or ``time_zone`` (CronJob
  ``spec.timeZone``); otherwise times are UTC;
* day of month and day of week: if either field starts with ``*`` or ``?`` (and
  has no step above 1), a day must match both; if both are restricted, either
  one matching is enough (``0 0 1 * MON``: the 1st and every Monday);
* daylight saving: a time skipped when clocks go forward does not happen that
  day; a wall time repeated when clocks go back happens twice (robfig's behaviour);
* no time within five years (``0 0 30 2 *``): ``next_after`` returns None.

``@every <duration>`` is not supported (robfig has it; few CronJobs use it).
Pure functions over aware datetimes; every result is an aware UTC datetime.
"""

import bisect
import datetime
import zoneinfo

UTC = datetime.timezone.utc
_MINUTE = datetime.timedelta(minutes=1)
_DAY = datetime.timedelta(days=1)
#: robfig gives up looking for a next time this many years ahead.
YEAR_LIMIT = 5
#: Kubernetes' limit on missed start times it is willing to think about.
MANY_MISSED = 100

_MONTHS = {name: i + 1 for i, name in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {name: i for i, name in enumerate("sun mon tue wed thu fri sat".split())}
#: (name, low, high, names) of the five fields, in order.
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 6, _DAYS))
_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class CronError(ValueError):
    """A schedule that does not parse; the message says why, as robfig's would."""


def _number(text, names, field):
    value = names.get(text.lower())
    if value is not None:
        return value
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: invalid {field} value")
    return int(text)


def _parse_field(expr, field, low, high, names):
    """Return (values, star) for one field; ``star`` as robfig's starBit."""
    values, star = set(), False
    for part in expr.split(","):
        range_part, _, step_text = part.partition("/")
        if "/" in step_text:
            raise CronError(f"too many slashes: {part}")
        part_star = range_part in ("*", "?")
        if part_star:
            start, end = low, high
        else:
            first, dash, last = range_part.partition("-")
            if "-" in last:
                raise CronError(f"too many hyphens: {part}")
            start = _number(first, names, field)
            end = _number(last, names, field) if dash else start
        step = 1
        if step_text or part.endswith("/"):
            step = _number(step_text, {}, field)
            if step <= 0:
                raise CronError(f"step of range should be a positive number: {part}")
            if not part_star and "-" not in range_part:
                end = high           # "N/step" means "N-max/step"
        if start < low:
            raise CronError(f"beginning of range ({start}) below minimum ({low}): {part}")
        if end > high:
            raise CronError(f"end of range ({end}) above maximum ({high}): {part}")
        if start > end:
            raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
        star = star or (part_star and step <= 1)
    return frozenset(values), star


def _zone(name):
    if name in ("", "UTC", "Etc/UTC"):
        return UTC
    if name == "Local":
        return UTC      # the controller manager's local zone: Steersman runs in UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"provided bad location {name}: {exc}") from None


def valid_time_zone(name):
    """True if ``name`` is a time zone this module knows (CronJob ``spec.timeZone``)."""
    try:
        _zone(name)
    except CronError:
        return False
    return True


class Schedule:
    """A parsed schedule: the allowed values of each field and the time zone."""

    def __init__(self, minutes, hours, days, months, weekdays, dom_star, dow_star, tz):
        self.minutes, self.hours = sorted(minutes), sorted(hours)
        self.days, self.months, self.weekdays = days, months, weekdays
        self.dom_star, self.dow_star, self.tz = dom_star, dow_star, tz
        self._cache = {}

    def _day_matches(self, day):
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays      # Sunday is 0
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def _times_on(self, day):
        """The instants (UTC) this schedule fires on local ``day``, in order (cached)."""
        times = self._cache.get(day)
        if times is None:
            if len(self._cache) > 64:
                self._cache.clear()
            times = self._cache[day] = self._compute_times_on(day)
        return times

    def _compute_times_on(self, day):
        if day.month not in self.months or not self._day_matches(day):
            return []
        found = set()
        for hour in self.hours:
            for minute in self.minutes:
                for fold in (0, 1):
                    wall = datetime.datetime(day.year, day.month, day.day, hour, minute,
                                             tzinfo=self.tz, fold=fold)
                    instant = wall.astimezone(UTC)
                    # A wall time in a spring-forward gap maps to another wall time: skip it.
                    if instant.astimezone(self.tz).replace(tzinfo=None, fold=0) == \
                            wall.replace(tzinfo=None, fold=0):
                        found.add(instant)
        return sorted(found)

    def next_after(self, t):
        """The first time strictly after ``t`` (aware), or None within five years."""
        start = _floor_minute(t.astimezone(UTC)) + _MINUTE
        day = start.astimezone(self.tz).date()
        last_year = day.year + YEAR_LIMIT
        while day.year <= last_year:
            if day.month not in self.months:
                day = _first_of_next_month(day)
                continue
            times = self._times_on(day)
            i = bisect.bisect_left(times, start)
            if i < len(times):
                return times[i]
            day += _DAY
        return None

    def latest_at_or_before(self, t):
        """The last time at or before ``t`` (aware), or None within five years."""
        end = _floor_minute(t.astimezone(UTC))
        day = end.astimezone(self.tz).date()
        first_year = day.year - YEAR_LIMIT
        while day.year >= first_year:
            if day.month not in self.months:
                day = day.replace(day=1) - _DAY
                continue
            times = self._times_on(day)
            i = bisect.bisect_right(times, end)
            if i:
                return times[i - 1]
            day -= _DAY
        return None


def _floor_minute(t):
    return t.replace(second=0, microsecond=0)


def _first_of_next_month(day):
    return (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def parse(spec, time_zone=None):
    """Parse a schedule (and CronJob ``spec.timeZone``); raise CronError if invalid."""
    spec = (spec or "").strip()
    tz = UTC
    if spec.startswith(("CRON_TZ=", "TZ=")):
        if time_zone:
            raise CronError("cannot use both a TZ/CRON_TZ prefix and spec.timeZone")
        prefix, _, spec = spec.partition(" ")
        tz = _zone(prefix.partition("=")[2])
        spec = spec.strip()
    elif time_zone:
        tz = _zone(time_zone)
    if spec.startswith("@"):
        if spec.startswith("@every"):
            raise CronError("@every schedules are not supported")
        expanded = _MACROS.get(spec.lower())
        if expanded is None:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = expanded
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {spec}")
    parsed = [_parse_field(expr, *field) for expr, field in zip(fields, _FIELDS)]
    (minutes, _), (hours, _), (days, dom_star), (months, _), (weekdays, dow_star) = parsed
    return Schedule(minutes, hours, days, months, weekdays, dom_star, dow_star, tz)


def most_recent_schedule_time(schedule, earliest, now):
    """Kubernetes' mostRecentScheduleTime: (the latest missed time or None, missed count).

    ``earliest`` is the last schedule time (or the CronJob's creation, or now minus
    the starting deadline, whichever is latest). The count is of the times in
    (earliest, now], but stops counting past MANY_MISSED + 1: a caller warns
    (too many missed start times) instead of walking decades of minutes.
    """
    first = schedule.next_after(earliest)
    if first is None or first > now:
        return None, 0
    count, t = 1, first
    while count <= MANY_MISSED:
        t = schedule.next_after(t)
        if t is None or t > now:
            return schedule.latest_at_or_before(now), count
        count += 1
    return schedule.latest_at_or_before(now), count
