"""The trend report for marketing: what rose, when, how people felt, where it came from.

``trend_report_data`` reads the stored count buckets (summed over every worker) and trend records
for a time range and returns plain JSON-able data: the dashboard serves it as it is, and
``render`` draws it with matplotlib as HTML, PDF, PNG or CSV. Spikes are the streaming
detector's records, the one truth the marketing page, incidents and ``trends.alerts`` share.

Rising topics compare the rate of the last third of the data against the rate of the rest
(``rising_topics``, shared with the marketing page); a topic with no posts in that baseline is
"new" rather than an infinite percentage. The range starts where the data starts, so a chart is
never mostly empty, and the HTML report fits a 1,280 px window.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from pipeline.errors import ConfigError
from pipeline.store.interface import Store
from pipeline.trends.detector import bucket_counts, minute_time, trends_between

FORMATS = ("html", "pdf", "png", "csv")
PNG_SIZE = (1200, 800)  # pixels: figsize (12, 8) at 100 dpi, inside a 1,280 px window
BIN_CHOICES = (1, 5, 15, 60, 360, 1440)
SENTIMENT_COLOURS = {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}
RECENT_SHARE = 1 / 3  # rising topics: the last third of the range against the rest


def rising_topics(
    baseline: Counter[str], recent: Counter[str], baseline_minutes: float, recent_minutes: float
) -> list[dict[str, Any]]:
    """Each topic's rate in the recent window against its rate in the baseline, as a growth
    (0.5 is +50%), or ``None`` with ``new`` set where the baseline has none of it; newest and
    fastest first."""
    rows: list[dict[str, Any]] = []
    for topic in sorted(set(baseline) | set(recent)):
        before, after = baseline[topic], recent[topic]
        growth = None
        if before and baseline_minutes > 0 and recent_minutes > 0:
            growth = round((after / recent_minutes) / (before / baseline_minutes) - 1, 3)
        rows.append(
            {
                "topic": topic,
                "posts": before + after,
                "baseline": before,
                "recent": after,
                "new": before == 0,
                "growth": growth,
            }
        )
    rows.sort(key=lambda r: (not r["new"], -(r["growth"] or 0.0), -r["recent"], r["topic"]))
    return rows


def change_label(row: dict[str, Any]) -> str:
    return "new" if row["growth"] is None else f"{100 * row['growth']:+.0f}%"


def trend_report_data(store: Store, since: datetime, until: datetime) -> dict[str, Any]:
    """Everything the report shows, as JSON-able data (times as ISO 8601 strings)."""
    if since >= until:
        raise ConfigError("--since must be before --until")
    buckets = bucket_counts(store, since, until)
    first = int(since.timestamp() // 60)
    end = math.ceil(until.timestamp() / 60)
    if buckets:  # the chart starts where the data does, not hours of nothing before it
        first = max(first, min(buckets))
    span = max(end - first, 1)
    step = next((b for b in BIN_CHOICES if span / b <= 240), BIN_CHOICES[-1])
    volume: Counter[int] = Counter()
    parts: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    cut = end - span * RECENT_SHARE
    totals: Counter[str] = Counter()
    for minute, counts in buckets.items():
        volume[(minute - first) // step] += counts.get("all", 0)
        meta = {k: c for k, c in counts.items() if "=" in k}
        totals.update(meta)
        parts[int(minute >= cut)].update(meta)
    n_bins = math.ceil(span / step)
    trends = trends_between(store, since, until)
    before, after = (
        Counter({k[6:]: n for k, n in p.items() if k.startswith("topic=")}) for p in parts
    )
    rising = rising_topics(before, after, span * (1 - RECENT_SHARE), span * RECENT_SHARE)
    sentiment: dict[str, dict[str, int]] = {}
    for key, n in totals.items():
        if key.startswith("sent="):
            topic, label = key[5:].split("|", 1)
            sentiment.setdefault(topic, {})[label] = n
    return {
        "since": since.astimezone(UTC).isoformat(),
        "until": until.astimezone(UTC).isoformat(),
        "bin_minutes": step,
        "posts": sum(c.get("all", 0) for c in buckets.values()),
        "volume": [
            {"at": minute_time(first + i * step).isoformat(), "posts": volume.get(i, 0)}
            for i in range(n_bins)
        ],
        "spikes": [
            {
                "id": t.id,
                "what": t.what,
                "kind": t.kind,
                "related": t.related,
                "started_at": t.started_at.isoformat(),
                "detected_at": t.detected_at.isoformat(),
                "status": t.status,
                "growth": t.growth,
                "volume": t.volume,
                "peak_volume": t.peak_volume,
                "sentiment_mix": t.sentiment_mix,
                "top_authors": [a.model_dump() for a in t.top_authors],
                "sample_posts": [p.model_dump() for p in t.sample_posts],
            }
            for t in sorted(trends, key=lambda t: t.detected_at)
        ],
        "rising_topics": rising,
        "sentiment_by_topic": sentiment,
        "share_by_source": share(totals, "source="),
        "share_by_language": share(totals, "lang="),
    }


def share(totals: Counter[str], prefix: str) -> dict[str, float]:
    picked = {k[len(prefix):]: n for k, n in totals.items() if k.startswith(prefix)}
    total = sum(picked.values()) or 1
    return {k: round(n / total, 4) for k, n in sorted(picked.items(), key=lambda kv: -kv[1])}


# ------------------------------------------------------------------ charts


def figure(data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(PNG_SIZE[0] / 100, PNG_SIZE[1] / 100), dpi=100, layout="constrained")
    fig.suptitle(
        f"Trends {data['since'][:16].replace('T', ' ')} to {data['until'][:16].replace('T', ' ')}"
        f" UTC: {data['posts']:,} posts, {len(data['spikes'])} spikes",
        fontsize=15,
    )
    grid = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(grid[0, :])
    times = [float(date2num(datetime.fromisoformat(v["at"]))) for v in data["volume"]]
    ax.plot(times, [v["posts"] for v in data["volume"]], color="#1f77b4", lw=1.5)
    ax.set_title(f"Posts per {data['bin_minutes']} min; red lines: spikes detected")
    ax.set_ylabel("posts")
    for s in data["spikes"][:30]:
        at = float(date2num(datetime.fromisoformat(s["detected_at"])))
        ax.axvline(at, color="#d62728", lw=1, alpha=0.7)
        ax.annotate(s["what"], (at, 1), xycoords=("data", "axes fraction"), rotation=90,
                    va="top", ha="right", fontsize=8, color="#d62728")
    ax.xaxis_date()
    if times:
        ax.set_xlim(times[0], times[-1])
    ax.grid(alpha=0.3)

    ax = fig.add_subplot(grid[1, 0])
    rising = [r for r in data["rising_topics"] if r["growth"] is not None][:8][::-1]
    ax.barh([r["topic"] for r in rising], [100 * r["growth"] for r in rising],
            color=["#2ca02c" if r["growth"] >= 0 else "#d62728" for r in rising])
    new = [r["topic"] for r in data["rising_topics"] if r["growth"] is None]
    ax.set_title("Topics: last third vs the rest (% rate)"
                 + (f"\nnew: {', '.join(new[:4])}" if new else ""), fontsize=10)
    ax.axvline(0, color="black", lw=0.8)

    ax = fig.add_subplot(grid[1, 1])
    topics = sorted(data["sentiment_by_topic"])
    left = [0.0] * len(topics)
    for label, colour in SENTIMENT_COLOURS.items():
        fractions = []
        for t in topics:
            mix = data["sentiment_by_topic"][t]
            fractions.append(100 * mix.get(label, 0) / max(sum(mix.values()), 1))
        ax.barh(topics, fractions, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, fractions, strict=True)]
    ax.set_title("Sentiment by topic (% of posts)")
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right", fontsize=8)

    ax = fig.add_subplot(grid[1, 2])
    rows = [("source", data["share_by_source"]), ("language", data["share_by_language"])]
    for y, (name, shares) in enumerate(rows):
        start = 0.0
        for i, (k, v) in enumerate(list(shares.items())[:8]):
            ax.barh(name, 100 * v, left=start, color=f"C{i}")
            if v > 0.06:
                ax.text(start + 50 * v, y, f"{k}\n{100 * v:.0f}%", ha="center", va="center",
                        fontsize=8, color="white")
            start += 100 * v
    ax.set_title("Share by source and language (%)")
    ax.set_xlim(0, 100)
    return fig


def render(data: dict[str, Any], fmt: str) -> bytes:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return to_csv(data)
    fig = figure(data)
    out = io.BytesIO()
    if fmt == "png":
        fig.savefig(out, format="png", dpi=100)
        return out.getvalue()
    if fmt == "pdf":
        with PdfPages(out) as pdf:
            pdf.savefig(fig)
            pdf.savefig(spike_table(data))
        return out.getvalue()
    fig.savefig(out, format="png", dpi=100)
    return to_html(data, out.getvalue()).encode()


def spike_table(data: dict[str, Any]) -> Figure:
    fig = Figure(figsize=(11.7, 8.3), dpi=100)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title("Spikes detected", fontsize=14, loc="left")
    rows = [
        [s["what"], s["detected_at"][:16].replace("T", " "), s["status"], str(s["peak_volume"]),
         f"{s['growth']:.1f}x", ", ".join(f"{k} {v}" for k, v in s["sentiment_mix"].items())]
        for s in data["spikes"][:30]
    ] or [["no spikes in this period", "", "", "", "", ""]]
    table = ax.table(
        cellText=rows,
        colLabels=["what", "detected (UTC)", "status", "peak posts / 15 min", "growth",
                   "sentiment"],
        loc="upper left",
        cellLoc="left",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    return fig


def to_csv(data: dict[str, Any]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "name", "time", "value", "detail"])
    for v in data["volume"]:
        w.writerow(["volume", "posts", v["at"], v["posts"], ""])
    for s in data["spikes"]:
        w.writerow(["spike", s["what"], s["detected_at"], s["peak_volume"],
                    f"{s['status']}; growth {s['growth']}x; started {s['started_at']}"])
    for r in data["rising_topics"]:
        w.writerow(["rising_topic", r["topic"], "", change_label(r),
                    f"{r['recent']} recent, {r['baseline']} before"])
    for topic, mix in data["sentiment_by_topic"].items():
        for label, n in mix.items():
            w.writerow(["sentiment", f"{topic}/{label}", "", n, ""])
    for name in ("share_by_source", "share_by_language"):
        for k, v in data[name].items():
            w.writerow([name, k, "", v, ""])
    return out.getvalue().encode()


def to_html(data: dict[str, Any], png: bytes) -> str:
    e = html.escape
    spikes = "".join(
        f"<tr><td>{e(s['what'])}</td><td>{e(s['detected_at'][:16])}</td><td>{e(s['status'])}"
        f"</td><td>{s['peak_volume']}</td><td>{s['growth']:.1f}x</td><td>"
        + e(", ".join(f"{k} {v}" for k, v in s["sentiment_mix"].items()))
        + "</td><td>"
        + "<br>".join(e(p["text"]) for p in s["sample_posts"][:3])
        + "</td></tr>"
        for s in data["spikes"]
    )
    topics = "".join(
        f"<tr><td>{e(r['topic'])}</td><td>{r['posts']}</td><td>{change_label(r)}</td></tr>"
        for r in data["rising_topics"]
    )
    img = base64.b64encode(png).decode()
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Trends {e(data['since'][:10])} to {e(data['until'][:10])}</title>"
        "<style>body{font-family:sans-serif;margin:1em auto;max-width:1240px;padding:0 8px}"
        "img{max-width:100%;height:auto}table{border-collapse:collapse;max-width:100%}"
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
        "overflow-wrap:anywhere}</style></head><body>"
        f"<h1>What rose between {e(data['since'][:16])} and {e(data['until'][:16])} UTC</h1>"
        f"<p>{data['posts']:,} posts; {len(data['spikes'])} spikes detected.</p>"
        f"<img alt='trend charts' src='data:image/png;base64,{img}' width='{PNG_SIZE[0]}'>"
        "<h2>Spikes</h2><table id='spikes'><tr><th>what</th><th>detected (UTC)</th>"
        "<th>status</th><th>peak posts / 15 min</th><th>growth</th><th>sentiment</th>"
        f"<th>what people said</th></tr>{spikes}</table>"
        "<h2>Topics</h2><table id='topics'><tr><th>topic</th><th>posts</th>"
        f"<th>rate, last third vs the rest</th></tr>{topics}</table></body></html>"
    )
