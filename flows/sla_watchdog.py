"""The SLA watchdog flow, every minute: one pass of the queue's SLA sweep.

The rules live in the queue (``AgentQueue.sla_sweep``): expired leases and finished snoozes go
back to the queue, open items are re-scored as they age, and warnings and breaches are recorded
once each in the audit log. The flow runs the pass, logs every breach as a warning (so it shows
in Prefect's logs and can drive an automation) and records what it did as a table artifact.

The same minute places the phone callbacks whose window has opened
(``Escalations.place_due_callbacks``): a callback is promised for a window, so it waits for it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.outbound.channels import phone_from_settings
from pipeline.queue.agent_queue import AgentQueue
from pipeline.queue.escalation import Escalations
from pipeline.queue.sla import SlaPolicy
from pipeline.settings import Settings
from pipeline.store import open_store


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def sweep(spikes: list[str]) -> dict[str, Any]:
    cfg = Settings.from_environment()
    store = open_store(cfg)
    try:
        store.ensure_schema()
        queue = AgentQueue(
            store,
            lease=timedelta(minutes=cfg.lease_minutes),
            sla=SlaPolicy.from_settings(cfg),
        )
        report = queue.sla_sweep(spikes=spikes)
        calls = Escalations(queue, phone=phone_from_settings(cfg)).place_due_callbacks()
    finally:
        store.close()
    return {
        "released": report.released,
        "reopened": report.reopened,
        "rescored": report.rescored,
        "warnings": [list(w) for w in report.warnings],
        "breaches": [list(b) for b in report.breaches],
        "callbacks_placed": calls.placed,
        "callbacks_missed": calls.missed,
        "callbacks_failed": sorted(calls.failed),
    }


@flow(name="sla-watchdog", **RUN_HOOKS)
def sla_watchdog(spikes: list[str] | None = None) -> dict[str, Any]:
    """Release expired leases, re-score aging items, raise SLA warnings and breaches."""
    log = get_run_logger()
    done = sweep(list(spikes or []))
    for item_id, kind in done["breaches"]:
        log.warning("SLA breach: %s missed its %s target", item_id, kind.replace("_", " "))
    for escalation in done["callbacks_missed"]:
        log.warning("callback %s: its window passed before it could be placed", escalation)
    for escalation in done["callbacks_failed"]:
        log.warning("callback %s: the phone provider refused it; tried again next minute",
                    escalation)
    for item_id, kind in done["warnings"]:
        log.warning("SLA warning: %s is close to its %s target", item_id, kind.replace("_", " "))
    counts = {name: len(ids) for name, ids in done.items()}
    create_table_artifact(
        key="sla-watchdog",
        table=[counts],
        description="one SLA sweep: leases released, snoozes over, re-scored, warnings, breaches;"
        " callbacks placed, missed and failed",
    )
    log.info(
        "sla-watchdog: %(released)s released, %(rescored)s re-scored, %(warnings)s warnings, "
        "%(breaches)s breaches, %(callbacks_placed)s callbacks placed",
        counts,
    )
    return done
