"""The worker: consume a micro-batch, triage it, write it, publish it, then commit.

The order is what makes a crash harmless. Offsets are committed only after the store writes and the
producer flush have succeeded, and every write is idempotent by post id, so a worker killed at any
point redelivers at most the two batches it had in hand (one being written, the next being
triaged; see ``run``), which land exactly as they would have the first time.

Errors are data: a record that cannot be parsed, or that makes a stage raise, goes to the
dead-letter topic with its original bytes and the reason, and the batch goes on without it.
Transient failures of the store or the broker are retried a bounded number of times with backoff;
after that the worker rewinds to the start of the batch, pauses and tries again. Nothing is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from classifiers.registry import Registry
from classifiers.triager import MODEL_NAME, Triager
from pipeline.assist.automation import Automation
from pipeline.bus.idle import IdleClock
from pipeline.bus.interface import Bus, Message
from pipeline.bus.kafka_records import Rejected, dead_letter, dead_letter_record, decode_post
from pipeline.errors import TransientError
from pipeline.records import DeadLetter, Post, TriagedPost, utcnow
from pipeline.settings import Settings
from pipeline.store.interface import Store, WriteResult
from pipeline.trends.detector import Trend, TrendDetector
from pipeline.trends.incidents import Candidate, link_incidents

log = logging.getLogger(__name__)
T = TypeVar("T")
RECENT_ITEMS = 10_000


@dataclass
class BatchStats:
    consumed: int = 0
    posts: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # tombstones: no bytes to triage or to keep
    spam: int = 0
    stored_new: int = 0
    queued_new: int = 0
    automated: int = 0
    seconds: float = 0.0
    topics: dict[str, int] = field(default_factory=dict)

    def add(self, other: BatchStats) -> None:
        for name in (
            "consumed",
            "posts",
            "duplicates",
            "dead_lettered",
            "skipped",
            "spam",
            "stored_new",
            "queued_new",
            "automated",
            "seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for topic, n in other.topics.items():
            self.topics[topic] = self.topics.get(topic, 0) + n


@dataclass
class Triaged:
    """A batch decoded and triaged (``Worker.prepare``), waiting for its writes."""

    messages: Sequence[Message]
    triaged: list[TriagedPost]
    dead: list[DeadLetter]
    stats: BatchStats
    now: datetime
    started: float  # perf_counter at prepare: a batch's time runs from there to its commit


class Worker:
    def __init__(
        self,
        bus: Bus,
        store: Store,
        triager: Triager,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        automation: Automation | None = None,
        models: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.automation = automation
        self.store = store
        self.triager = triager
        self.clock = clock
        bus.ensure_topics(
            [
                settings.topic_raw,
                settings.topic_triaged,
                settings.topic_dlq,
                settings.topic_alerts,
                settings.topic_spam,
            ]
        )
        self.consumer = bus.consumer(settings.consumer_group, [settings.topic_raw])
        self.producer = bus.producer(
            transactional_id(settings) if settings.kafka_transactions else None
        )
        # On Kafka every worker of the group counts its partitions and one of them (the lease
        # holder) tests the sum of all, so a spike split over partitions is seen whole, once.
        self.trends = (
            TrendDetector(
                store,
                publish=self._publish_trend,
                shared=settings.kafka_bootstrap is not None,
            )
            if settings.trends_enabled
            else None
        )
        # the posts a new or grown spike may group into its incident, when this worker sees
        # every post (one worker on the in-process bus); on Kafka they are read from the store
        self._recent: deque[Candidate] = deque(maxlen=RECENT_ITEMS)
        self._published: set[str] = set()  # trends sent to the alerts topic in this batch

    # ------------------------------------------------------------ one batch

    def poll_batch(self) -> list[Message]:
        """Up to ``batch_size`` messages, waiting at most ``batch_wait_ms`` once one arrived."""
        size = self.settings.batch_size
        wait_s = self.settings.batch_wait_ms / 1000
        batch = self.consumer.poll(size, timeout_s=max(wait_s, 0.05))
        deadline = time.monotonic() + wait_s
        while batch and len(batch) < size and (left := deadline - time.monotonic()) > 0:
            more = self.consumer.poll(size - len(batch), timeout_s=left)
            if not more:
                break
            batch.extend(more)
        return batch

    def follow_models(self) -> None:
        """Between batches: if another process made another bundle version active (``triage
        models use / promote / rollback``), load it, so no worker needs a restart. One read of
        the registry's index a batch."""
        if self.models is None:
            return
        try:
            active = self.models.active(MODEL_NAME)
        except TransientError as exc:
            # The bundle in hand still triages; the batch's writes meet the outage (if it is
            # one) and are retried there, and the next batch asks again.
            log.warning(
                "model registry unreadable (%s); triaging with %s", exc, self.triager.version
            )
            return
        if active is not None and active != self.triager.version:
            self.triager = Triager.from_registry(self.models, self.triager.products)
            log.info("now triaging with %s:%s", MODEL_NAME, self.triager.version)

    def process(self, messages: Sequence[Message]) -> BatchStats:
        """One batch, start to end: triage, write, then publish and commit."""
        batch = self.prepare(messages)
        return self.finish(batch, self.write(batch))

    def prepare(self, messages: Sequence[Message]) -> Triaged:
        """Decode and triage a batch: everything before its writes, none of it seen outside."""
        self.follow_models()
        started = time.perf_counter()
        now = self.clock()
        stats = BatchStats(consumed=len(messages))
        posts: list[Post] = []
        sources: dict[str, Message] = {}
        dead: list[DeadLetter] = []
        for m in messages:
            post = decode_post(m)
            if isinstance(post, Rejected):
                if post.skip:
                    stats.skipped += 1
                    log.warning("skipped %s: %s", _where(m), post.reason)
                else:
                    log.warning("dead-lettering %s: %s", _where(m), post.reason)
                    dead.append(dead_letter(m, "parse", post.reason, now, post.post_id))
                continue
            if post.id in sources:
                stats.duplicates += 1
                continue
            sources[post.id] = m
            posts.append(post)
        triaged = self._triage(posts, sources, dead, now)
        return Triaged(messages, triaged, dead, stats, now, started)

    def write(self, batch: Triaged) -> WriteResult:
        """The batch's store writes, retried; safe on any thread (``run`` overlaps them with
        the next batch's triage)."""
        return self._retrying(lambda: self.store.write_batch(batch.triaged), "store write")

    def finish(self, batch: Triaged, result: WriteResult) -> BatchStats:
        """After the writes: trends, automation, publish, then commit the batch's offsets."""
        messages, triaged, dead, stats, now = (
            batch.messages,
            batch.triaged,
            batch.dead,
            batch.stats,
            batch.now,
        )
        if self.trends is not None:
            self._update_trends(triaged, now)
        if self.automation is not None:
            stats.automated = self._automate(triaged)
        for t in triaged:
            topic = self.settings.topic_spam if t.is_spam else self.settings.topic_triaged
            published = t if self.settings.triaged_raw else redacted(t)
            self.producer.send(topic, published.model_dump_json().encode(), key=t.id.encode())
        for d in dead:
            value, key, headers = dead_letter_record(d)
            self.producer.send(self.settings.topic_dlq, value, key=key, headers=headers)
        if self.producer.transactional:
            # the batch's records and offsets in one transaction: read_committed consumers see
            # them exactly once; a failure aborts both and the batch is replayed
            self.producer.commit_transaction(self.consumer, messages)
        else:
            self._retrying(self.producer.flush, "producer flush")
            self._commit(messages)

        stats.posts = len(triaged)
        stats.dead_lettered = len(dead)
        stats.spam = sum(t.is_spam for t in triaged)
        stats.stored_new = result.posts_new
        stats.queued_new = result.queued_new
        stats.duplicates += result.duplicates
        for t in triaged:
            if not t.is_spam:
                stats.topics[t.topic.label] = stats.topics.get(t.topic.label, 0) + 1
        stats.seconds = time.perf_counter() - batch.started
        lag = self.consumer.behind()
        # one line a batch, the same fields as JSON with TRIAGE_LOG_FORMAT=json
        log.info(
            "batch: %d posts, %d dead letters, %d spam, %d queued, %d skipped, lag %s, %.0f ms",
            stats.posts,
            stats.dead_lettered,
            stats.spam,
            stats.queued_new,
            stats.skipped,
            "?" if lag is None else lag,
            stats.seconds * 1000,
            extra={
                "posts": stats.posts,
                "dead_letters": stats.dead_lettered,
                "spam": stats.spam,
                "queued": stats.queued_new,
                "skipped": stats.skipped,
                "lag": lag,
                "ms": round(stats.seconds * 1000, 1),
            },
        )
        return stats

    def _update_trends(self, triaged: list[TriagedPost], now: datetime) -> None:
        """Count the batch for trends (in memory), then write what changed, and group the queue
        items of new or changed spikes into incidents; alerts go out with the producer flush."""
        assert self.trends is not None
        if not self.trends.shared:
            self._recent.extend(Candidate.of(t) for t in triaged if not t.is_spam)
        self._published.clear()
        changed = self.trends.update(triaged, now)
        # on Kafka minutes are closed in the flush, on every worker's counts in the store
        changed += self._retrying(self.trends.flush, "trend write")
        self._announce(changed, now)

    def tick_trends(self) -> None:
        """A poll brought nothing: on Kafka the lease holder may still close the minutes that
        the other workers' counts let through since (its own partitions may be quiet, or read
        to the end), at most every few seconds (``LEAD_EVERY_S``). Not with Kafka transactions:
        their records go out only with a batch's offsets."""
        if self.trends is None or not self.trends.shared or self.producer.transactional:
            return
        self._published.clear()
        changed = self._retrying(self.trends.flush, "trend write")
        if changed:
            self._announce(changed, self.clock())
            self._retrying(self.producer.flush, "producer flush")

    def _announce(self, changed: list[Trend], now: datetime) -> None:
        """Publish the trends created or changed, and group their items into incidents."""
        assert self.trends is not None
        # a new spike went out as it opened; a changed one goes out now, for the notifier
        # (pipeline/trends/alerts.py) to tell people when it grew
        for trend in changed:
            if trend.id not in self._published:
                self._publish_trend(trend)
        if changed:
            since = min(t.started_at for t in changed) - timedelta(minutes=15)
            recent = (
                None
                if self.trends.shared
                else [c for c in self._recent if c.post_created_at >= since]
            )
            self._retrying(
                lambda: link_incidents(self.store, changed, now, recent), "incident write"
            )

    def _automate(self, triaged: list[TriagedPost]) -> int:
        """Answer the simple repeats of the batch (after the write, so they are queue items).
        A replayed batch finds them resolved and sends nothing twice; if the store fails here,
        the posts stay with the agents and the batch goes on."""
        assert self.automation is not None
        try:
            decisions = self.automation.on_batch(triaged)
        except TransientError as exc:
            log.warning("automation skipped for this batch (%s); its posts stay with agents", exc)
            return 0
        return sum(d.automated for d in decisions)

    def _publish_trend(self, trend: Trend) -> None:
        self._published.add(trend.id)
        self.producer.send(
            self.settings.topic_alerts, trend.model_dump_json().encode(), key=trend.id.encode()
        )

    def _triage(
        self,
        posts: list[Post],
        sources: dict[str, Message],
        dead: list[DeadLetter],
        now: datetime,
    ) -> list[TriagedPost]:
        """Triage the batch; if a stage raises, split it to find and dead-letter the culprit."""
        if not posts:
            return []
        try:
            return self.triager.triage(posts, now)
        except Exception as exc:  # a stage bug must cost one post, not the pipeline
            if len(posts) == 1:
                reason = f"stage raised {type(exc).__name__}: {exc}"
                source = sources[posts[0].id]
                log.warning("dead-lettering %s (%s): %s", posts[0].id, _where(source), reason)
                dead.append(dead_letter(source, "triage", reason, now, posts[0].id))
                return []
            half = len(posts) // 2
            return self._triage(posts[:half], sources, dead, now) + self._triage(
                posts[half:], sources, dead, now
            )

    def _retrying(self, action: Callable[[], T], what: str) -> T:
        delay = self.settings.retry_backoff_s
        for attempt in range(self.settings.write_retries + 1):
            try:
                return action()
            except TransientError as exc:
                if attempt == self.settings.write_retries:
                    raise
                log.warning("%s failed (%s); retry %d in %.1fs", what, exc, attempt + 1, delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def _commit(self, messages: Sequence[Message]) -> None:
        try:
            self.consumer.commit(messages)
        except TransientError as exc:
            # The writes are done and idempotent: whoever gets these partitions replays them
            # harmlessly. Losing the commit costs time, never correctness.
            log.warning("offset commit failed after writes (%s); the batch will be replayed", exc)

    # ------------------------------------------------------------ the loop

    def run(
        self,
        stop: threading.Event,
        idle_exit_s: float | None = None,
        on_batch: Callable[[BatchStats], None] | None = None,
    ) -> BatchStats:
        """Process batches until ``stop`` is set, or until nothing arrived for ``idle_exit_s``.

        The idle clock runs only while the group has settled this worker's share of the
        partitions (``IdleClock``): joining the group and rebalances do not count.

        A batch's store writes run on a thread of their own while the next batch is polled and
        triaged, so a worker spends the time it waits for the store on the next batch (without
        Kafka transactions, whose records and offsets go out batch by batch). The order that
        makes a crash harmless holds: a batch is published and committed only after its own
        writes, and batches are committed in the order they were polled. If a write or
        anything after it fails, both batches in hand are rewound and replayed."""
        totals = BatchStats()
        idle = IdleClock(self.consumer)
        writer = (
            None
            if self.producer.transactional
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-write")
        )
        pending: tuple[Triaged, Future[WriteResult]] | None = None  # its writes are running

        def done(stats: BatchStats) -> None:
            idle.busy()
            totals.add(stats)
            if on_batch is not None:
                on_batch(stats)

        def settle() -> None:
            """Wait for the pending batch's writes, then publish and commit it."""
            nonlocal pending
            if pending is not None:
                stats = self.finish(pending[0], pending[1].result())
                pending = None
                done(stats)

        try:
            while not stop.is_set():
                batch: list[Message] = []
                try:
                    batch = self.poll_batch()
                    if not batch:
                        settle()
                        self.tick_trends()
                        if idle_exit_s is not None and idle.idle_s() > idle_exit_s:
                            break
                        continue
                    if writer is None:
                        done(self.process(batch))
                        continue
                    triaged = self.prepare(batch)
                    settle()
                    pending = (triaged, writer.submit(self.write, triaged))
                except TransientError as exc:
                    log.error(
                        "batch not written (%s); pausing %.0fs, then replaying it",
                        exc,
                        self.settings.pause_s,
                    )
                    uncommitted = list(batch)
                    if pending is not None:  # its writes may still run: let them end first
                        with contextlib.suppress(TransientError):
                            pending[1].result()
                        uncommitted = [*pending[0].messages, *uncommitted]
                        pending = None
                    # what these batches already published must not go out again with the replay
                    self.producer.abort()
                    if uncommitted:
                        self.consumer.rewind(uncommitted)
                    stop.wait(self.settings.pause_s)
            try:
                settle()
            except TransientError as exc:  # leaving: whoever takes the partitions replays it
                log.error("last batch not written (%s); it will be replayed", exc)
                self.producer.abort()
        finally:
            if writer is not None:
                writer.shutdown(wait=True)
        return totals

    def close(self) -> None:
        try:
            if self.trends is not None:
                self.trends.close()
            self.producer.flush()
        finally:
            self.producer.close()
            self.consumer.close()


def redacted(item: TriagedPost) -> TriagedPost:
    """What posts.triaged carries unless TRIAGE_TRIAGED_RAW is set: the redacted text in place of
    the post's own, and no raw payload (it holds what the source sent, PII included). The stored
    post keeps both, for the agents who answer it."""
    post = item.post.model_copy(update={"text": item.redacted_text, "raw": {}})
    return item.model_copy(update={"post": post})


def transactional_id(settings: Settings) -> str:
    """The id a worker's transactions carry: TRIAGE_KAFKA_TRANSACTIONAL_ID when set (stable per
    replica, so a restarted worker aborts at once what its predecessor left open), otherwise
    group-host-pid (unique; a dead worker's open transaction is aborted by the coordinator after
    TRANSACTION_TIMEOUT_MS, pipeline/bus/kafka.py). Either way the coordinator refuses a
    zombie's offsets by group generation (docs/kafka.md)."""
    if settings.kafka_transactional_id:
        return settings.kafka_transactional_id
    return f"{settings.consumer_group}-{socket.gethostname()}-{os.getpid()}"


def _where(message: Message) -> str:
    """Where a record sits, as Kafka's tools name it: ``topic[partition]@offset``."""
    return f"{message.topic}[{message.partition}]@{message.offset}"
