"""The backup timeline as a PNG: one row per object, days along the bottom, each backup marked by
its state, the policy's retention window shaded. A gap (a day without a mark inside the shaded
window) is what a person should see at a glance.

matplotlib with the Agg backend (no display; the worker is a server process). The geometry is
kept beside the picture (``Chart.pixel``) so a test can look at the pixels of a known spot.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.readiness.rpo import Mark

if TYPE_CHECKING:
    from bot.readiness.rpo import ObjectRpo

DPI = 100
WIDTH_IN = 11.0
ROW_IN = 0.3
MARGIN_IN = 1.6  # title, legend and the date axis
LABEL_CHARS = 34
STYLE: dict[Mark, tuple[str, str, float]] = {  # marker, colour, size
    Mark.TAKEN: ("o", "#7f7f7f", 5.0),
    Mark.VERIFIED: ("D", "#2ca02c", 6.0),
    Mark.DRILLED: ("s", "#1f77b4", 7.0),
    Mark.FAILED: ("X", "#d62728", 8.0),
}
WINDOW = "#fff2b3"  # the retention window's shade
DAY = 86400.0


@dataclass
class Chart:
    png: bytes
    width: int
    height: int
    rows: list[str]  # top to bottom
    pixel: Callable[[int, float], tuple[int, int]]  # (row index, epoch) -> (x, y) in the image


def short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else "…" + label[-(LABEL_CHARS - 1):]


def draw(objects: list[ObjectRpo], windows: dict[str, float], now: float, days: float,
         title: str) -> Chart:
    """``windows``: kind -> retention days shaded; ``days``: how far back the axis goes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    rows = [f"{o.kind} {short(o.label)}" for o in objects]
    height_in = MARGIN_IN + ROW_IN * max(1, len(rows))
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI)
    ax = fig.add_axes((3.3 / WIDTH_IN, 0.7 / height_in, 1 - 3.6 / WIDTH_IN,
                       1 - (MARGIN_IN) / height_in))
    start = now - days * DAY
    ax.set_xlim(-days, 0.0)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    for index, obj in enumerate(objects):
        keep = windows.get(obj.kind, 0.0)
        if keep > 0:
            ax.fill_between([-min(keep, days), 0.0], index - 0.42, index + 0.42, color=WINDOW,
                            linewidth=0, zorder=0)
        for mark in Mark:
            xs = [(t - now) / DAY for t, m in obj.marks if m is mark and t >= start]
            if xs:
                shape, colour, size = STYLE[mark]
                ax.plot(xs, [index] * len(xs), linestyle="none", marker=shape, color=colour,
                        markersize=size, zorder=2 if mark is not Mark.FAILED else 3)
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
    width, height = (int(round(v)) for v in fig.canvas.get_width_height())
    transform = ax.transData

    def pixel(row: int, at: float) -> tuple[int, int]:
        x, y = transform.transform(((at - now) / DAY, row))
        return int(round(x)), int(round(height - y))

    return Chart(buffer.getvalue(), width, height, rows, pixel)
