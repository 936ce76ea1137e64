"""Times and days on the command line (`playback --from/--to`, `recordings --day`)."""

from __future__ import annotations

import datetime

import pytest

from privastead.cli.app.times import parse_day, parse_time

NOW = 1_800_000_000.0


def test_relative_and_now() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time("-10m", NOW) == NOW - 600
    assert parse_time("-1.5h", NOW) == NOW - 5400
    assert parse_time("-2d", NOW) == NOW - 172_800
    assert parse_time("-90s", NOW) == NOW - 90


def test_iso_utc_and_local() -> None:
    assert parse_time("2027-01-15T08:00:00Z", NOW) == NOW
    assert parse_time("2027-01-15 09:00:00+01:00", NOW) == NOW
    local = datetime.datetime(2027, 1, 15, 8, 0).astimezone().timestamp()
    assert parse_time("2027-01-15T08:00", NOW) == local


@pytest.mark.parametrize("bad", ["yesterday at 5", "-10", "10m", "2027-13-01", ""])
def test_a_time_that_cannot_be_read_says_which_forms_work(bad: str) -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time(bad, NOW)


def test_days() -> None:
    today = datetime.date(2027, 1, 15)
    assert parse_day("today", today) == today
    assert parse_day("yesterday", today) == datetime.date(2027, 1, 14)
    assert parse_day("2026-12-04", today) == datetime.date(2026, 12, 4)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("monday", today)
