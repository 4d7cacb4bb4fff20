"""The trend-report flow, hourly and daily: the marketing trend report for the last full hour
(or day), written as HTML and kept in the store, where the dashboard finds the latest.

The report itself is ``pipeline.trends.report`` (also ``triage report trends``). Each run stores a
record ``trend_report/<period>:<start>`` with the report's data and the file it wrote, and
replaces ``trend_report/latest:<period>``, so a rerun for the same period replaces its report
instead of adding a second one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.errors import ConfigError
from pipeline.records import utcnow
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.trends.report import change_label, render, trend_report_data

PERIODS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
RECORD = "trend_report"


def last_full(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The last complete hour or day (UTC) before ``now``."""
    now = now.astimezone(UTC)
    end = now.replace(minute=0, second=0, microsecond=0)
    if period == "day":
        end = end.replace(hour=0)
    return end - PERIODS[period], end


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def write_report(period: str, since: datetime, until: datetime) -> dict[str, Any]:
    cfg = Settings.from_environment()
    store = open_store(cfg)
    try:
        store.ensure_schema()
        data = trend_report_data(store, since, until)
        folder = cfg.data_dir / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"trends-{period}-{since:%Y%m%dT%H%M}Z.html"
        path.write_bytes(render(data, "html"))
        record = {
            "period": period,
            "since": data["since"],
            "until": data["until"],
            "created_at": utcnow().isoformat(),
            "posts": data["posts"],
            "spikes": len(data["spikes"]),
            "path": str(path.resolve()),
            "data": data,
        }
        store.put_record(RECORD, f"{period}:{data['since']}", record)
        store.put_record(RECORD, f"latest:{period}", record)
    finally:
        store.close()
    return record


def summary(record: dict[str, Any]) -> str:
    data = record["data"]
    lines = [
        f"# Trend report, {record['period']} from {record['since']} to {record['until']}",
        "",
        f"{record['posts']:,} posts, {record['spikes']} spikes. Report: `{record['path']}`",
        "",
        "| rising topic | posts | before | last third | rate change |",
        "|---|---|---|---|---|",
        *(
            f"| {r['topic']} | {r['posts']} | {r['baseline']} | {r['recent']} "
            f"| {change_label(r)} |"
            for r in data["rising_topics"][:10]
        ),
    ]
    if data["spikes"]:
        lines += ["", "| spike | kind | detected | volume | growth |", "|---|---|---|---|---|"]
        lines += [
            f"| {s['what']} | {s['kind']} | {s['detected_at'][:16]} | {s['volume']} "
            f"| {s['growth']} |"
            for s in data["spikes"]
        ]
    return "\n".join(lines) + "\n"


@flow(name="trend-report", **RUN_HOOKS)
def trend_report(period: str = "hour", until: datetime | None = None) -> dict[str, Any]:
    """Write and store the trend report of the last full ``period`` (hour or day) before
    ``until`` (default: now)."""
    log = get_run_logger()
    if period not in PERIODS:
        raise ConfigError(f"unknown period {period!r}; use hour or day")
    since, end = last_full(period, until or utcnow())
    record = write_report(period, since, end)
    create_markdown_artifact(
        key=f"trend-report-{period}", markdown=summary(record), description="trend report"
    )
    log.info("trend report %s: %s posts, %s spikes -> %s",
             period, record["posts"], record["spikes"], record["path"])
    return {k: v for k, v in record.items() if k != "data"}
