"""``make demo``: the whole pipeline on its embedded default, with nothing else installed.

The demo's story (``demo_story.py``: five hours of customers up to now, then an app outage) goes
through the in-process bus to a worker, which triages it into a fresh embedded store and its
agent queue; past cases are resolved as agents did (``demo_history.py``), and a summary shows
what an agent and a marketer would see first. With ``--serve`` the outage arrives while the
dashboards run, so the streaming detector turns it into a spike and an incident in front of the
user, and the SLA watchdog sweeps every minute. ``--posts FILE`` replays a file instead.

The demo writes only into its own directory (``TRIAGE_DATA_DIR/demo`` or ``--data-dir``): it
marks the directory as its own, refuses one that is not, and holds a lock while it runs, so a
second demo cannot wipe the store of one that is serving.
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from classifiers.products import DEMO_PRODUCTS, load_products
from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager
from connectors.replay import ReplayConnector
from pipeline.assist.assistant import Assistant
from pipeline.bus.memory import InProcessBus
from pipeline.cli import demo_story
from pipeline.cli.demo_history import resolve_past, seed_assist, watchdog
from pipeline.errors import ConfigError
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import ROLES, utcnow
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.trends.incidents import incidents
from pipeline.worker import BatchStats, Worker

MARKER = ".triage-demo"
LOCK = ".triage-demo.lock"
OUTAGE_BURST_PAUSE_S = 1.5


def own_data_dir(data_dir: Path) -> IO[str]:
    """Make ``data_dir`` the demo's, empty but for its marker, and hold its lock (returned: keep
    it open while the demo runs). Refuses a directory the demo did not create, or one another
    demo is using."""
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"demo data dir {data_dir} is a file")
    if data_dir.is_dir() and any(data_dir.iterdir()) and not (data_dir / MARKER).is_file():
        raise ConfigError(
            f"{data_dir} is not empty and is not a demo store (no {MARKER}): refusing to delete "
            "it; choose another --data-dir"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create demo data dir {data_dir}: {exc.strerror}") from None
    lock = (data_dir / LOCK).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise ConfigError(f"another demo is using {data_dir}; stop it or use --data-dir") from None
    for entry in data_dir.iterdir():
        if entry.name in (MARKER, LOCK):
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (data_dir / MARKER).write_text("written by `triage demo`, which may delete this directory\n")
    return lock


class Feed:
    """A worker on its own thread and a way to wait until it has taken in what was sent."""

    def __init__(self, worker: Worker, bus: InProcessBus, settings: Settings) -> None:
        self.worker = worker
        self.producer = bus.producer()
        self.topic = settings.topic_raw
        self.sent = 0
        self.totals = BatchStats()
        self.stop = threading.Event()
        self._changed = threading.Condition()
        self.listeners: list[Callable[[BatchStats], None]] = []
        self.thread = threading.Thread(target=self._run, name="worker", daemon=True)

    def _run(self) -> None:
        self.worker.run(self.stop, on_batch=self._on_batch)

    def _on_batch(self, stats: BatchStats) -> None:
        with self._changed:
            self.totals.add(stats)
            self._changed.notify_all()
        for listener in self.listeners:
            listener(stats)

    def send(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.producer.send(self.topic, line)
            self.sent += 1
        self.producer.flush()

    def settle(self, expected: int | None = None) -> None:
        """Wait until the worker has consumed ``expected`` records (default: all sent)."""
        want = self.sent if expected is None else expected
        with self._changed:
            while self.totals.consumed < want:
                if not self.thread.is_alive():
                    raise ConfigError("the demo's worker stopped early")
                self._changed.wait(0.5)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.worker.close()


def run_demo(
    posts: Path | None, data_dir: Path, console: Console, serve: tuple[str, int] | None = None
) -> BatchStats:
    """Feed the story (or ``posts``), triage and summarise; with ``serve`` (host, port), then
    serve the dashboards on the same store and bus until Ctrl-C while the outage arrives."""
    began = time.perf_counter()
    if posts is not None and not posts.is_file():
        raise ConfigError(f"sample file {posts} does not exist")
    lock = own_data_dir(data_dir)
    try:
        return _run(posts, data_dir, console, serve, began)
    finally:
        lock.close()


def _run(
    posts: Path | None,
    data_dir: Path,
    console: Console,
    serve: tuple[str, int] | None,
    began: float,
) -> BatchStats:
    settings = Settings(data_dir=data_dir, batch_size=500, batch_wait_ms=50)
    bus = InProcessBus(partitions=settings.partitions)
    store = EmbeddedStore(settings.embedded_db)
    store.ensure_schema()
    # the demo brand's products unless the operator named their own
    products = load_products(settings.products_file or DEMO_PRODUCTS)
    triager = Triager.from_registry(Registry(settings.models_dir or PACKAGED), products)
    feed = Feed(Worker(bus, store, triager, settings), bus, settings)
    now = utcnow()
    story = demo_story.build(now) if posts is None else None
    started = time.perf_counter()
    rejected = 0
    try:
        feed.thread.start()
        with Progress(
            TextColumn("[bold]triaging"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            if story is not None:
                total = len(story.baseline) + len(story.malformed)
            else:
                assert posts is not None
                total = sum(1 for line in posts.open("rb") if line.strip())
            task = bar.add_task("posts", total=total, rate="")

            def progress(_: BatchStats) -> None:
                rate = feed.totals.consumed / max(time.perf_counter() - started, 1e-9)
                bar.update(task, completed=feed.totals.consumed, rate=f"{rate:,.0f} posts/s")

            feed.listeners.append(progress)
            if story is not None:
                # half an hour at a time: the detector counts a batch only back to an hour
                # before its newest post, as a live stream would arrive
                for chunk in demo_story.by_period(story.baseline, timedelta(minutes=30)):
                    feed.send(story.lines(chunk))
                    feed.settle()
                feed.send(story.malformed)
                feed.settle()
            else:
                assert posts is not None
                rejected = replay_file(feed, posts, now, settings)
            feed.listeners.clear()
        queue = AgentQueue(store)
        assistant = Assistant(store)
        seed_assist(assistant)
        resolve_past(queue, assistant, now)
        if story is not None and serve is None:
            feed_outage(feed, story.outage, now, pause_s=0.0)
        elapsed = time.perf_counter() - started
        show_summary(console, store, feed.totals, rejected, elapsed, settings)
        if serve is not None:
            stop = threading.Event()
            watchdog(queue, stop)
            if story is not None:
                console.print(
                    "  [bold]Live:[/] the Acme app goes down in a few seconds; watch Marketing "
                    "and the incidents as the outage arrives."
                )
                threading.Thread(
                    target=feed_outage,
                    args=(feed, story.outage, now),
                    kwargs={"delay_s": 3.0},
                    name="outage",
                    daemon=True,
                ).start()
            try:
                serve_dashboards(console, store, bus, settings, *serve, began=began)
            finally:
                stop.set()
    finally:
        feed.close()
        store.close()
    return feed.totals


def replay_file(feed: Feed, posts: Path, now: datetime, settings: Settings) -> int:
    """Replay a JSONL or twcs.csv file, its clock moved to end near now; lines rejected."""
    connector = ReplayConnector(
        feed.producer,
        posts,
        rebase_start=now - timedelta(minutes=90),
        topic=settings.topic_raw,
        dlq_topic=settings.topic_dlq,
    )
    connector.start()
    feed.sent = connector.sent
    feed.settle()
    return connector.rejected


def feed_outage(
    feed: Feed,
    outage: list[dict[str, Any]],
    story_now: datetime,
    pause_s: float = OUTAGE_BURST_PAUSE_S,
    delay_s: float = 0.0,
) -> None:
    """Send the outage minute by minute, its clock moved to end at the moment it is sent, so
    each burst closes the minute before it and the detector tests it as it would live posts."""
    time.sleep(delay_s)
    shift = utcnow() - story_now
    minutes: dict[str, list[bytes]] = {}
    for post in outage:
        at = datetime.fromisoformat(post["created_at"]) + shift
        line = orjson.dumps({**post, "created_at": at.isoformat()})
        minutes.setdefault(at.strftime("%Y%m%d%H%M"), []).append(line)
    for minute in sorted(minutes):
        feed.send(minutes[minute])
        feed.settle()
        time.sleep(pause_s)


def serve_dashboards(
    console: Console,
    store: EmbeddedStore,
    bus: InProcessBus,
    settings: Settings,
    host: str,
    port: int,
    began: float,
) -> None:
    """The dashboards on the demo's data, with one user per role and a fresh password."""
    import uvicorn

    from dashboards.api import create_app
    from dashboards.auth import make_account

    password = secrets.token_urlsafe(9)
    for role in ROLES:
        store.save_user(make_account(role, password, [role]))
    url = f"http://{host}:{port}/"
    console.print(f"\n[bold]Dashboards:[/] {url}")
    console.print(f"  users: {', '.join(f'[bold]{r}[/]' for r in ROLES)}")
    console.print(f"  password: [bold]{password}[/]")
    console.print(f"  ready in {time.perf_counter() - began:.0f}s")
    console.print("  replies on the demo's channels go to the demo outbox; nobody is contacted")
    console.print("  (Ctrl-C stops)")
    uvicorn.run(create_app(store, settings, bus), host=host, port=port, log_level="warning")


def show_summary(
    console: Console,
    store: EmbeddedStore,
    totals: BatchStats,
    rejected: int,
    elapsed: float,
    settings: Settings,
) -> None:
    summary = Table(title="Pipeline summary", show_header=False)
    summary.add_row("posts in", f"{totals.consumed + rejected:,}")
    summary.add_row("triaged", f"{totals.posts:,} in {elapsed:.1f}s")
    summary.add_row("spam dropped", f"{totals.spam:,}")
    summary.add_row("dead-lettered (bad input)", f"{totals.dead_lettered + rejected:,}")
    summary.add_row("queued for agents", f"{store.count('queue'):,}")
    summary.add_row("resolved by agents before now", f"{len(store.resolved_since(None)):,}")
    summary.add_row("store", str(settings.embedded_db))
    console.print(summary)

    depth = store.queue_depth()
    bands = Table("priority", "open items", title="Queue depth")
    for band in ("P1", "P2", "P3", "P4"):
        bands.add_row(band, f"{depth.get(band, 0):,}")
    console.print(bands)

    topics = Table("topic", "posts", title="Top topics")
    for topic, n in store.top_topics(6):
        topics.add_row(topic, f"{n:,}")
    console.print(topics)

    found = incidents(store, "open")
    if found:
        table = Table("incident", "items", "topics", title="Open incidents")
        for incident in found:
            table.add_row(incident.what, f"{incident.count:,}", ", ".join(incident.topics))
        console.print(table)

    # a look at the top of the queue, not a claim: the item stays open for the first agent
    peek = Table("item", "band", "topic / urgency", "why", title="First in the queue")
    for item in store.list_queue("open", 1):
        peek.add_row(item.id, item.band, f"{item.topic} / {item.urgency}", "; ".join(item.reasons))
        console.print(peek)
        console.print(f"  [italic]{item.text}[/]")
