"""Times on the command line: ISO 8601 (local unless it names a zone), relative to now
(``-10m``, ``-2h``, ``-1d``, ``-90s``), ``now``; and days (``today``, ``yesterday``,
``2026-12-04``)."""

from __future__ import annotations

import datetime
import re

_RELATIVE = re.compile(r"-(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
FORMS = "ISO 8601 like 2026-12-04T14:30 (local time) or 2026-12-04T13:30Z, -10m, -2h, -1d or now"


def parse_time(text: str, now: float) -> float:
    """Unix seconds for ``text``; ``ValueError`` naming the forms that work."""
    value = text.strip()
    if value == "now":
        return now
    relative = _RELATIVE.fullmatch(value)
    if relative is not None:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise ValueError(f"cannot read the time {text!r}: use {FORMS}") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.timestamp()


def parse_day(text: str, today: datetime.date) -> datetime.date:
    value = text.strip()
    if value == "today":
        return today
    if value == "yesterday":
        return today - datetime.timedelta(days=1)
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read the day {text!r}: use YYYY-MM-DD, today or yesterday"
        ) from None


__all__ = ["FORMS", "parse_day", "parse_time"]
