"""Durations as people type them (``90s``, ``30m``, ``24h``, ``7d``), for settings and
the CLI alike."""

from __future__ import annotations

import re

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")


def duration_seconds(text: str, *, bare_unit: str | None = None) -> float | None:
    """The seconds in ``text`` (a number and a unit, case and spaces ignored,; a bare
    number in ``bare_unit`` when one is given), or None when it is no duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    unit = match[2] or bare_unit
    return None if unit is None else float(match[1]) * UNIT_SECONDS[unit]
