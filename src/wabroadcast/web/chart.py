"""Geometry of the sent/failed-per-minute chart, drawn by the template as inline SVG.

Pure arithmetic, so it can be tested without a browser and the template only
places rectangles at the numbers given here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from wabroadcast.web.metrics_source import MinuteCounts

WIDTH = 900
HEIGHT = 180
TOP = 34  # room above the top grid line for its label, at phone sizes too
BOTTOM = 152  # the x axis; labels go below it
BAR_GAP = 2
TICK_EVERY = 15  # minutes between x-axis labels


@dataclass(frozen=True, slots=True)
class Bar:
    minute: datetime
    sent: int
    failed: int
    x: float
    width: float
    sent_y: float
    sent_height: float
    failed_y: float
    failed_height: float


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    minutes_ago: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    axis_y: int
    top_y: int
    scale_max: int
    bars: list[Bar]
    ticks: list[Tick]
    total_sent: int
    total_failed: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value`` (and at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def minute_chart(series: Sequence[MinuteCounts]) -> Chart:
    """Stacked bars (sent below, failed on top), one per minute, oldest on the left."""
    scale_max = nice_ceiling(max((m.sent + m.failed for m in series), default=0))
    slot = WIDTH / max(len(series), 1)
    usable = BOTTOM - TOP
    bars: list[Bar] = []
    for index, point in enumerate(series):
        sent_height = usable * point.sent / scale_max
        failed_height = usable * point.failed / scale_max
        bars.append(
            Bar(
                minute=point.minute,
                sent=point.sent,
                failed=point.failed,
                x=round(index * slot + BAR_GAP / 2, 2),
                width=round(slot - BAR_GAP, 2),
                sent_y=round(BOTTOM - sent_height, 2),
                sent_height=round(sent_height, 2),
                failed_y=round(BOTTOM - sent_height - failed_height, 2),
                failed_height=round(failed_height, 2),
            )
        )
    count = len(series)
    ticks = [
        Tick(x=round((index + 0.5) * slot, 2), minutes_ago=count - 1 - index)
        for index in range(count)
        if (count - 1 - index) % TICK_EVERY == 0
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        axis_y=BOTTOM,
        top_y=TOP,
        scale_max=scale_max,
        bars=bars,
        ticks=ticks,
        total_sent=sum(m.sent for m in series),
        total_failed=sum(m.failed for m in series),
    )
