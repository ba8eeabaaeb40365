"""The backup timeline as a PNG: one row per object, days along the bottom, each backup marked by
its state, the policy's retention window shaded. A gap (a day without a mark inside the shaded
window) is what a person should see at a glance.

matplotlib with the Agg backend (no display; the worker is a server process). The geometry is
kept beside the picture (``Geometry``) so a test can look at the pixels of a known spot.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.readiness.rpo import Mark

if TYPE_CHECKING:
    from bot.readiness.rpo import ObjectRpo

DPI = 100
WIDTH_IN = 11.0
ROW_IN = 0.3
LEFT_IN, RIGHT_IN, TOP_IN, BOTTOM_IN = 3.3, 0.3, 0.9, 0.7  # room for labels, legend, axis
MARGIN_IN = TOP_IN + BOTTOM_IN
LABEL_CHARS = 34
STYLE: dict[Mark, tuple[str, str, float]] = {  # marker, colour, size
    Mark.TAKEN: ("o", "#7f7f7f", 5.0),
    Mark.VERIFIED: ("D", "#2ca02c", 6.0),
    Mark.DRILLED: ("s", "#1f77b4", 7.0),
    Mark.FAILED: ("X", "#d62728", 8.0),
}
WINDOW = "#fff2b3"  # the retention window's shade
DAY = 86400.0


@dataclass(frozen=True)
class Geometry:
    """Where things are in the picture, from the row count, the days shown and the time drawn:
    the same numbers place the axes when drawing and find a spot in the pixels afterwards."""

    rows: int
    days: float
    now: float

    @property
    def width(self) -> int:
        return int(round(WIDTH_IN * DPI))

    @property
    def height_in(self) -> float:
        return MARGIN_IN + ROW_IN * max(1, self.rows)

    @property
    def height(self) -> int:
        return int(round(self.height_in * DPI))

    @property
    def axes(self) -> tuple[float, float, float, float]:
        """left, bottom, width, height as fractions of the figure."""
        return (LEFT_IN / WIDTH_IN, BOTTOM_IN / self.height_in,
                1 - (LEFT_IN + RIGHT_IN) / WIDTH_IN, 1 - (BOTTOM_IN + TOP_IN) / self.height_in)

    def pixel(self, row: int, at: float) -> tuple[int, int]:
        """(x, y) in the image (y down) of row ``row`` at epoch ``at``."""
        left, bottom, width, height = self.axes
        fx = left + width * ((at - self.now) / DAY + self.days) / self.days
        top = bottom + height
        fy = top - height * (row + 0.5) / max(1, self.rows)
        return int(round(fx * self.width)), int(round((1 - fy) * self.height))


@dataclass
class Chart:
    png: bytes
    geometry: Geometry
    rows: list[str]  # top to bottom


def short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else "…" + label[-(LABEL_CHARS - 1):]


def draw(objects: list[ObjectRpo], windows: dict[str, float], now: float, days: float,
         title: str) -> Chart:
    """``windows``: kind -> retention days shaded; ``days``: how far back the axis goes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows = [f"{o.kind} {short(o.label)}" for o in objects]
    geometry = Geometry(len(rows), days, now)
    fig = Figure(figsize=(WIDTH_IN, geometry.height_in), dpi=DPI)
    ax = fig.add_axes(geometry.axes)
    height_in = geometry.height_in
    start = now - days * DAY
    ax.set_xlim(-days, 0.0)
    ax.set_ylim(max(1, len(rows)) - 0.5, -0.5)
    # One artist per mark and one for every shaded window: a few hundred rows draw in a blink.
    shades = []
    points: dict[Mark, tuple[list[float], list[int]]] = {m: ([], []) for m in Mark}
    for index, obj in enumerate(objects):
        keep = min(windows.get(obj.kind, 0.0), days)
        if keep > 0:
            shades.append([(-keep, index - 0.42), (0.0, index - 0.42), (0.0, index + 0.42),
                           (-keep, index + 0.42)])
        for at, mark in obj.marks:
            if at >= start:
                points[mark][0].append((at - now) / DAY)
                points[mark][1].append(index)
    ax.add_collection(PolyCollection(shades, facecolors=WINDOW, edgecolors="none", zorder=0))
    for mark, (xs, ys) in points.items():
        if xs:
            shape, colour, size = STYLE[mark]
            ax.plot(xs, ys, linestyle="none", marker=shape, color=colour, markersize=size,
                    zorder=2 if mark is not Mark.FAILED else 3)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("days before now (UTC)")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6, zorder=1)
    handles = [Line2D([], [], linestyle="none", marker=STYLE[m][0], color=STYLE[m][1],
                      label=m.value) for m in Mark]
    handles.append(Line2D([], [], color=WINDOW, linewidth=8, label="policy window"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, 1 - 0.35 / height_in))
    fig.suptitle(title, fontsize=10, y=1 - 0.08 / height_in)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return Chart(buffer.getvalue(), geometry, rows)
