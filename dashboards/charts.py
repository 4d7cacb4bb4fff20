"""Charts drawn on the server by matplotlib as inline SVG: no script, no network, text searchable.

Marked elements carry ids (matplotlib's ``gid``), so a page, a test or a screen reader can find
the spikes on the volume chart.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

matplotlib.rcParams["svg.fonttype"] = "none"  # keep text as text: it scales and can be read
matplotlib.rcParams["svg.hashsalt"] = "social-triage"  # stable ids, so a page diff is meaningful

SENTIMENT_COLOURS = {"negative": "#c62828", "neutral": "#90a4ae", "positive": "#2e7d32"}


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    with warnings.catch_warnings():
        # Text stays text in the SVG and the browser draws it with its own (CJK) fonts; only
        # matplotlib's measuring font lacks the glyphs.
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def volume_chart(
    starts: Sequence[datetime], counts: Sequence[int], spikes: Sequence[int], title: str
) -> str:
    """Posts per bucket as bars, spikes marked with red triangles (group id ``spike-markers``)."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    x = [float(v) for v in mdates.date2num(list(starts))]
    width = (x[1] - x[0]) if len(x) > 1 else 1 / 24
    ax.bar(x, counts, width=width * 0.9, align="edge", color="#5c85d6")
    ax.xaxis_date()
    if spikes:
        xs = [x[i] + width / 2 for i in spikes]
        ys = [counts[i] for i in spikes]
        markers = ax.scatter(xs, ys, marker="v", s=90, color="#c62828", zorder=3)
        markers.set_gid("spike-markers")
        for at, y in zip(xs, ys, strict=True):
            ax.annotate(str(y), (at, y), textcoords="offset points", xytext=(0, 8), ha="center")
        ax.set_ylim(top=max(counts) * 1.25)
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    fig.autofmt_xdate()
    return _svg(fig)


def stacked_bars(
    labels: Sequence[str],
    series: dict[str, Sequence[int]],
    title: str,
    gid: str,
    names: Mapping[str, str] | None = None,
    colours: Mapping[str, str] | None = None,
    ticks: Mapping[str, str] | None = None,
) -> str:
    """Horizontal stacked bars, one per label (sentiment mix per topic); ``names`` are what the
    legend shows for each series and ``ticks`` what the axis shows for each label (their
    translations; element ids keep the labels), ``colours`` override the sentiment ones."""
    fig = Figure(figsize=(6, 0.45 * max(len(labels), 2) + 1))
    ax = fig.subplots()
    left = [0] * len(labels)
    for name, values in series.items():
        colour = (colours or SENTIMENT_COLOURS).get(name, "#7e57c2")
        shown = (names or {}).get(name, name)
        drawn = ax.barh(labels, values, left=left, label=shown, color=colour)
        for label, patch in zip(labels, drawn.patches, strict=True):
            patch.set_gid(f"{gid}-{label}-{name}")
        left = [a + b for a, b in zip(left, values, strict=True)]
    _tick_names(ax, labels, ticks)
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def bars(
    labels: Sequence[str],
    values: Sequence[int],
    title: str,
    gid: str,
    ticks: Mapping[str, str] | None = None,
) -> str:
    fig = Figure(figsize=(4.5, 0.4 * max(len(labels), 2) + 1))
    ax = fig.subplots()
    drawn = ax.barh(labels, values, color="#5c85d6")
    for label, patch in zip(labels, drawn.patches, strict=True):
        patch.set_gid(f"{gid}-{label}")
    _tick_names(ax, labels, ticks)
    ax.invert_yaxis()
    ax.set_title(title, loc="left")
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _tick_names(ax: Axes, labels: Sequence[str], ticks: Mapping[str, str] | None) -> None:
    """Show each categorical label as ``ticks`` names it (its translation)."""
    if ticks:
        ax.set_yticks(range(len(labels)), [ticks.get(label, label) for label in labels])
