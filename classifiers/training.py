"""Training the model bundle the worker ships with, from the project's own seed corpus."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import GroupShuffleSplit

from classifiers.model import TriageModel
from classifiers.registry import Registry, data_hash
from classifiers.seed import write_corpus
from classifiers.tasks import TaskModel
from classifiers.text import TextPreparer
from classifiers.triager import MODEL_NAME, bundle_tasks
from pipeline.errors import ConfigError

SEED_CORPUS = Path(__file__).parent / "seed" / "seed_corpus.jsonl"


def read_seed(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def rows_digest(rows: Sequence[dict[str, Any]], tasks: Sequence[str]) -> str:
    """The training data's hash: each row's text and labels (blank where a row has none)."""
    return data_hash([(r["text"], *(r.get(t) or "" for t in tasks)) for r in rows])


def held_out_scores(
    model: TriageModel, prepared: list[str], rows: list[dict[str, Any]], tasks: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Accuracy and macro-F1 per task, each on the rows that carry that task's label."""
    probs = model.predict_proba(model.transform(prepared))
    scores = {}
    for task in tasks:
        if task not in probs:
            continue
        classes, p = probs[task]
        labelled = [i for i, r in enumerate(rows) if r.get(task) is not None]
        if not labelled:
            continue
        predicted = classes[p[labelled].argmax(axis=1)]
        truth = [str(rows[i][task]) for i in labelled]
        scores[task] = {
            "accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro")), 4),
        }
    return scores


def train_bundle(
    registry: Registry, corpus: Path = SEED_CORPUS, rewrite: bool = False, **params: Any
) -> tuple[str, dict[str, Any]]:
    """Measure on a fifth of the templates held out, then fit on everything and register."""
    if rewrite or not corpus.exists():
        write_corpus(corpus)
    rows = read_seed(corpus)
    tasks = bundle_tasks(rows)
    prepared = TextPreparer().prepare([r["text"] for r in rows], [r["language"] for r in rows])
    labels = {task: [r.get(task) for r in rows] for task in tasks}
    # Hold out whole templates, not fills of templates the model has seen: otherwise the
    # held-out score only measures memory of the template.
    groups = [r.get("template", str(i)) for i, r in enumerate(rows)]
    idx_train, idx_test = next(
        GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=0).split(rows, groups=groups)
    )
    model = TriageModel(**params)
    model.fit(
        [prepared[i] for i in idx_train], {t: [labels[t][i] for i in idx_train] for t in tasks}
    )
    metrics: dict[str, Any] = held_out_scores(
        model, [prepared[i] for i in idx_test], [rows[i] for i in idx_test], tasks
    )
    metrics["held_out"] = len(idx_test)
    final = TriageModel(**params).fit(prepared, labels)
    digest = rows_digest(rows, tasks)
    version = registry.register(
        MODEL_NAME, final, data_sha256=digest, metrics=metrics, params=final.get_params()
    )
    return version, metrics


def use_task_model(registry: Registry, trained: TaskModel) -> str:
    """Register the active bundle with ``trained`` as the head of its task (replacing the head
    the bundle had, or adding the task), make that version active, and return it."""
    return use_task_models(registry, [trained])


def use_task_models(
    registry: Registry,
    trained: Sequence[TaskModel],
    *,
    base: str | None = None,
    metrics: dict[str, dict[str, Any]] | None = None,
    trained_by: str = "triage train --task",
) -> str:
    """One new active version: bundle ``base`` (the active one by default) with each of
    ``trained`` as the head of its task, the other heads kept. ``metrics`` adds to what each
    head's entry records (the retrain flow's held-out comparison)."""
    bundle, base = registry.load(MODEL_NAME, base)
    for model in trained:
        if model.task == "spam" and "spam" not in model.labels:
            raise ConfigError(f"a spam head needs the label 'spam'; this one has {model.labels}")
        bundle = bundle.use(model.task, model.model)
    notes = metrics or {}
    # which data sets the bundle may learn from is a property of its lineage (``make models
    # PERMISSIVE=1``): a version built on it says so too, and the retrain flow reads it back
    lineage = {k: v for k, v in registry.versions(MODEL_NAME).get(base, {}).get("params", {})
               .items() if k == "permissive"}
    return registry.register(
        MODEL_NAME,
        bundle,
        data_sha256=data_hash([(base, m.task, m.data_sha256) for m in trained]),
        metrics={
            m.task: {
                "trained_by": trained_by,
                "train_rows": m.train_rows,
                "selection": getattr(m, "selection", {}),
                **notes.get(m.task, {}),
            }
            for m in trained
        },
        params={
            "base_version": base,
            **{k: v == "True" for k, v in lineage.items()},
            **(
                {"task": trained[0].task, "labels": trained[0].labels}
                if len(trained) == 1
                else {"tasks": {m.task: m.labels for m in trained}}
            ),
        },
    )
