"""The retrain flow: retrain each head agents corrected, on what it learned from plus their
corrections, and replace a head only where the new one beats it on rows neither learned from.

A head's rows are the real sets ``make models`` trains it on (``classifiers.sources``, read in
place from ``data``, the shared data folder) or, where those are not at hand and for urgency,
which has no real set, the seed corpus. They are split as ``make models`` split them (the seed
corpus by template), so the active head never learned the held-out rows; the corrections are
split too, each post on one side. The challenger is trained by ``triage train --task``'s code
(the stacked model against the plain baseline, chosen by cross-validation on its training rows)
and scored beside the active head by macro-F1 on the held-out rows; it replaces the head when it
wins by at least ``margin``. One new bundle version holds every replaced head and keeps the
others (the path ``triage models use`` takes) and becomes active; workers pick it up between
batches. What is registered is exactly what was measured. The comparison is recorded as a
markdown table artifact whatever the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from sklearn.model_selection import train_test_split

from classifiers.datasets import Labelled
from classifiers.model import TriageModel
from classifiers.registry import Registry
from classifiers.sources import HEAD_PARAMS, Head, heads, seed_head
from classifiers.tasks import TaskModel, train_task
from classifiers.text import TextPreparer
from classifiers.training import SEED_CORPUS, held_out_scores, use_task_models
from classifiers.triager import MODEL_NAME
from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.assist.corrections import corrected_labels
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.store.models import shared_registry

Rows = list[tuple[str, str]]


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def agents_labels() -> tuple[dict[str, Rows], int]:
    """Per task, the (text, label) rows agents corrected; and how many corrections there were."""
    store = open_store(Settings.from_environment())
    try:
        store.ensure_schema()
        corrections = store.list_corrections()
    finally:
        store.close()
    return corrected_labels(corrections), len(corrections)


def base_heads(
    tasks: list[str], data: Path | None, permissive: bool, corpus: Path
) -> dict[str, Head]:
    """Each task's rows before the corrections: its real sets where ``data`` has them, else the
    seed corpus's."""
    real = {h.task: h for h in heads(data, permissive)} if data is not None and tasks else {}
    return {t: real[t] if t in real else seed_head(t, corpus) for t in tasks}


def split_corrections(rows: Rows, test_size: float, seed: int) -> tuple[Rows, Rows]:
    """A share of the corrected posts held out (none while there are fewer than two)."""
    if len(rows) < 2:
        return rows, []
    train, test = train_test_split(rows, test_size=test_size, random_state=seed)
    return list(train), list(test)


def macro_f1(bundle: TriageModel, task: str, prepared: list[str], labels: list[str]) -> float:
    scores = held_out_scores(bundle, prepared, [{task: y} for y in labels], [task])
    return float(scores[task]["macro_f1"])


def challenge(
    bundle: TriageModel, base: Head, corrected: Rows, test_size: float, seed: int
) -> tuple[TaskModel | None, dict[str, Any]]:
    """Train a challenger for one head and score it and the active head on the held-out rows."""
    name = base.task
    train, held = base.split(test_size, seed)
    fix_train, fix_held = split_corrections(corrected, test_size, seed)
    report: dict[str, Any] = {"corrections": len(corrected), "sources": dict(base.sources)}
    if name not in bundle.tasks:
        return None, report | {"skipped": f"the active bundle has no {name} head"}
    unknown = sorted(set(bundle.labels(name)) - set(train.labels) - {y for _, y in fix_train})
    if unknown:  # another label set: a brand's own head, put in by `triage models use`
        return None, report | {
            "skipped": f"the active head's labels {unknown} are not in its training rows; "
            "retrain it with `triage train --task` and `triage models use`"
        }
    trained = train_task(
        name,
        Labelled(
            train.texts + [t for t, _ in fix_train],
            train.labels + [y for _, y in fix_train],
            ["text", "label"],
        ),
        **HEAD_PARAMS,
    )
    texts = held.texts + [t for t, _ in fix_held]
    truth = held.labels + [y for _, y in fix_held]
    prepared = TextPreparer().prepare(texts)
    challenger = bundle.use(name, trained.model)
    report |= {
        "train_rows": trained.train_rows,
        "held_out": len(truth),
        "held_out_corrections": len(fix_held),
        "selection": trained.selection,
        "active": round(macro_f1(bundle, name, prepared, truth), 4),
        "candidate": round(macro_f1(challenger, name, prepared, truth), 4),
    }
    if fix_held:  # the posts agents said the model got wrong, alone
        fixes = prepared[len(held.texts) :]
        ys = [y for _, y in fix_held]
        report["on_corrections"] = {
            "active": round(macro_f1(bundle, name, fixes, ys), 4),
            "candidate": round(macro_f1(challenger, name, fixes, ys), 4),
        }
    return trained, report


def compare(
    registry: Registry,
    corrected: Mapping[str, Rows],
    bases: Mapping[str, Head],
    margin: float,
    test_size: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Challenge every corrected head of the active bundle; register one version with the heads
    that won by ``margin`` replaced, the others kept, and make it active."""
    active = registry.active(MODEL_NAME)
    if active is None:
        raise ConfigError("no active bundle to retrain; run `make models` or `triage train`")
    bundle, _ = registry.load(MODEL_NAME, active)
    reports: dict[str, dict[str, Any]] = {}
    winners: list[TaskModel] = []
    for name in sorted(corrected):
        trained, report = challenge(bundle, bases[name], corrected[name], test_size, seed)
        report["replaced"] = (
            trained is not None and report["candidate"] - report["active"] >= margin
        )
        if trained is not None and report["replaced"]:
            winners.append(trained)
        reports[name] = report
    version = None
    if winners:
        version = use_task_models(
            registry,
            winners,
            base=active,
            metrics={
                m.task: {"retrain": {k: v for k, v in reports[m.task].items() if k != "selection"}}
                for m in winners
            },
            trained_by="retrain flow",
        )
    return {
        "active": active,
        "heads": reports,
        "margin": margin,
        "replaced": [m.task for m in winners],
        "promoted": version is not None,
        "version": version,
    }


def comparison_table(result: dict[str, Any], corrections: int) -> str:
    lines = [
        f"# Retrain: each corrected head against the active bundle `{result['active']}`",
        "",
        f"{corrections} agents' corrections. Macro-F1 on each head's held-out rows (the rows "
        "`make models` held out from it, or whole seed templates, plus a share of the corrected "
        "posts); a head is replaced when its challenger gains at least "
        f"{result['margin']}.",
        "",
        "| head | corrections | training rows | held out | active | challenger | change | "
        "on held-out corrections | decision |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["heads"].items():
        if "skipped" in r:
            lines.append(f"| {name} | {r['corrections']} | | | | | | | skipped: {r['skipped']} |")
            continue
        fixes = r.get("on_corrections")
        shown = f"{fixes['active']:.4f} -> {fixes['candidate']:.4f}" if fixes else "n/a"
        decision = "replaced" if r["replaced"] else "kept"
        lines.append(
            f"| {name} | {r['corrections']} | {r['train_rows']:,} | {r['held_out']:,} | "
            f"{r['active']:.4f} | {r['candidate']:.4f} | {r['candidate'] - r['active']:+.4f} | "
            f"{shown} | {decision} |"
        )
    verdict = (
        f"**promoted** as `{result['version']}` (new heads: {', '.join(result['replaced'])}; "
        "the others kept)"
        if result["promoted"]
        else "**not promoted**: the active bundle stays"
    )
    if not result["heads"]:
        verdict += " (no corrections to learn from)"
    return "\n".join([*lines, "", f"{verdict}."]) + "\n"


@task
def train_and_compare(
    corrected: dict[str, Rows],
    data: str | None,
    permissive: bool | None,
    corpus: str,
    margin: float,
    test_size: float,
    seed: int,
) -> dict[str, Any]:
    cfg = Settings.from_environment()
    store = open_store(cfg)
    try:  # the deployment's registry, the one its workers follow
        registry = shared_registry(cfg, store)
        if permissive is None:
            permissive = built_permissive(registry)
        bases = base_heads(
            sorted(corrected), Path(data) if data else None, permissive, Path(corpus)
        )
        return compare(registry, corrected, bases, margin, test_size, seed)
    finally:
        store.close()


def built_permissive(registry: Registry) -> bool:
    """Whether the active bundle was built without the research-only and unstated-licence sets
    (``make models PERMISSIVE=1``, recorded in its version and carried to versions built on it):
    a retrained head must not bring them back."""
    active = registry.active(MODEL_NAME)
    params = registry.versions(MODEL_NAME).get(active or "", {}).get("params", {})
    return bool(params.get("permissive") == "True")


@flow(name="retrain", **RUN_HOOKS)
def retrain(
    margin: float = 0.01,
    data: str | None = None,
    permissive: bool | None = None,
    corpus: str | None = None,
    test_size: float = 0.2,
    seed: int = 0,
) -> dict[str, Any]:
    """Retrain the heads agents corrected; replace only those that clearly improve.

    ``data``: the shared data folder ``make models`` reads (its real sets), else the seed
    corpus alone; ``permissive`` as ``make models PERMISSIVE=1`` (by default, as the active
    bundle was built); ``corpus``: the seed corpus.
    ``test_size`` and ``seed`` default to ``make models``'s split, which keeps the held-out rows
    unseen by the active heads.
    """
    log = get_run_logger()
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1, not {test_size}")
    seed_corpus = Path(corpus) if corpus else SEED_CORPUS
    if not seed_corpus.is_file():
        raise ConfigError(f"corpus file {seed_corpus} does not exist")
    if data is not None and not Path(data).is_dir():
        raise ConfigError(f"data folder {data} does not exist")
    corrected, corrections = agents_labels()
    result = train_and_compare(
        corrected, data, permissive, str(seed_corpus), margin, test_size, seed
    )
    create_markdown_artifact(
        key="retrain-comparison",
        markdown=comparison_table(result, corrections),
        description="each corrected head: challenger vs active head on its held-out rows",
    )
    for name, r in result["heads"].items():
        if "skipped" in r:
            log.info("retrain %s: skipped, %s", name, r["skipped"])
        else:
            log.info(
                "retrain %s: %.4f -> %.4f (margin %s): %s",
                name,
                r["active"],
                r["candidate"],
                margin,
                "replaced" if r["replaced"] else "kept",
            )
    log.info("retrain: %s", f"promoted {result['version']}" if result["promoted"] else "no change")
    return {**result, "corrections": corrections}
