"""The ``triage`` command.

Settings are read from the environment here, at the entry point, and nowhere else. Every failure a
user can cause (a bad argument, an unreachable service, a missing file) ends in one line on
stderr naming the problem, and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from pydantic import SecretStr, ValidationError
from rich.console import Console
from rich.live import Live
from rich.table import Table

from classifiers.registry import Registry
from connectors.base import Connector
from pipeline import log_redaction
from pipeline.bus.interface import Producer
from pipeline.cli.flows import flows_app
from pipeline.cli.logs import configure_logging
from pipeline.errors import ConfigError, TriageError
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import QueueItem
from pipeline.settings import Settings
from pipeline.store.interface import Store

app = typer.Typer(
    name="triage",
    help="Social listening triage for customer care.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="List, promote and roll back model versions.", no_args_is_help=True)
queue_app = typer.Typer(help="Look at and claim from the agent queue.", no_args_is_help=True)
connect_app = typer.Typer(help="Run a connector that feeds posts.raw.", no_args_is_help=True)
app.add_typer(models_app, name="models")
app.add_typer(queue_app, name="queue")
app.add_typer(connect_app, name="connect")
users_app = typer.Typer(help="Dashboard users and their roles.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(flows_app, name="flows")
report_app = typer.Typer(help="Reports for marketing.", no_args_is_help=True)
app.add_typer(report_app, name="report")
incidents_app = typer.Typer(
    help="Spikes grouped into incidents: list them, resolve one with one reply.",
    no_args_is_help=True,
)
app.add_typer(incidents_app, name="incidents")
alerts_app = typer.Typer(help="Tell people of spikes (reads trends.alerts).", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

# Off a terminal (a log file, a container's output) nothing is wrapped: one summary, one line.
console = Console(soft_wrap=not sys.stdout.isatty())


def settings() -> Settings:
    cfg = Settings.from_environment()
    log_redaction.install(log_redaction.secret_values(cfg))
    return cfg


def show_version(asked: bool) -> None:
    """``--version``: the package and the model bundle it triages with, the two things a bug
    report needs (the same code judges differently after `triage models promote`)."""
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        package = version("social-triage")
    except PackageNotFoundError:  # run from a checkout that was never installed
        package = "(not installed)"
    with model_registry() as registry:
        active = registry.active("triage") or "none active"
    typer.echo(f"social-triage {package}")
    typer.echo(f"model bundle: triage {active}")
    raise typer.Exit()


@app.callback()
def options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=show_version,
            is_eager=True,
            help="print the version and the active model bundle, then exit",
        ),
    ] = False,
) -> None:
    """Social listening triage for customer care."""


@contextmanager
def model_registry() -> Iterator[Registry]:
    """The deployment's model registry: ``TRIAGE_MODELS_DIR`` if set, else the store's."""
    from pipeline.store import open_store
    from pipeline.store.models import shared_registry

    cfg = settings()
    if cfg.models_dir is not None:
        yield Registry(cfg.models_dir)
        return
    store = open_store(cfg)
    try:
        yield shared_registry(cfg, store)
    finally:
        store.close()


def run_connector(connector: Connector) -> None:
    """Run until the source ends or Ctrl-C, showing a live count; always flush and checkpoint."""
    stop = stop_on_signals()

    def stop_when_asked() -> None:
        stop.wait()
        connector.stop()

    threading.Thread(target=stop_when_asked, daemon=True).start()
    started = time.monotonic()

    def line() -> str:
        rate = connector.sent / max(time.monotonic() - started, 1e-9)
        return (
            f"{connector.name}: {connector.sent:,} posts sent, {connector.rejected:,} "
            f"dead-lettered, {rate:,.1f}/s"
        )

    with Live(line(), console=console, refresh_per_second=4) as live:
        failure: list[BaseException] = []

        def guarded() -> None:
            try:
                connector.start()
            except BaseException as exc:  # re-raised below, on the main thread
                failure.append(exc)

        feeding = threading.Thread(target=guarded, name=connector.name)
        feeding.start()
        while feeding.is_alive():
            feeding.join(0.25)
            live.update(line())
        live.update(line())
    if failure:
        raise failure[0]


def stop_on_signals() -> threading.Event:
    """SIGINT/SIGTERM ask for a clean stop: the current batch finishes, flushes and commits."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


@app.command()
def demo(
    posts: Annotated[
        Path | None,
        typer.Option(help="JSONL or twcs.csv file to replay instead of the demo's story"),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="where the demo's store is written (default: TRIAGE_DATA_DIR/demo)"),
    ] = None,
    serve: Annotated[
        bool, typer.Option(help="then serve the dashboards on the demo's data until Ctrl-C")
    ] = False,
    host: Annotated[str, typer.Option(help="dashboard address with --serve")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="dashboard port with --serve")] = 8000,
) -> None:
    """Run the whole pipeline on its embedded default: replay -> bus -> worker -> store/queue."""
    from pipeline.cli.demo import run_demo

    run_demo(posts, data_dir or settings().data_dir / "demo", console,
             (host, port) if serve else None)


@app.command()
def worker(
    idle_exit: Annotated[
        float | None,
        typer.Option(
            help="exit after this many seconds without messages while this worker held its "
            "share of the partitions (joining the group and rebalances do not count); a worker "
            "given no partition (more workers than partitions) exits this long after the group "
            "settled"
        ),
    ] = None,
) -> None:
    """Consume posts.raw in micro-batches and triage them into the store and the queue."""
    from classifiers.products import load_products
    from classifiers.triager import Triager
    from connectors.replying import reply_senders
    from pipeline.assist.assistant import Assistant
    from pipeline.assist.automation import Automation
    from pipeline.bus import open_bus
    from pipeline.heap import keep_small, settle
    from pipeline.outbound.replies import Repliers
    from pipeline.store import open_store
    from pipeline.store.models import shared_registry
    from pipeline.worker import Worker

    keep_small()  # before the clients start their threads
    cfg = settings()
    configure_logging(cfg)
    store = open_store(cfg)
    store.ensure_schema()
    models = shared_registry(cfg, store)
    triager = Triager.from_registry(models, load_products(cfg.products_file))
    repliers = Repliers.through(store, reply_senders(cfg, store))
    automation = Automation(store, Assistant(store), repliers)
    w = Worker(open_bus(cfg), store, triager, cfg, automation=automation, models=models)
    # The models, vocabularies and clients live as long as the process: out of the collector's
    # passes, and its passes rarer (pipeline/heap.py).
    settle()
    stop = stop_on_signals()
    try:
        totals = w.run(stop, idle_exit_s=idle_exit)
    finally:
        w.close()
        store.close()
    console.print(
        f"worker: {totals.posts} posts triaged, {totals.spam} spam, "
        f"{totals.dead_lettered} dead-lettered, {totals.queued_new} queued, "
        f"{totals.automated} answered by automation"
    )


@alerts_app.command("run")
def alerts_run(
    idle_exit: Annotated[
        float | None,
        typer.Option(
            help="exit after this many seconds without alerts while this notifier held its "
            "share of the partitions (joining the group and rebalances do not count)"
        ),
    ] = None,
) -> None:
    """Read trends.alerts and tell people of each new or grown spike, by e-mail and webhook."""
    from pipeline.bus import open_bus
    from pipeline.store import open_store
    from pipeline.trends.alerts import Notifier, channels_from_settings

    cfg = settings()
    configure_logging(cfg)
    channels = channels_from_settings(cfg)
    store = open_store(cfg)
    store.ensure_schema()
    notifier = Notifier(open_bus(cfg), store, cfg, channels)
    stop = stop_on_signals()
    try:
        totals = notifier.run(stop, idle_exit_s=idle_exit)
    finally:
        notifier.close()
        store.close()
    console.print(
        f"alerts: {totals.read} trend updates read, {totals.sent} spikes told, "
        f"{totals.held_back} held back by a rate limit, {totals.unreadable} unreadable"
    )


@alerts_app.command("test")
def alerts_test() -> None:
    """Send one sample alert through every configured channel, to check the settings."""
    from pipeline.trends.alerts import channels_from_settings, sample_alert

    cfg = settings()
    alert = sample_alert(cfg)
    for channel in channels_from_settings(cfg):
        channel.deliver(alert)
        console.print(f"alerts: test alert sent by {channel.name}")


def run_on_kafka(cfg: Settings, build: Callable[[Producer, Store], Connector]) -> None:
    """Run a connector on Kafka with the live count, closing what it opened."""
    from connectors.base import on_kafka

    with on_kafka(cfg, build) as connector:
        run_connector(connector)


def secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def required(value: SecretStr | None, name: str) -> str:
    if value is None:
        raise ConfigError(
            f"set TRIAGE_{name.upper()} (or a triage_{name} file in TRIAGE_SECRETS_DIR)"
        )
    return value.get_secret_value()


@connect_app.command("replay")
def connect_replay(
    path: Annotated[Path, typer.Argument(help="JSONL (Post layout) or twcs.csv file")],
    speed: Annotated[
        float, typer.Option(help="0 = as fast as possible; 60 = a minute a second")
    ] = 0.0,
    limit: Annotated[int | None, typer.Option(min=1, help="stop after this many records")] = None,
    shift_to_now: Annotated[
        bool, typer.Option(help="move the posts' times so the newest is now, spacing kept")
    ] = False,
) -> None:
    """Replay a file of posts onto posts.raw, resuming where an earlier run of it stopped."""
    from connectors.replay import ReplayConnector

    cfg = settings()
    run_on_kafka(
        cfg,
        lambda producer, store: ReplayConnector(
            producer,
            path,
            speed=speed,
            limit=limit,
            shift_to_now=shift_to_now,
            store=store,
            topic=cfg.topic_raw,
            dlq_topic=cfg.topic_dlq,
        ),
    )


@connect_app.command("webhook")
def connect_webhook(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8080,
    rate_limit: Annotated[
        str, typer.Option(help="requests per client address, e.g. 20/second or 600/minute")
    ] = "20/second",
) -> None:
    """Accept HMAC-signed posts at POST /webhook/posts and put them on posts.raw."""
    from connectors.webhook import WebhookConnector

    cfg = settings()
    key = required(cfg.webhook_secret, "webhook_secret")
    run_on_kafka(
        cfg,
        lambda producer, store: WebhookConnector(
            producer,
            key,
            host=host,
            port=port,
            rate_limit=rate_limit,
            topic=cfg.topic_raw,
            dlq_topic=cfg.topic_dlq,
        ),
    )


@connect_app.command("x")
def connect_x(
    query: Annotated[
        str | None, typer.Option(help="X recent-search query, e.g. '@acme OR #acme'")
    ] = None,
    mentions_of: Annotated[
        str | None, typer.Option(help="poll the mentions of this user id instead")
    ] = None,
    rule: Annotated[
        list[str] | None,
        typer.Option(help="follow the filtered stream with this rule instead (repeatable)"),
    ] = None,
    poll_interval: Annotated[float, typer.Option(min=1.0, help="seconds between polls")] = 15.0,
) -> None:
    """Poll X (tweepy v2) onto posts.raw, from the checkpoint in the store; or, with --rule,
    follow the filtered stream (falling back to polling where the account lacks access)."""
    import tweepy

    from connectors.x import XConnector

    cfg = settings()
    bearer = required(cfg.x_bearer_token, "x_bearer_token")
    client = tweepy.Client(
        bearer_token=bearer,
        consumer_key=secret(cfg.x_consumer_key),
        consumer_secret=secret(cfg.x_consumer_secret),
        access_token=secret(cfg.x_access_token),
        access_token_secret=secret(cfg.x_access_token_secret),
    )
    if rule:
        from connectors.x_stream import RuleStream, XStreamConnector

        if query is not None or mentions_of is not None:
            raise ConfigError("--rule follows the filtered stream: leave out --query/--mentions-of")
        run_on_kafka(
            cfg,
            lambda producer, store: XStreamConnector(
                producer,
                client,
                lambda on_line: RuleStream(bearer, on_line),
                rule,
                store,
                poll_interval_s=poll_interval,
                topic=cfg.topic_raw,
                dlq_topic=cfg.topic_dlq,
            ),
        )
        return
    run_on_kafka(
        cfg,
        lambda producer, store: XConnector(
            producer,
            client,
            query,
            store,
            mentions_of=mentions_of,
            poll_interval_s=poll_interval,
            topic=cfg.topic_raw,
            dlq_topic=cfg.topic_dlq,
        ),
    )


@connect_app.command("reddit")
def connect_reddit(
    subreddit: Annotated[list[str], typer.Option(help="a subreddit to follow (repeatable)")],
    keyword: Annotated[
        list[str] | None, typer.Option(help="only posts containing this word (repeatable)")
    ] = None,
    comments: Annotated[bool, typer.Option(help="follow comments as well as submissions")] = True,
) -> None:
    """Stream new Reddit submissions and comments onto posts.raw, from the store's checkpoints."""
    import praw

    from connectors.reddit import RedditConnector

    cfg = settings()
    client = praw.Reddit(
        client_id=required(cfg.reddit_client_id, "reddit_client_id"),
        client_secret=required(cfg.reddit_client_secret, "reddit_client_secret"),
        username=secret(cfg.reddit_username),
        password=secret(cfg.reddit_password),
        user_agent=cfg.reddit_user_agent,
    )
    kinds = ["submissions", "comments"] if comments else ["submissions"]
    run_on_kafka(
        cfg,
        lambda producer, store: RedditConnector(
            producer,
            client,
            subreddit,
            store,
            keywords=keyword or (),
            kinds=kinds,
            topic=cfg.topic_raw,
            dlq_topic=cfg.topic_dlq,
        ),
    )


@connect_app.command("bluesky")
def connect_bluesky(
    keyword: Annotated[
        list[str] | None, typer.Option(help="a word or brand name to match (repeatable)")
    ] = None,
    handle: Annotated[
        list[str] | None, typer.Option(help="a handle whose @mentions match (repeatable)")
    ] = None,
    did: Annotated[
        list[str] | None, typer.Option(help="a DID whose mentions match (repeatable)")
    ] = None,
) -> None:
    """Follow Bluesky's Jetstream (free, public) for posts about the brand onto posts.raw."""
    from connectors.bluesky import BlueskyConnector

    cfg = settings()
    if not (keyword or handle or did):
        raise ConfigError("give at least one --keyword, --handle or --did to match the brand")
    dictionary = None
    if cfg.bluesky_zstd_dictionary is not None:
        try:
            dictionary = cfg.bluesky_zstd_dictionary.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"TRIAGE_BLUESKY_ZSTD_DICTIONARY: cannot read {cfg.bluesky_zstd_dictionary}: "
                f"{exc.strerror}"
            ) from None
    run_on_kafka(
        cfg,
        lambda producer, store: BlueskyConnector(
            producer,
            store,
            instance=cfg.bluesky_jetstream_url,
            keywords=keyword or (),
            handles=handle or (),
            dids=did or (),
            zstd_dictionary=dictionary,
            topic=cfg.topic_raw,
            dlq_topic=cfg.topic_dlq,
        ),
    )


@connect_app.command("mastodon")
def connect_mastodon(
    hashtag: Annotated[
        list[str] | None, typer.Option(help="a hashtag timeline to follow (repeatable)")
    ] = None,
    public: Annotated[
        str | None, typer.Option(help="the public timeline: local or federated")
    ] = None,
    mentions: Annotated[bool, typer.Option(help="the account's mentions")] = True,
) -> None:
    """Follow Mastodon timelines and mentions onto posts.raw, streaming where the server allows."""
    from mastodon import Mastodon

    from connectors.mastodon import MastodonConnector

    cfg = settings()
    if not cfg.mastodon_api_base_url:
        raise ConfigError("set TRIAGE_MASTODON_API_BASE_URL to the brand's Mastodon server")
    client = Mastodon(
        api_base_url=cfg.mastodon_api_base_url,
        access_token=secret(cfg.mastodon_access_token),
    )
    run_on_kafka(
        cfg,
        lambda producer, store: MastodonConnector(
            producer,
            client,
            store,
            hashtags=hashtag or (),
            public=public,
            mentions=mentions and cfg.mastodon_access_token is not None,
            topic=cfg.topic_raw,
            dlq_topic=cfg.topic_dlq,
        ),
    )


@app.command()
def train(
    task: Annotated[
        str | None, typer.Option(help="train one label set (spam, topic, emotion, or your own)")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="labelled CSV, TSV, JSONL or XLSX")] = None,
    text_col: Annotated[str, typer.Option(help="column holding the text")] = "text",
    label_col: Annotated[str, typer.Option(help="column holding the label")] = "label",
    out: Annotated[Path | None, typer.Option(help="where to save the trained model")] = None,
    data_format: Annotated[
        str | None, typer.Option("--format", help="csv, tsv, jsonl or xlsx (default: by name)")
    ] = None,
    corpus: Annotated[Path | None, typer.Option(help="seed corpus JSONL for the bundle")] = None,
    rewrite_seed: Annotated[bool, typer.Option(help="regenerate the seed corpus first")] = False,
) -> None:
    """Train a model on your labels (--task), or the shipped bundle from the seed corpus."""
    if task is not None:
        from classifiers.datasets import read_labelled
        from classifiers.tasks import save, train_task

        if data is None or out is None:
            raise ConfigError("--task needs --data and --out")
        labelled = read_labelled(data, text_col, label_col, data_format)
        with console.status(f"training {task} on {len(labelled.texts):,} rows"):
            model = train_task(task, labelled)
        save(model, out)
        chosen = model.selection
        console.print(
            f"{task}: {chosen['winner']} model won by cross-validated macro-F1 "
            f"({', '.join(f'{k} {v:.4f}' for k, v in chosen['cv_macro_f1'].items())}, "
            f"{chosen['folds']} folds)"
        )
        if chosen["dropped_labels"]:
            console.print(
                f"kept out, one example each: {', '.join(map(repr, chosen['dropped_labels']))}"
            )
        console.print(f"{task}: {len(model.labels)} labels, {model.train_rows:,} rows -> {out}")
        return

    from classifiers.training import SEED_CORPUS, train_bundle

    path = corpus or SEED_CORPUS
    if corpus is not None and not corpus.is_file():
        raise ConfigError(f"corpus file {corpus} does not exist")
    with console.status("training"), model_registry() as registry:
        version, metrics = train_bundle(registry, path, rewrite=rewrite_seed)
    table = Table(
        "task", "accuracy", "macro-F1", title=f"triage model {version} (20% of templates held out)"
    )
    for name, m in metrics.items():
        if isinstance(m, dict):
            table.add_row(name, f"{m['accuracy']:.3f}", f"{m['macro_f1']:.3f}")
    console.print(table)


@app.command()
def classify(
    texts: Annotated[list[str] | None, typer.Argument(help="texts to classify")] = None,
    data: Annotated[Path | None, typer.Option(help="CSV, TSV, JSONL or XLSX of texts")] = None,
    text_col: Annotated[str, typer.Option(help="column holding the text")] = "text",
    data_format: Annotated[
        str | None, typer.Option("--format", help="csv, tsv, jsonl or xlsx (default: by name)")
    ] = None,
) -> None:
    """Run the active model bundle on texts; print one JSON object per input, in order."""
    import orjson

    from classifiers.classify import classify as run
    from classifiers.datasets import read_texts
    from classifiers.triager import Triager

    if (data is None) == (not texts):
        raise ConfigError("give texts to classify, or --data FILE, not both")
    inputs = read_texts(data, text_col, data_format) if data is not None else list(texts or [])
    cfg = settings()
    with model_registry() as registry:
        triager = Triager.from_registry(registry)
    out = sys.stdout.buffer
    for result in run(triager, inputs, datetime.now(UTC), cfg.batch_size):
        out.write(orjson.dumps(result) + b"\n")
    out.flush()


@app.command()
def evaluate(
    task: Annotated[str, typer.Option(help="the task the model was trained for")],
    model: Annotated[Path, typer.Option(help="a model saved by `triage train --task`")],
    data: Annotated[Path, typer.Option(help="labelled CSV, TSV, JSONL or XLSX")],
    text_col: Annotated[str, typer.Option(help="column holding the text")] = "text",
    label_col: Annotated[str, typer.Option(help="column holding the label")] = "label",
    report: Annotated[Path | None, typer.Option(help="write the figures here as JSON")] = None,
    data_format: Annotated[
        str | None, typer.Option("--format", help="csv, tsv, jsonl or xlsx (default: by name)")
    ] = None,
) -> None:
    """Score a model on labelled data: accuracy, macro-F1, MCC, per class, confusion matrix."""
    import orjson

    from classifiers.datasets import read_labelled
    from classifiers.tasks import evaluate as score
    from classifiers.tasks import load

    trained = load(model)
    labelled = read_labelled(data, text_col, label_col, data_format)
    result = score(trained, task, labelled)
    console.print(
        f"{task}: accuracy {result['accuracy']:.4f}  macro-F1 {result['macro_f1']:.4f}  "
        f"MCC {result['mcc']:.4f}  ({result['rows']:,} rows)"
    )
    per_class = Table("label", "precision", "recall", "F1", "support")
    for label, m in result["per_class"].items():
        per_class.add_row(
            label,
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
            str(m["support"]),
        )
    console.print(per_class)
    matrix = result["confusion_matrix"]
    if len(matrix["labels"]) <= 12:
        grid = Table("true \\ predicted", *matrix["labels"], title="Confusion matrix")
        for label, row in zip(matrix["labels"], matrix["matrix"], strict=True):
            grid.add_row(label, *map(str, row))
        console.print(grid)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        console.print(f"report -> {report}")


@models_app.command("list")
def models_list(name: str = "triage") -> None:
    """Every version of a model, marking the active one."""
    with model_registry() as registry:
        active, versions = registry.active(name), registry.versions(name)
    table = Table("version", "created", "data", "active")
    for version, meta in sorted(versions.items()):
        table.add_row(
            version,
            meta["created_at"][:19],
            meta["data_sha256"][:12],
            "*" if version == active else "",
        )
    console.print(table)


@models_app.command("vectors")
def models_vectors() -> None:
    """Fetch (once per cache) and install the word vectors `triage train --task` uses."""
    from classifiers.vectors import install

    with console.status("installing word vectors"):
        path = install(settings().cache)
    console.print(f"word vectors -> {path}")


@models_app.command("promote")
def models_promote(version: str, name: str = "triage") -> None:
    """Make a version the active one."""
    with model_registry() as registry:
        registry.promote(name, version)
    console.print(f"{name}: {version} is active")


@models_app.command("use")
def models_use(
    model: Annotated[Path, typer.Argument(help="a model saved by `triage train --task`")],
) -> None:
    """Make a --task model a head of the bundle (replacing its task's head, or adding the task)
    as a new version, and make that version active."""
    from classifiers.tasks import load
    from classifiers.training import use_task_model

    trained = load(model)
    with model_registry() as registry:
        version = use_task_model(registry, trained)
    console.print(f"triage: version {version} active, {trained.task} head from {model.name}")


@models_app.command("rollback")
def models_rollback(name: str = "triage") -> None:
    """Return to the version that was active before the current one."""
    with model_registry() as registry:
        version = registry.rollback(name)
    console.print(f"{name}: rolled back to {version}")


def agent_queue(lease_minutes: float = 10.0) -> AgentQueue:
    """The queue on the configured store; resolutions reply through the configured connectors."""
    from connectors.replying import reply_senders
    from pipeline.outbound.replies import Repliers
    from pipeline.store import open_store

    cfg = settings()
    store = open_store(cfg)
    store.ensure_schema()
    repliers = Repliers.through(store, reply_senders(cfg, store))
    return AgentQueue(store, lease=timedelta(minutes=lease_minutes), repliers=repliers)


def show_item(item: QueueItem) -> None:
    console.print(
        f"[bold]{item.id}[/] {item.status} {item.band} ({item.priority:.1f}) "
        f"{item.topic}/{item.urgency}"
    )
    console.print(f"  {item.text}")
    console.print(f"  why: {'; '.join(item.reasons)}")


@queue_app.command("claim")
def queue_claim(
    agent: Annotated[str, typer.Option(help="who claims")],
    lease_minutes: Annotated[float, typer.Option(min=0.1, max=480)] = 10.0,
    topic: Annotated[list[str] | None, typer.Option(help="only these topics")] = None,
    language: Annotated[list[str] | None, typer.Option(help="only these languages")] = None,
) -> None:
    """Claim the most urgent open item this agent may take, under an exclusive lease."""
    item = agent_queue(lease_minutes).claim_next(agent, topic, language)
    if item is None:
        console.print("queue: nothing to claim")
        return
    show_item(item)


@queue_app.command("release")
def queue_release(
    item: Annotated[str, typer.Argument(help="the item id, e.g. x:1578516068309794817")],
    agent: Annotated[str, typer.Option(help="the agent holding it")],
    reason: Annotated[str, typer.Option(help="why, for the audit log")] = "",
) -> None:
    """Give a claimed item back to the queue."""
    show_item(agent_queue().release(item, agent, reason))


@queue_app.command("resolve")
def queue_resolve(
    item: Annotated[str, typer.Argument(help="the item id")],
    agent: Annotated[str, typer.Option(help="the agent holding it")],
    reply: Annotated[str, typer.Option(help="the reply that was sent to the customer")],
) -> None:
    """Close a claimed item with the reply that answered it."""
    show_item(agent_queue().resolve(item, agent, reply))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="API processes behind the one port (uvicorn's)")
    ] = 1,
) -> None:
    """Serve the dashboards and the HTTP API (/api/v1, schema at /openapi.json) on the store."""
    import os
    import secrets

    import uvicorn

    from dashboards.api import create_app
    from pipeline.bus import open_bus
    from pipeline.store import open_store

    cfg = settings()
    store = open_store(cfg)
    store.ensure_schema()
    if workers > 1:
        # Each process builds its own app and store connection from the same settings; a
        # session signed by one process must read in every other, so they share one key.
        store.close()
        if cfg.session_secret is None:
            os.environ["TRIAGE_SESSION_SECRET"] = secrets.token_urlsafe(32)
        # uvicorn kills a worker that misses its 5 s health ping, dropping every request it
        # holds; an overloaded machine (seen in bench/claims.py at a load average of 35) misses
        # it while the worker is merely slow, so the ping waits 30 s
        uvicorn.run(
            "dashboards.api:app_from_environment", factory=True, workers=workers, host=host,
            port=port, log_level="warning", timeout_worker_healthcheck=30,
        )
        return
    # With Kafka, the operator face shows lag and the dead-letter queue; embedded, they live in
    # the process that runs the pipeline (`triage demo --serve`).
    bus = open_bus(cfg) if cfg.kafka_bootstrap else None
    uvicorn.run(create_app(store, cfg, bus), host=host, port=port, log_level="warning")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="the login name")],
    role: Annotated[
        list[str], typer.Option(help="agent, marketing, operator or admin (repeatable)")
    ],
    password_stdin: Annotated[
        bool, typer.Option(help="read the password from the first line of standard input")
    ] = False,
) -> None:
    """Add a dashboard user (or set a new password and roles for an existing one)."""
    from dashboards.auth import make_account
    from pipeline.store import open_store

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    account = make_account(name, password, role)
    store = open_store(settings())
    try:
        store.ensure_schema()
        existed = store.get_user(name) is not None
        store.save_user(account)
    finally:
        store.close()
    console.print(f"{'updated' if existed else 'added'} {name} ({', '.join(account.roles)})")


@users_app.command("list")
def users_list() -> None:
    """Every dashboard user and their roles."""
    from pipeline.store import open_store

    store = open_store(settings())
    try:
        store.ensure_schema()
        table = Table("name", "roles", "created")
        for user in store.list_users():
            table.add_row(user.name, ", ".join(user.roles), user.created_at.isoformat()[:19])
    finally:
        store.close()
    console.print(table)


@app.command()
def status() -> None:
    """Counts in the store and the open queue by priority band."""
    from pipeline.store import open_store

    store = open_store(settings())
    depth = store.queue_depth()
    console.print(f"posts: {store.count('posts')}  queued: {store.count('queue')}")
    console.print(
        "open by band: " + ", ".join(f"{b} {depth.get(b, 0)}" for b in ("P1", "P2", "P3", "P4"))
    )
    store.close()


@report_app.command("trends")
def report_trends(
    since: Annotated[datetime | None, typer.Option(help="start (UTC); default: 24 h back")] = None,
    until: Annotated[datetime | None, typer.Option(help="end (UTC); default: now")] = None,
    format: Annotated[str, typer.Option("--format", help="html, pdf, png or csv")] = "html",
    out: Annotated[Path | None, typer.Option(help="file to write; default trends.<format>")] = None,
) -> None:
    """What rose and when: volume with spikes, rising topics, sentiment, sources and languages."""
    from pipeline.store import open_store
    from pipeline.trends.report import FORMATS, render, trend_report_data

    if format not in FORMATS:
        raise ConfigError(f"unknown --format {format!r}; choose one of {', '.join(FORMATS)}")
    end = (until or datetime.now(UTC)).replace(tzinfo=(until or datetime.now(UTC)).tzinfo or UTC)
    start = since.replace(tzinfo=since.tzinfo or UTC) if since else end - timedelta(hours=24)
    target = out or Path(f"trends.{format}")
    if not target.parent.is_dir():
        raise ConfigError(f"--out {target}: directory {target.parent} does not exist")
    store = open_store(settings())
    try:
        store.ensure_schema()
        body = render(trend_report_data(store, start, end), format)
    finally:
        store.close()
    target.write_bytes(body)
    console.print(f"report: wrote {target} ({len(body):,} bytes)")


@incidents_app.command("list")
def incidents_list(
    status: Annotated[str, typer.Option(help="open, resolved or all")] = "open",
) -> None:
    """Incidents with their count and the suggested bulk reply."""
    from pipeline.store import open_store
    from pipeline.trends.incidents import incidents

    if status not in ("open", "resolved", "all"):
        raise ConfigError(f"unknown --status {status!r}; choose open, resolved or all")
    store = open_store(settings())
    try:
        store.ensure_schema()
        found = incidents(store, None if status == "all" else status)
    finally:
        store.close()
    if not found:
        console.print(f"incidents: none {status}" if status != "all" else "incidents: none")
        return
    for inc in found:  # plain lines, never wrapped: the id is what `resolve` takes
        typer.echo(
            f"{inc.id}\t{inc.what}\t{inc.count} items\t{inc.status}\t"
            f"{inc.created_at.isoformat()[:16]}\n  suggested reply: {inc.suggested_reply}"
        )


@incidents_app.command("resolve")
def incidents_resolve(
    incident: Annotated[str, typer.Argument(help="the incident id, as `incidents list` shows")],
    agent: Annotated[str, typer.Option(help="the agent who sent the reply")],
    reply: Annotated[str, typer.Option(help="the reply sent to every customer")],
) -> None:
    """Reply to the author of every item of an incident that no other agent holds, on their
    channel, and resolve it with its audit record. Exits 1 while a reply could not be sent:
    the incident stays open, and running this again answers only those left."""
    from pipeline.trends.incidents import resolve_incident

    queue = agent_queue()
    try:
        done = resolve_incident(queue, incident, agent, reply, datetime.now(UTC))
    finally:
        queue.store.close()
    console.print(f"incident {done.id}: {len(done.resolved_items)} items resolved, {done.status}")
    for item_id, why in done.skip_reasons.items():
        typer.echo(f"  skipped {item_id}: {why}")  # plain lines, never wrapped
    if done.status == "open":
        raise typer.Exit(1)


def main() -> None:
    log_redaction.install()
    try:
        result = app(standalone_mode=False)
    except typer.Abort:
        print("triage: stopped", file=sys.stderr)
        sys.exit(130)
    except typer.TyperException as exc:
        print(f"triage: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        print(f"triage: setting TRIAGE_{where.upper()}: {err['msg']}", file=sys.stderr)
        sys.exit(2)
    except TriageError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("triage: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
