"""The retrain flow: learn from the labelled seed corpus plus agents' corrections, and promote the
new model only if it beats the active one by a margin on data neither was tuned on.

Rows are split by group (a seed template, or one corrected post), so the held-out split never
holds a fill of a template the candidate learned. Both models are scored on that split with
macro-F1 per task; the candidate is promoted when its mean is at least ``margin`` higher. The
comparison is recorded as a markdown table artifact whatever the decision. What is promoted is
exactly the model that was measured. Workers load the active model when they start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from sklearn.model_selection import GroupShuffleSplit

from classifiers.model import TriageModel
from classifiers.registry import Registry
from classifiers.text import TextPreparer
from classifiers.training import SEED_CORPUS, held_out_scores, read_seed, rows_digest
from classifiers.triager import MODEL_NAME, OPTIONAL_TASKS, TASKS, bundle_tasks
from flows.retries import RETRIES, RETRY_DELAY_S, transient_only
from flows.run_log import RUN_HOOKS
from pipeline.assist.corrections import corrected_rows
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store import open_store
from pipeline.store.models import shared_registry


@task(retries=RETRIES, retry_delay_seconds=RETRY_DELAY_S, retry_condition_fn=transient_only)
def labelled_rows(corpus: str | None) -> tuple[list[dict[str, Any]], int]:
    """The seed corpus and one row per corrected post; and how many corrections there were."""
    path = Path(corpus) if corpus else SEED_CORPUS
    if not path.is_file():
        raise ConfigError(f"corpus file {path} does not exist")
    rows = read_seed(path)
    store = open_store(Settings.from_environment())
    try:
        store.ensure_schema()
        corrections = store.list_corrections()
    finally:
        store.close()
    return rows + corrected_rows(corrections), len(corrections)


def macro_f1(model: TriageModel, texts: list[str], rows: list[dict[str, Any]]) -> dict[str, float]:
    scores = held_out_scores(model, texts, rows, TASKS + OPTIONAL_TASKS)
    return {task: s["macro_f1"] for task, s in scores.items()}


@task
def train_and_compare(
    rows: list[dict[str, Any]], margin: float, test_size: float, seed: int
) -> dict[str, Any]:
    """Fit a candidate on the training split, score it and the active model on the held-out
    split, and register the candidate as active if it wins by ``margin``."""
    cfg = Settings.from_environment()
    store = open_store(cfg)
    try:  # the deployment's registry, the one its workers follow
        return compare(shared_registry(cfg, store), rows, margin, test_size, seed)
    finally:
        store.close()


def compare(
    registry: Registry, rows: list[dict[str, Any]], margin: float, test_size: float, seed: int
) -> dict[str, Any]:
    prepared = TextPreparer().prepare([r["text"] for r in rows], [r["language"] for r in rows])
    groups = [r.get("template") or str(i) for i, r in enumerate(rows)]
    train, test = next(
        GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(
            rows, groups=groups
        )
    )
    tasks = bundle_tasks(rows)
    candidate = TriageModel().fit(
        [prepared[i] for i in train], {t: [rows[i].get(t) for i in train] for t in tasks}
    )
    held_texts, held_rows = [prepared[i] for i in test], [rows[i] for i in test]
    new = macro_f1(candidate, held_texts, held_rows)
    active_version = registry.active(MODEL_NAME)
    old: dict[str, float] | None = None
    if active_version is not None:
        active, _ = registry.load(MODEL_NAME)
        old = macro_f1(active, held_texts, held_rows)
    # compared on the tasks both models have (an older active bundle may lack a head)
    common = [t for t in new if old is None or t in old]
    gain = float(np.mean([new[t] for t in common])) - (
        float(np.mean([old[t] for t in common])) if old else 0.0
    )
    promoted = old is None or gain >= margin
    version = None
    if promoted:
        digest = rows_digest(rows, tasks)
        version = registry.register(
            MODEL_NAME,
            candidate,
            data_sha256=digest,
            metrics={t: {"macro_f1": f1} for t, f1 in new.items()} | {"held_out": len(test)},
            params=candidate.get_params(),
        )
    return {
        "active": active_version,
        "candidate": new,
        "active_scores": old,
        "gain": round(gain, 4),
        "margin": margin,
        "promoted": promoted,
        "version": version,
        "train_rows": len(train),
        "held_out": len(test),
    }


def comparison_table(result: dict[str, Any], corrections: int) -> str:
    old = result["active_scores"] or {}
    lines = [
        f"# Retrain: candidate vs active `{result['active']}`",
        "",
        f"{result['train_rows']} training rows ({corrections} agents' corrections in the data), "
        f"{result['held_out']} held out; macro-F1 on the held-out split.",
        "",
        "| task | active | candidate | change |",
        "|---|---|---|---|",
    ]
    for name, new in result["candidate"].items():
        was = old.get(name)
        change = "n/a" if was is None else f"{new - was:+.4f}"
        shown = "n/a" if was is None else f"{was:.4f}"
        lines.append(f"| {name} | {shown} | {new:.4f} | {change} |")
    verdict = (
        f"**promoted** as `{result['version']}`"
        if result["promoted"]
        else "**not promoted**: the active model stays"
    )
    gain, margin = result["gain"], result["margin"]
    lines += ["", f"Mean gain {gain:+.4f} against a margin of {margin}: {verdict}."]
    return "\n".join(lines) + "\n"


@flow(name="retrain", **RUN_HOOKS)
def retrain(
    margin: float = 0.01, corpus: str | None = None, test_size: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Train from the seed corpus and agents' corrections; promote only a clear improvement."""
    log = get_run_logger()
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size must be between 0 and 1, not {test_size}")
    rows, corrections = labelled_rows(corpus)
    result = train_and_compare(rows, margin, test_size, seed)
    create_markdown_artifact(
        key="retrain-comparison",
        markdown=comparison_table(result, corrections),
        description="candidate vs active model on the held-out split",
    )
    log.info(
        "retrain: gain %+.4f (margin %s): %s",
        result["gain"],
        margin,
        f"promoted {result['version']}" if result["promoted"] else "not promoted",
    )
    return {**result, "corrections": corrections}
