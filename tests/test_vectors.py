"""Pretrained word vectors in ``TextClassifier``: the installed GloVe table, not a stand-in."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import joblib
import numpy as np
import pytest

from classifiers import vectors
from classifiers.model import TextClassifier
from classifiers.text import TextPreparer
from classifiers.vectors import MeanWordVectors
from pipeline.cli.main import main
from tests.test_cli import one_line_error

TRAIN = {
    "money": [
        "refund my payment",
        "the bank charged a fee",
        "my card was charged twice",
        "cash withdrawal failed",
        "interest on my savings",
        "the loan repayment bounced",
    ],
    "travel": [
        "the flight was delayed",
        "my train left late",
        "hotel booking for my trip",
        "the airport lounge was closed",
        "missed the bus to the station",
        "our cruise itinerary changed",
    ],
}
# none of these words is in TRAIN: only what the vectors know links them to a label
UNSEEN = {
    "money": [
        "dollars deducted",
        "salary deposit missing",
        "mortgage installment",
        "wallet cheque",
    ],
    "travel": ["plane departure postponed", "railway journey", "passport visa", "ferry voyage"],
}


def fit(word_vectors: str | None) -> TextClassifier:
    texts = [t for label in TRAIN for t in TRAIN[label]]
    labels = [label for label in TRAIN for _ in TRAIN[label]]
    return TextClassifier(C=1.0, word_vectors=word_vectors).fit(
        TextPreparer().prepare(texts), labels
    )


def unseen_accuracy(model: TextClassifier) -> float:
    texts = [t for label in UNSEEN for t in UNSEEN[label]]
    labels = [label for label in UNSEEN for _ in UNSEEN[label]]
    return float((model.predict(TextPreparer().prepare(texts)) == np.asarray(labels)).mean())


def test_words_never_seen_in_training_count_through_their_neighbours() -> None:
    with_vectors, without = unseen_accuracy(fit(vectors.NAME)), unseen_accuracy(fit(None))
    assert with_vectors >= 0.875
    assert with_vectors > without


def test_a_text_is_the_unit_length_mean_of_its_known_words() -> None:
    view = MeanWordVectors().fit(["unused"])
    rows = view.transform(["refund refund", "refund qqqzzxunknown", "qqqzzxunknown", ""])
    dense = rows.toarray()
    assert dense.shape == (4, vectors.DIMENSIONS)
    assert np.allclose(dense[0], dense[1])  # an unknown word is left out, not averaged in
    assert np.isclose(np.linalg.norm(dense[0]), 1.0)
    assert not dense[2].any() and not dense[3].any()
    assert view.transform([]).shape == (0, vectors.DIMENSIONS)


def test_a_saved_model_predicts_as_it_did(tmp_path: Path) -> None:
    model = fit(vectors.NAME)
    texts = TextPreparer().prepare([t for ts in UNSEEN.values() for t in ts])
    joblib.dump(model, tmp_path / "m.joblib", compress=3)
    loaded = joblib.load(tmp_path / "m.joblib")
    assert list(loaded.predict(texts)) == list(model.predict(texts))
    view = model.featurizer_.transformer_list[2][1]
    again = loaded.featurizer_.transformer_list[2][1]
    assert np.allclose(view.transform(texts).toarray(), again.transform(texts).toarray(), atol=1e-2)


def test_install_keeps_the_most_frequent_words_of_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = ["the", "refund", "parcel"]
    payload = json.dumps(
        {
            "words": words,
            "vectors": {w: [float(i)] * vectors.DIMENSIONS + [1.0, i] for i, w in enumerate(words)},
        }
    ).encode()
    cache = tmp_path / "cache"
    (cache / "vectors").mkdir(parents=True)
    with tarfile.open(cache / "vectors" / Path(vectors.SOURCE).name, "w:gz") as archive:
        info = tarfile.TarInfo(vectors.MEMBER)
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    monkeypatch.setattr(vectors, "INSTALLED", tmp_path / "installed")
    monkeypatch.setattr(vectors, "WORDS", 2)

    assert vectors.install(cache) == tmp_path / "installed" / f"{vectors.NAME}.npz"
    loaded_words, table = vectors.load(vectors.NAME)
    assert loaded_words == ["the", "refund"]
    assert table.shape == (2, vectors.DIMENSIONS) and table[1].tolist() == [1.0] * 100


def test_training_without_the_vectors_installed_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "labels.csv"
    data.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(8)))
    monkeypatch.setattr(vectors, "INSTALLED", tmp_path / "none")
    monkeypatch.setattr(
        sys, "argv", ["triage", "train", "--task", "x", "--data", str(data), "--out", "m"]
    )
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    assert one_line_error(capsys.readouterr().err) == (
        "triage: word vectors 'glove-100d' are not installed: run `triage models vectors`"
    )
