"""The few standard-library names Python 3.11 added that Privastead uses, for Python 3.10.

Python 3.10 is the stock Python of Ubuntu 22.04. Each name comes from the standard library on
3.11 and later, and from a maintained backport on 3.10 (declared with a ``python_version``
marker in pyproject.toml): ``tomli`` is what became ``tomllib``; ``taskgroup`` backports
``asyncio.TaskGroup`` and ``asyncio.timeout`` (its timeout raises the builtin ``TimeoutError``,
as 3.11's does); ``typing_extensions`` has ``Self``. ``StrEnum`` is small enough to define.

Import from here, never from the backports, so that dropping 3.10 is a change to this file.
Note for 3.10: ``asyncio.wait_for`` and aiohttp's total timeouts raise ``asyncio.TimeoutError``,
which is not yet the builtin ``TimeoutError``; catch both where they can occur
(``except (TimeoutError, asyncio.TimeoutError)``).
"""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    from asyncio import TaskGroup, timeout
    from datetime import UTC
    from enum import StrEnum
    from typing import Self

    import tomllib
else:
    from datetime import timezone

    import tomli as tomllib
    from taskgroup import TaskGroup, timeout
    from typing_extensions import Self

    UTC = timezone.utc

    class StrEnum(str, enum.Enum):
        """3.11's ``enum.StrEnum``: members are strings and print as their value."""

        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, format_spec: str) -> str:
            return str.__format__(self, format_spec)

        @staticmethod
        def _generate_next_value_(name: str, start: int, count: int, last_values: list[str]) -> str:
            return name.lower()


__all__ = ["UTC", "Self", "StrEnum", "TaskGroup", "timeout", "tomllib"]
