"""Training and evaluating one label set from a user's file: ``triage train/evaluate --task``.

Any task (spam, topic, urgency, sentiment, emotion, or a custom label set) goes through the same
machinery: text preparation, then a ``TextClassifier``. The saved artefact carries what it was
trained on, so that evaluation can refuse a mismatched task or labels the model never saw.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

from classifiers.datasets import Labelled
from classifiers.model import TextClassifier
from classifiers.registry import data_hash
from classifiers.text import TextPreparer
from pipeline.errors import ConfigError


@dataclass
class TaskModel:
    task: str
    model: TextClassifier
    labels: list[str]
    data_sha256: str
    train_rows: int
    created_at: str
    params: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.model.predict(TextPreparer().prepare(texts))


def train_task(task: str, data: Labelled, **params: Any) -> TaskModel:
    classes = sorted(set(data.labels))
    if len(classes) < 2:
        raise ConfigError(f"training needs at least two labels; the file has only {classes}")
    counts = Counter(data.labels)
    rare = sorted(label for label, n in counts.items() if n < 2)
    if rare:
        shown = ", ".join(map(repr, rare[:5]))
        raise ConfigError(f"every label needs at least two examples; these have one: {shown}")
    model = TextClassifier(**params).fit(TextPreparer().prepare(data.texts), data.labels)
    return TaskModel(
        task=task,
        model=model,
        labels=classes,
        data_sha256=data_hash(list(zip(data.texts, data.labels, strict=True))),
        train_rows=len(data.texts),
        created_at=datetime.now(UTC).isoformat(),
        params=model.get_params(),
    )


def save(model: TaskModel, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path, compress=3)


def load(path: Path) -> TaskModel:
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            model = joblib.load(path)
        except InconsistentVersionWarning as exc:
            raise ConfigError(f"{path.name} was saved by another scikit-learn version") from exc
        except Exception as exc:  # joblib raises many kinds for a file that is not a model
            raise ConfigError(f"{path.name} is not a model saved by `triage train`") from exc
    if not isinstance(model, TaskModel):
        raise ConfigError(f"{path.name} is not a model saved by `triage train --task`")
    return model


def evaluate(model: TaskModel, task: str, data: Labelled) -> dict[str, Any]:
    if task != model.task:
        raise ConfigError(f"the model was trained for task {model.task!r}, not {task!r}")
    unknown = sorted(set(data.labels) - set(model.labels))
    if unknown:
        shown = ", ".join(map(repr, unknown[:5]))
        raise ConfigError(f"labels the model never saw: {shown}; it knows {model.labels}")
    predicted = model.predict(data.texts)
    labels = model.labels
    precision, recall, f1, support = precision_recall_fscore_support(
        data.labels, predicted, labels=labels, zero_division=0
    )
    return {
        "task": task,
        "rows": len(data.labels),
        "accuracy": float(accuracy_score(data.labels, predicted)),
        "macro_f1": float(
            f1_score(data.labels, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "mcc": float(matthews_corrcoef(data.labels, predicted)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
        "confusion_matrix": {
            "labels": labels,
            "matrix": confusion_matrix(data.labels, predicted, labels=labels).tolist(),
        },
        "model": {
            "task": model.task,
            "data_sha256": model.data_sha256,
            "created_at": model.created_at,
            "train_rows": model.train_rows,
        },
    }
