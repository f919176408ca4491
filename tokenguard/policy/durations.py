"""Durations in policy files: ``90s``, ``15m``, ``24h``, ``30d``, ``2w`` (and ``1d12h``)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"(?:\d+[smhdw])+")
# Beyond this, timedelta arithmetic with "now" overflows; no token lives 1,000 years.
_MAX_SECONDS = 1000 * 365 * 86400

#: Shown in every "bad duration" message.
DURATION_HELP = "a number and a unit s, m, h, d or w, e.g. 90s, 15m, 24h, 30d, 2w or 1d12h"


def parse_duration(text: str) -> timedelta:
    """Parse a policy duration; raise ``ValueError`` saying what is wrong.

    Units: ``s`` seconds, ``m`` minutes, ``h`` hours, ``d`` days, ``w`` weeks. Parts may be
    combined largest first without spaces (``1d12h``). Surrounding whitespace is ignored.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a duration string ({DURATION_HELP})")
    value = text.strip()
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"{text!r} is not a duration ({DURATION_HELP})")
    seconds = 0
    last_unit = None
    order = "wdhms"
    for number, unit in _PART.findall(value):
        if last_unit is not None and order.index(unit) <= order.index(last_unit):
            raise ValueError(f"{text!r}: units must appear once each, largest first")
        last_unit = unit
        seconds += int(number) * _UNITS[unit]
        if seconds > _MAX_SECONDS:
            raise ValueError(f"{text!r} is absurdly long (over 1,000 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest policy-file spelling of ``value``: ``timedelta(hours=36)`` -> ``1d12h``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    if seconds % _UNITS["w"] == 0:
        return f"{seconds // _UNITS['w']}w"
    parts = []
    for unit in "dhms":
        size = _UNITS[unit]
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)
