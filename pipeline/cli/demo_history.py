"""The demo's past and its clockwork: cases agents already resolved, the operators' templates and
knowledge, and the SLA watchdog running while the demo serves.

Resolved cases go through the queue as an agent's would (claim, reply into the demo outbox,
close, each audited), so assist's similar cases, the customer history and the KPIs read real
records, not fixtures.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta

from flows.run_log import FLOW_RUNS
from pipeline.assist.assistant import Assistant, fill, post_fields
from pipeline.cli.demo_story import ARTICLES, TEMPLATES
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import QueueItem, utcnow
from pipeline.trends.incidents import incidents

AGENTS = {"en": ("ann", "bo"), "zh": ("chen",)}
RESOLVED_SHARE = 0.55
SWEEP_EVERY_S = 60.0


def seed_assist(assistant: Assistant) -> None:
    for template in TEMPLATES:
        assistant.save_template(template, by="operator")
    for article in ARTICLES:
        assistant.save_article(article, by="operator")


def resolve_past(queue: AgentQueue, assistant: Assistant, now: datetime, seed: int = 24) -> int:
    """Close a share of the cases older than an hour as the agents on shift did, 5-40 minutes
    after they were posted, with their template's reply; how many were closed."""
    rng = random.Random(seed)
    cutoff = now - timedelta(hours=1)
    closed = 0
    for item in queue.store.list_queue("open", limit=100_000):
        if item.post_created_at > cutoff or rng.random() > RESOLVED_SHARE:
            continue
        reply = past_reply(assistant, item)
        if reply is None:
            continue
        agent = rng.choice(AGENTS.get(item.language, AGENTS["en"]))
        at = item.post_created_at + timedelta(minutes=rng.uniform(5, 40))
        taken = queue.take(item, agent, at, {"demo": "history"})
        if taken is not None:
            queue.reply_and_close(taken, agent, reply, at)
            closed += 1
    return closed


def past_reply(assistant: Assistant, item: QueueItem) -> str | None:
    """The first template of the item's topic and language, filled from its post."""
    for template in assistant.templates(item.topic, item.language):
        text, _ = fill(template, post_fields(assistant.store.get_post(item.id)))
        return text
    return None


def watchdog(queue: AgentQueue, stop: threading.Event) -> threading.Thread:
    """The SLA watchdog's sweep every minute (what the ``sla-watchdog`` flow does in
    production), the topics of open incidents counting as spikes."""

    def sweep_until_stopped() -> None:
        runs = 0
        while True:
            started = utcnow()
            spikes = {t for i in incidents(queue.store, "open") for t in i.topics}
            report = queue.sla_sweep(spikes=spikes)
            runs += 1
            # the run log the operator page reads, as the flow's hook would write it
            queue.store.put_record(FLOW_RUNS, "sla-watchdog", {
                "flow": "sla-watchdog",
                "run": f"demo-sweep-{runs}",
                "state": "Completed",
                "failed": False,
                "message": f"{len(report.breaches)} breaches, {len(report.warnings)} warnings",
                "started_at": started.isoformat(),
                "ended_at": utcnow().isoformat(),
            })
            if stop.wait(SWEEP_EVERY_S):
                return

    thread = threading.Thread(target=sweep_until_stopped, name="sla-watchdog", daemon=True)
    thread.start()
    return thread
