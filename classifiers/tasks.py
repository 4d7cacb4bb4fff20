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
from sklearn.model_selection import StratifiedKFold

from classifiers.datasets import Labelled
from classifiers.model import PlainClassifier, TextClassifier, fit_temperature, two_columns
from classifiers.registry import data_hash
from classifiers.text import TextPreparer
from pipeline.errors import ConfigError


@dataclass
class TaskModel:
    task: str
    model: TextClassifier | PlainClassifier
    labels: list[str]
    data_sha256: str
    train_rows: int
    created_at: str
    params: dict[str, Any] = field(default_factory=dict)
    # which candidate won and the cross-validated scores (``select``); empty in older models
    selection: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: list[str]) -> np.ndarray:
        return self.model.predict(TextPreparer().prepare(texts))


def cv_splits(labels: np.ndarray, cv: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds, as many as the rarest label allows (at least two): the same folds
    ``TextClassifier`` scores itself on, so both candidates are judged on the same rows."""
    folds = max(2, min(cv, int(np.unique(labels, return_counts=True)[1].min())))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    return list(splitter.split(np.zeros(len(labels)), labels))


def select(prepared: list[str], labels: np.ndarray, **params: Any) -> tuple[Any, dict[str, Any]]:
    """The better of the stacked ``TextClassifier`` and the plain baseline, by macro-F1 across
    stratified folds of the training data alone (no test data is looked at).

    The stacked model reports the score its calibration layer earns out of fold on those folds;
    the plain one is fitted fold by fold, and its out-of-fold scores then fit its temperature.
    A tie goes to the stacked model, whose probabilities are calibrated per label.
    """
    splits = cv_splits(labels, int(params.get("cv", 3)))
    min_df = int(params.get("min_df", 1))
    stacked = TextClassifier(**params).fit(prepared, labels.tolist())
    columns = len(stacked.classes_) if len(stacked.classes_) > 2 else 1
    plain_scores = np.zeros((len(labels), columns))
    per_fold = []
    for train, test in splits:
        fold = PlainClassifier(min_df=min_df).fit([prepared[i] for i in train], labels[train])
        plain_scores[test] = fold.decision_function([prepared[i] for i in test])
        picked = fold.classes_[two_columns(plain_scores[test]).argmax(axis=1)]
        per_fold.append(f1_score(labels[test], picked, average="macro"))
    scores = {
        "stacked": round(stacked.cv_macro_f1_, 4),
        "plain": round(float(np.mean(per_fold)), 4),
    }
    winner = "plain" if scores["plain"] > scores["stacked"] else "stacked"
    report = {"winner": winner, "cv_macro_f1": scores, "folds": len(splits)}
    if winner == "stacked":
        return stacked, report
    scale = fit_temperature(plain_scores, labels, stacked.classes_)
    return PlainClassifier(min_df=min_df, scale=scale).fit(prepared, labels.tolist()), report


def train_task(task: str, data: Labelled, **params: Any) -> TaskModel:
    """Learn one label set. A label with a single example can be neither cross-validated nor
    held out; it is kept out of training and named in ``selection["dropped_labels"]``."""
    counts = Counter(data.labels)
    single = sorted(label for label, n in counts.items() if n < 2)
    keep = [i for i, label in enumerate(data.labels) if counts[label] >= 2]
    texts = [data.texts[i] for i in keep]
    labels = np.asarray([data.labels[i] for i in keep])
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        shown = ", ".join(map(repr, single[:5]))
        raise ConfigError(
            f"training needs at least two labels with two examples or more; the file has "
            f"{sorted(counts)}" + (f" (one example only: {shown})" if single else "")
        )
    model, selection = select(TextPreparer().prepare(texts), labels, **params)
    selection["dropped_labels"] = single
    return TaskModel(
        task=task,
        model=model,
        labels=classes,
        data_sha256=data_hash(list(zip(data.texts, data.labels, strict=True))),
        train_rows=len(texts),
        created_at=datetime.now(UTC).isoformat(),
        params=model.get_params(),
        selection=selection,
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
