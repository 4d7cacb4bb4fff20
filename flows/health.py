"""The health flow: consumer lag per partition, throughput, dead letters and store size.

It fails the run (so Prefect marks it Failed and alerts) when the workers' lag or the dead
letters that arrived since the previous run pass their thresholds. Throughput is measured
between two runs, from the triaged topic's end offsets, which the previous run left in the store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.bus.offsets import Offsets
from pipeline.errors import ConfigError, TriageError
from pipeline.records import utcnow
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.store.interface import COLLECTIONS

CHECKPOINT = "flows:health:last"


class Unhealthy(TriageError):
    """A health threshold was passed; the message names each one."""


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def measure() -> dict[str, Any]:
    cfg = Settings.from_environment()
    if not cfg.kafka_bootstrap:
        raise ConfigError("set TRIAGE_KAFKA_BOOTSTRAP: the health flow measures Kafka")
    now = utcnow()
    with Offsets(cfg.kafka_bootstrap, group=cfg.consumer_group) as offsets:
        lag = offsets.lag(cfg.topic_raw)
        triaged_end = sum(offsets.ends(cfg.topic_triaged).values()) + sum(
            offsets.ends(cfg.topic_spam).values()
        )
        dlq_ends, dlq_starts = offsets.ends(cfg.topic_dlq), offsets.beginnings(cfg.topic_dlq)
    dead_letters = sum(dlq_ends.values()) - sum(dlq_starts.values())
    store = open_store(cfg)
    try:
        store.ensure_schema()
        sizes = {name: store.count(name) for name in COLLECTIONS}
        previous = store.get_checkpoint(CHECKPOINT)
        store.set_checkpoint(
            CHECKPOINT,
            orjson.dumps(
                {"at": now, "triaged_end": triaged_end, "dlq_end": sum(dlq_ends.values())}
            ).decode(),
        )
    finally:
        store.close()
    last = orjson.loads(previous) if previous else None
    rate = new_dead = None
    if last is not None:
        elapsed = (now - datetime.fromisoformat(last["at"])).total_seconds()
        rate = round((triaged_end - last["triaged_end"]) / elapsed, 2) if elapsed > 0 else None
        new_dead = sum(dlq_ends.values()) - last["dlq_end"]
    return {
        "at": now.isoformat(),
        "group": cfg.consumer_group,
        "partitions": [
            {"topic": p.topic, "partition": p.partition, "committed": p.committed,
             "end": p.end, "lag": p.lag}
            for p in lag
        ],
        "lag": sum(p.lag for p in lag),
        "triaged_per_s": rate,
        "dead_letters": dead_letters,
        "new_dead_letters": new_dead,
        "store": sizes,
    }


def breaches(report: dict[str, Any], max_lag: int, max_new_dead_letters: int) -> list[str]:
    out = [
        f"partition {p['topic']}[{p['partition']}] lag {p['lag']:,} > {max_lag:,}"
        for p in report["partitions"]
        if p["lag"] > max_lag
    ]
    new_dead = report["new_dead_letters"]
    if new_dead is not None and new_dead > max_new_dead_letters:
        out.append(f"{new_dead:,} new dead letters since the last check > {max_new_dead_letters:,}")
    return out


def summary(report: dict[str, Any], failed: list[str]) -> str:
    rate = report["triaged_per_s"]
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| consumer group | `{report['group']}` |",
        f"| total lag | {report['lag']:,} |",
        f"| triaged per second since last check | {'n/a' if rate is None else rate} |",
        f"| dead letters on the topic | {report['dead_letters']:,} |",
        f"| new dead letters since last check | {report['new_dead_letters'] or 0:,} |",
        *(f"| store: {name} | {n:,} |" for name, n in report["store"].items()),
    ]
    verdict = "**healthy**" if not failed else "**unhealthy**: " + "; ".join(failed)
    return f"# Pipeline health at {report['at']}\n\n{verdict}\n\n" + "\n".join(rows) + "\n"


@flow(name="health", **RUN_HOOKS)
def health(max_lag: int = 10_000, max_new_dead_letters: int = 100) -> dict[str, Any]:
    """Measure the pipeline; fail the run if a partition lags or dead letters pile up."""
    log = get_run_logger()
    report = measure()
    failed = breaches(report, max_lag, max_new_dead_letters)
    create_table_artifact(
        key="health-lag",
        table=report["partitions"],
        description=f"lag of consumer group {report['group']} per partition",
    )
    create_markdown_artifact(
        key="health-report", markdown=summary(report, failed), description="pipeline health"
    )
    if failed:
        raise Unhealthy("unhealthy: " + "; ".join(failed))
    log.info("healthy: lag %s, %s dead letters", report["lag"], report["dead_letters"])
    return report
