"""The marketing face: volume over a chosen range with spikes marked, rising topics, sentiment by
topic, sources and languages, sample posts for any topic or time bucket, and a CSV export.

Spikes are the streaming detector's records (``pipeline/trends/detector.py``), the same ones the
trend report, the incidents and ``trends.alerts`` come from, so every face tells one story; the
chart marks the buckets each spike spans. Rising topics compare the last third of the range
with the rest (``pipeline.trends.report.rising_topics``), and the range starts where the posts
do, so a long range over a short history is not mostly empty.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from classifiers.entities import redact_references
from dashboards import charts
from dashboards.auth import User, get_store, require_roles
from dashboards.i18n import label, translate
from dashboards.pages import language, render
from pipeline.records import AwareDatetime, utcnow
from pipeline.store.interface import Store
from pipeline.trends.detector import Trend, trends_between
from pipeline.trends.report import RECENT_SHARE, rising_topics, trend_report_data
from pipeline.trends.report import render as render_report

router = APIRouter(include_in_schema=False)
Marketer = Annotated[User, Depends(require_roles("marketing"))]
StoreDep = Annotated[Store, Depends(get_store)]
BUCKET_MINUTES = (5, 10, 15, 30, 60, 120, 360, 720, 1440)
MAX_BUCKETS = 72
SENTIMENTS = ("negative", "neutral", "positive")


class PostFact(BaseModel):
    """The few fields of a stored post that the charts count."""

    id: str
    created_at: AwareDatetime
    topic: str
    sentiment: str
    language: str
    source: str
    text: str

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PostFact:
        return cls(
            id=doc["_id"],
            created_at=doc["created_at"],
            topic=doc["topic_label"],
            sentiment=doc["sentiment"]["label"],
            language=doc["language"],
            source=doc["post"]["source"],
            # agents see order, parcel and ticket numbers; marketing does not need them
            text=redact_references(
                doc["redacted_text"], ((e["kind"], e["text"]) for e in doc.get("entities", ()))
            ),
        )


@dataclass
class Report:
    since: datetime
    until: datetime
    bucket: timedelta
    starts: list[datetime]
    counts: list[int]
    spikes: list[int]
    posts: list[PostFact]
    trends: list[tuple[Trend, int, int]] = field(default_factory=list)
    rising: list[dict[str, Any]] = field(default_factory=list)
    sentiment_by_topic: dict[str, Counter[str]] = field(default_factory=dict)
    sources: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)

    def bucket_of(self, when: datetime) -> int:
        return int((when - self.since) / self.bucket)

    def span_of(self, trend: Trend) -> tuple[int, int]:
        """The buckets a spike covers, from its start to its end (or its latest update)."""
        last = len(self.starts) - 1
        end = trend.ended_at or trend.updated_at
        first = min(max(self.bucket_of(trend.started_at), 0), last)
        return first, min(max(self.bucket_of(end), first), last)


def bucket_size(span: timedelta) -> timedelta:
    for minutes in BUCKET_MINUTES:
        if span / timedelta(minutes=minutes) <= MAX_BUCKETS:
            return timedelta(minutes=minutes)
    return timedelta(minutes=BUCKET_MINUTES[-1])


def build_report(store: Store, since: datetime, until: datetime) -> Report:
    docs = store.posts_between(since, until)
    posts = [PostFact.from_doc(d) for d in docs if not d.get("is_spam")]
    trends = trends_between(store, since, until)
    if posts:  # start where the data does (minute-aligned, so a page and its export agree)
        first = min(p.created_at for p in posts).astimezone(UTC)
        since = max(since, first.replace(second=0, microsecond=0))
    size = bucket_size(until - since)
    n = max(1, math.ceil((until - since) / size))
    starts = [since + size * i for i in range(n)]
    counts = [0] * n
    report = Report(since, until, size, starts, counts, [], posts)
    for p in posts:
        counts[min(report.bucket_of(p.created_at), n - 1)] += 1
    report.trends = [(t, *report.span_of(t)) for t in trends]
    report.spikes = sorted({i for _, a, b in report.trends for i in range(a, b + 1)})
    cut = until - (until - since) * RECENT_SHARE
    minutes = (until - since) / timedelta(minutes=1)
    report.rising = rising_topics(
        Counter(p.topic for p in posts if p.created_at < cut),
        Counter(p.topic for p in posts if p.created_at >= cut),
        minutes * (1 - RECENT_SHARE),
        minutes * RECENT_SHARE,
    )[:6]
    for p in posts:
        report.sentiment_by_topic.setdefault(p.topic, Counter())[p.sentiment] += 1
    report.sources = Counter(p.source for p in posts)
    report.languages = Counter(p.language for p in posts)
    return report


def time_range(hours: float, until: datetime | None) -> tuple[datetime, datetime]:
    end = (until or utcnow()).astimezone(UTC)
    # Align to the minute so that a page and its export count the same buckets.
    end = end.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(hours=hours), end


Hours = Annotated[float, Query(gt=0, le=24 * 90, description="how far back, in hours")]


@router.get("/marketing")
def marketing_page(
    request: Request,
    user: Marketer,
    store: StoreDep,
    hours: Hours = 24,
    until: datetime | None = None,
    topic: str | None = None,
    bucket: int | None = None,
    last: int | None = None,
) -> Response:
    since, end = time_range(hours, until)
    report = build_report(store, since, end)
    n = len(report.starts)
    last = bucket if last is None else last
    if bucket is not None and not 0 <= bucket <= (last or 0) < n:
        raise HTTPException(422, f"bucket and last must be 0 to {n - 1} for this range")
    lang = language(request)
    mix = report.sentiment_by_topic
    topics = sorted(mix, key=lambda t: -sum(mix[t].values()))
    samples = [
        p
        for p in report.posts
        if (topic is None or p.topic == topic)
        and (bucket is None or bucket <= report.bucket_of(p.created_at) <= (last or bucket))
    ]
    return render(
        request,
        "marketing.html",
        user,
        active="marketing",
        report=report,
        hours=hours,
        until=until,
        topic=topic,
        bucket=bucket,
        last=last,
        samples=samples[-20:][::-1] if (topic or bucket is not None) else [],
        volume_svg=charts.volume_chart(
            report.starts, report.counts, report.spikes, translate(lang, "volume")
        ),
        sentiment_svg=charts.stacked_bars(
            topics,
            {s: [report.sentiment_by_topic[t][s] for t in topics] for s in SENTIMENTS},
            translate(lang, "sentiment_by_topic"),
            "sentiment",
            names={s: label(lang, "sentiment", s) for s in SENTIMENTS},
            ticks={t: label(lang, "topic", t) for t in topics},
        )
        if topics
        else "",
        sources_svg=charts.bars(
            list(report.sources),
            list(report.sources.values()),
            translate(lang, "source"),
            "sources",
            ticks={s: label(lang, "source", s) for s in report.sources},
        )
        if report.sources
        else "",
        languages_svg=charts.bars(
            list(report.languages),
            list(report.languages.values()),
            translate(lang, "language"),
            "languages",
            ticks={x: label(lang, "language", x) for x in report.languages},
        )
        if report.languages
        else "",
    )


@router.get("/marketing/export.csv")
def export_csv(
    user: Marketer, store: StoreDep, hours: Hours = 24, until: datetime | None = None
) -> Response:
    """Posts per bucket and topic, with sentiment counts and whether the bucket is a spike."""
    since, end = time_range(hours, until)
    report = build_report(store, since, end)
    rows: dict[tuple[int, str], Counter[str]] = {}
    for p in report.posts:
        rows.setdefault((report.bucket_of(p.created_at), p.topic), Counter())[p.sentiment] += 1
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["bucket_start", "topic", "posts", *SENTIMENTS, "spike"])
    for (i, topic), mix in sorted(rows.items()):
        i = min(i, len(report.starts) - 1)
        writer.writerow(
            [
                report.starts[i].isoformat(),
                topic,
                sum(mix.values()),
                *(mix[s] for s in SENTIMENTS),
                int(i in report.spikes),
            ]
        )
    name = f"trends-{since:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/marketing/report.{fmt}")
def trend_report(
    user: Marketer,
    store: StoreDep,
    fmt: Annotated[str, Path(pattern="^(html|pdf|png|csv)$")],
    hours: Hours = 24,
    until: datetime | None = None,
) -> Response:
    """The trend report (``triage report trends``) for the range on screen."""
    since, end = time_range(hours, until)
    body = render_report(trend_report_data(store, since, end), fmt)
    media = {"html": "text/html", "pdf": "application/pdf", "png": "image/png", "csv": "text/csv"}
    name = f"trend-report-{since:%Y%m%dT%H%M}-{end:%Y%m%dT%H%M}.{fmt}"
    disposition = "inline" if fmt in ("html", "png") else "attachment"
    return Response(
        body,
        media_type=media[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="{name}"'},
    )
