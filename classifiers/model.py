"""scikit-learn estimators over prepared text.

``TextClassifier`` learns one label set; ``TriageModel`` learns several (spam, topic, urgency,
sentiment) over one shared feature space, so that the worker runs one vectorizer call and one
``predict_proba`` per task for a whole batch. Both follow scikit-learn's conventions: parameters
in ``__init__``, learning in ``fit``, fitted attributes ending in ``_``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion


def make_featurizer(
    word_ngrams: tuple[int, int], char_ngrams: tuple[int, int], min_df: int
) -> FeatureUnion:
    """Word n-grams over spaCy tokens plus character n-grams, both TF-IDF with sublinear tf."""
    return FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    analyzer="word",
                    token_pattern=r"\S+",
                    lowercase=False,
                    ngram_range=word_ngrams,
                    min_df=min_df,
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    lowercase=False,
                    ngram_range=char_ngrams,
                    min_df=min_df,
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
        ]
    )


def _head(C: float, class_weight: str | None) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=3000, class_weight=class_weight)


def top_evidence(
    Z: sparse.csr_matrix, coef: np.ndarray, rows_classes: np.ndarray, names: np.ndarray, k: int
) -> list[list[str]]:
    """For each row, the k features that pushed hardest towards the class predicted for it."""
    out: list[list[str]] = []
    Z = Z.tocsr()
    for i in range(Z.shape[0]):
        start, end = Z.indptr[i], Z.indptr[i + 1]
        cols = Z.indices[start:end]
        if cols.size == 0:
            out.append([])
            continue
        contrib = Z.data[start:end] * coef[rows_classes[i], cols]
        best = np.argsort(-contrib)[:k]
        out.append([str(names[cols[j]]).split("__", 1)[-1].strip() for j in best if contrib[j] > 0])
    return out


class TextClassifier(ClassifierMixin, BaseEstimator):
    """One label set, learned from prepared text (see classifiers.text.TextPreparer)."""

    def __init__(
        self,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        min_df: int = 1,
        C: float = 10.0,
        class_weight: str | None = "balanced",
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.C = C
        self.class_weight = class_weight

    def fit(self, X: Sequence[str], y: Sequence[Any]) -> TextClassifier:
        self.featurizer_ = make_featurizer(self.word_ngrams, self.char_ngrams, self.min_df)
        Z = self.featurizer_.fit_transform(X)
        self.estimator_ = _head(self.C, self.class_weight).fit(Z, np.asarray(y))
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        return np.asarray(self.estimator_.predict_proba(self.featurizer_.transform(X)))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


class TriageModel(BaseEstimator):
    """Several label sets over one shared feature space: the model bundle the worker loads."""

    def __init__(
        self,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        min_df: int = 1,
        C: float = 10.0,
        class_weight: str | None = "balanced",
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.C = C
        self.class_weight = class_weight

    def fit(self, X: Sequence[str], Y: Mapping[str, Sequence[Any]]) -> TriageModel:
        self.featurizer_ = make_featurizer(self.word_ngrams, self.char_ngrams, self.min_df)
        Z = self.featurizer_.fit_transform(X)
        self.heads_ = {
            task: _head(self.C, self.class_weight).fit(Z, np.asarray(labels))
            for task, labels in Y.items()
        }
        self.feature_names_ = self.featurizer_.get_feature_names_out()
        return self

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads_)

    def transform(self, X: Sequence[str]) -> sparse.csr_matrix:
        return self.featurizer_.transform(X).tocsr()

    def predict_proba(self, Z: sparse.csr_matrix) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per task: (classes, probabilities) for every row of an already-transformed batch."""
        return {task: (h.classes_, h.predict_proba(Z)) for task, h in self.heads_.items()}

    def evidence(
        self, task: str, Z: sparse.csr_matrix, predicted: np.ndarray, k: int = 3
    ) -> list[list[str]]:
        head = self.heads_[task]
        coef = head.coef_
        if coef.shape[0] == 1:  # binary: one row of weights, for classes_[1]
            coef = np.vstack([-coef[0], coef[0]])
        return top_evidence(Z, coef, predicted, self.feature_names_, k)
