"""``make demo``: the whole pipeline on its embedded default, with nothing else installed.

The replay connector feeds the bundled sample posts through the in-process bus to a worker, which
triages them into a fresh embedded store and its agent queue; then a summary shows what an agent
and a marketer would see first.
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from classifiers.products import DEMO_PRODUCTS, load_products
from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager
from connectors.replay import ReplayConnector
from pipeline.bus.memory import InProcessBus
from pipeline.errors import ConfigError
from pipeline.records import ROLES, utcnow
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.worker import BatchStats, Worker


def run_demo(
    posts: Path, data_dir: Path, console: Console, serve: tuple[str, int] | None = None
) -> BatchStats:
    """Replay, triage and summarise; with ``serve`` (host, port), then serve the dashboards on
    the same store and bus until Ctrl-C."""
    if not posts.is_file():
        raise ConfigError(f"sample file {posts} does not exist")
    total = sum(1 for line in posts.open("rb") if line.strip())
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir, batch_size=500, batch_wait_ms=50)
    bus = InProcessBus(partitions=settings.partitions)
    store = EmbeddedStore(settings.embedded_db)
    store.ensure_schema()
    # the demo brand's products unless the operator named their own
    products = load_products(settings.products_file or DEMO_PRODUCTS)
    triager = Triager.from_registry(Registry(settings.models_dir or PACKAGED), products)
    worker = Worker(bus, store, triager, settings)
    now = utcnow()
    connector = ReplayConnector(
        bus.producer(),
        posts,
        rebase_start=now - timedelta(minutes=90),
        topic=settings.topic_raw,
        dlq_topic=settings.topic_dlq,
    )
    feeding = threading.Thread(target=connector.start, name="replay")
    stop = threading.Event()
    totals = BatchStats()
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]triaging"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("posts", total=total, rate="")
        feeding.start()

        def on_batch(stats: BatchStats) -> None:
            totals.add(stats)
            rate = totals.consumed / max(time.perf_counter() - started, 1e-9)
            bar.update(
                task, completed=totals.consumed + connector.rejected, rate=f"{rate:,.0f} posts/s"
            )
            if not feeding.is_alive() and totals.consumed >= connector.sent:
                stop.set()

        worker.run(stop, idle_exit_s=5.0, on_batch=on_batch)
    feeding.join()
    worker.close()
    elapsed = time.perf_counter() - started
    show_summary(console, store, totals, connector.rejected, elapsed, settings)
    try:
        if serve is not None:
            serve_dashboards(console, store, bus, settings, *serve)
    finally:
        store.close()
    return totals


def serve_dashboards(
    console: Console,
    store: EmbeddedStore,
    bus: InProcessBus,
    settings: Settings,
    host: str,
    port: int,
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
    console.print("  users: [bold]agent[/], [bold]marketing[/], [bold]operator[/], [bold]admin[/]")
    console.print(f"  password: [bold]{password}[/]")
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

    now = utcnow()
    peek = Table("item", "band", "topic / urgency", "why", title="Next for an agent")
    item = store.claim_next("demo-agent", now + timedelta(minutes=10), now)
    if item is not None:
        peek.add_row(item.id, item.band, f"{item.topic} / {item.urgency}", "; ".join(item.reasons))
        console.print(peek)
        console.print(f"  [italic]{item.text}[/]")
