"""`train_task` on the small and skewed sets a brand starts with: never worse than the plain
baseline on held-out rows by more than noise, rare labels still predicted, single-example labels
kept out and named. Built from the public sets in ../shared/data, kept small so it runs fast."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from classifiers.datasets import Labelled
from classifiers.model import PlainClassifier
from classifiers.tasks import train_task
from classifiers.text import TextPreparer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# Held-out macro-F1 moves by about this much between equally good models on a few hundred rows.
NOISE = 0.03


def banking_small() -> tuple[Labelled, Labelled]:
    """16 Banking77 intents, 15 training rows each; the test file's rows of those intents."""

    def read(name: str) -> dict[str, list[str]]:
        by_label: dict[str, list[str]] = defaultdict(list)
        with (DATA / "banking77" / "banking_data" / name).open() as f:
            for row in csv.DictReader(f):
                by_label[row["category"]].append(row["text"])
        return by_label

    train, test = read("train.csv"), read("test.csv")
    intents = sorted(train)[::5][:16]
    pick = random.Random(0)
    rows = [(t, y) for y in intents for t in pick.sample(train[y], 15)]
    held = [(t, y) for y in intents for t in test[y]]
    return labelled(rows), labelled(held)


def crisislex_skewed() -> tuple[Labelled, Labelled]:
    """CrisisLex T26 informativeness with its natural skew: 1,200 tweets of three events,
    700 to train and 500 held out at random."""

    def read(event: str) -> list[tuple[str, str]]:
        path = next((DATA / "crisislex" / "data" / "CrisisLexT26" / event).glob("*labeled.csv"))
        with path.open(encoding="utf-8", errors="replace") as f:
            rows = [{k.strip(): v for k, v in r.items()} for r in csv.DictReader(f)]
        return [(r["Tweet Text"], r["Informativeness"]) for r in rows]

    events = ("2012_Colorado_wildfires", "2013_Boston_bombings", "2013_Queensland_floods")
    rows = [row for event in events for row in read(event)[:400]]
    random.Random(0).shuffle(rows)
    return labelled(rows[:700]), labelled(rows[700:])


def labelled(rows: list[tuple[str, str]]) -> Labelled:
    return Labelled([t for t, _ in rows], [y for _, y in rows], ["text", "label"])


def macro_f1(predict: object, test: Labelled) -> float:
    predicted = predict(TextPreparer().prepare(test.texts))  # type: ignore[operator]
    return float(f1_score(test.labels, predicted, average="macro"))


@pytest.mark.parametrize("build", [banking_small, crisislex_skewed], ids=["banking16", "crisislex"])
def test_never_below_the_plain_baseline_beyond_noise(build: object) -> None:
    train, test = build()  # type: ignore[operator]
    trained = train_task("topic", train)
    prepared = TextPreparer().prepare(train.texts)
    baseline = PlainClassifier().fit(prepared, np.asarray(train.labels))
    ours, plain = macro_f1(trained.model.predict, test), macro_f1(baseline.predict, test)
    assert ours >= plain - NOISE, (ours, plain, trained.selection)
    assert trained.selection["winner"] in {"stacked", "plain"}
    assert set(trained.selection["cv_macro_f1"]) == {"stacked", "plain"}


def test_rare_labels_are_predicted_on_skewed_data() -> None:
    train, test = crisislex_skewed()
    predicted = set(train_task("informativeness", train).predict(test.texts).tolist())
    counts = {y: train.labels.count(y) for y in set(train.labels)}
    rarest = min(counts, key=lambda y: counts[y])
    assert counts[rarest] < 0.2 * len(train.labels)  # the set is skewed, as meant
    assert len(predicted) >= 3, predicted


def test_probabilities_agree_with_the_decision() -> None:
    train, test = banking_small()
    trained = train_task("topic", train)
    prepared = TextPreparer().prepare(test.texts[:50])
    proba = trained.model.predict_proba(prepared)
    assert np.allclose(proba.sum(axis=1), 1.0)
    picked = trained.model.classes_[proba.argmax(axis=1)]
    assert (picked == trained.model.predict(prepared)).all()


def test_a_single_example_label_is_kept_out_and_named() -> None:
    train, _ = banking_small()
    rows = [*zip(train.texts, train.labels, strict=True), ("my parcel is on fire", "Fire")]
    trained = train_task("topic", labelled(rows))
    assert trained.selection["dropped_labels"] == ["Fire"]
    assert "Fire" not in trained.labels
    assert trained.train_rows == len(train.texts)
