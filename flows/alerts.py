"""The alerts flow: the notifier of ``triage alerts run``, as a Prefect run of bounded length.

For a deployment without a long-running ``alerts`` service: run it on a schedule and each run
tells people of what arrived on trends.alerts since the last one (the notifier's consumer group
remembers where it stopped, and the store what was already sent, so overlapping or repeated runs
tell nobody twice). The counts go into a table artifact.
"""

from __future__ import annotations

import threading
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.bus import open_bus
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.trends.alerts import Notifier, channels_from_settings


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def notify(seconds: float, idle_s: float) -> dict[str, Any]:
    cfg = Settings.from_environment()
    channels = channels_from_settings(cfg)
    store = open_store(cfg)
    store.ensure_schema()
    notifier = Notifier(open_bus(cfg), store, cfg, channels)
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        totals = notifier.run(stop, idle_exit_s=idle_s)
    finally:
        timer.cancel()
        notifier.close()
        store.close()
    return {
        "read": totals.read,
        "spikes_told": totals.sent,
        "held_back": totals.held_back,
        "unreadable": totals.unreadable,
        **{f"by_{name}": n for name, n in sorted(totals.by_channel.items())},
    }


@flow(name="alerts", **RUN_HOOKS)
def alerts(seconds: float = 240.0, idle_s: float = 20.0) -> dict[str, Any]:
    """Tell people of new and grown spikes on trends.alerts for at most ``seconds``, stopping
    early after ``idle_s`` without any."""
    log = get_run_logger()
    counts = notify(seconds, idle_s)
    create_table_artifact(
        key="alerts-sent",
        table=[counts],
        description="alerts: trend updates read, spikes told (each channel once), held back",
    )
    log.info("alerts: %(read)s read, %(spikes_told)s told, %(held_back)s held back", counts)
    return counts
