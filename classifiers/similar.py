"""Nearest resolved cases for a new post: a vector index over the resolved history.

Two similarities, added: cosine over word 1-3-gram and character 1-4-gram TF-IDF (what the words
say), and cosine in a space learned from the history's own topic labels (latent semantic analysis,
then linear discriminant analysis), which pulls together cases that were filed under one topic even
when they share few words. Only labels of resolved items are used, so it works at query time.
Within the top ``k`` no topic takes more than ``per_topic`` places while other topics are among
the candidates, so an ambiguous post shows the agent alternatives instead of five copies of one
guess. The defaults are the settings chosen on a validation split of Banking77's train split
(``bench/similar_quality.py``).

A query is two stages, because the exact sparse cosine touches every item that shares a
character n-gram with the query (1-grams are in nearly all of them): one float32 matrix product
over dense vectors (the LSA vector and the LDA vector, about 280 floats an item) shortlists
``shortlist`` rows, and the full scorer re-ranks only those. Small histories are scored exactly.

Items resolved after the fit are appended with the fitted vectorizers (no refit), so the index
follows the history as it grows; ``SimilarIndex.fit`` again when it has grown a lot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.decomposition import TruncatedSVD
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

MERGE_ROWS = 2_000


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, np.float32(1e-12))


@dataclass(frozen=True)
class Neighbour:
    row: int
    score: float


class SimilarIndex(BaseEstimator):
    """Fit on (texts, topic labels); ``add`` later items; ``query`` for the nearest rows."""

    def __init__(
        self,
        metric_weight: float = 0.7,
        lsa_components: int = 300,
        per_topic: int = 1,
        candidates: int = 64,
        shortlist: int = 256,
        min_labelled: int = 50,
        random_state: int = 0,
    ) -> None:
        self.metric_weight = metric_weight
        self.lsa_components = lsa_components
        self.per_topic = per_topic
        self.candidates = candidates
        self.shortlist = shortlist
        self.min_labelled = min_labelled
        self.random_state = random_state

    def fit(self, texts: Sequence[str], topics: Sequence[str]) -> SimilarIndex:
        if len(texts) != len(topics):
            raise ValueError("one topic per text")
        self.word_ = TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True)
        self.char_ = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(1, 4),
            sublinear_tf=True,
            min_df=2 if len(texts) > 100 else 1,
        )
        texts = list(texts)
        self.word_.fit(texts)
        self.char_.fit(texts)
        vectors = self._sparse(texts)
        self.svd_: TruncatedSVD | None = None
        self.lda_: LinearDiscriminantAnalysis | None = None
        if len(texts) >= self.min_labelled:
            n = min(self.lsa_components, vectors.shape[1] - 1, len(texts) - 1)
            self.svd_ = TruncatedSVD(n, n_iter=4, random_state=self.random_state).fit(vectors)
            if len(set(topics)) >= 2 and self.metric_weight > 0:
                self.lda_ = LinearDiscriminantAnalysis().fit(self.svd_.transform(vectors), topics)
        self._linear()
        self.topics_: list[str] = list(topics)
        self._rows = vectors  # item x feature, re-ranking reads the shortlisted rows
        self._recent: sparse.csr_matrix | None = None  # items added since, merged in chunks
        self._dense = self._dense_of(vectors)
        self._size = vectors.shape[0]
        return self

    def _sparse(self, texts: Sequence[str]) -> sparse.csr_matrix:
        stacked = sparse.hstack([self.word_.transform(texts), self.char_.transform(texts)])
        return normalize(stacked.tocsr())

    def _linear(self) -> None:
        """The fitted LSA and LDA maps as plain contiguous float32 arrays: a query is one row,
        and going through the estimators' transform copies the whole projection every time."""
        self._project: np.ndarray | None = None
        self._shift: np.ndarray | None = None
        self._scalings: np.ndarray | None = None
        if self.svd_ is None:
            return
        self._project = np.ascontiguousarray(self.svd_.components_.T, dtype=np.float32)
        if self.lda_ is not None:
            width = min(len(self.lda_.classes_) - 1, self.lda_.scalings_.shape[1])
            self._shift = np.asarray(self.lda_.xbar_, dtype=np.float32)
            self._scalings = np.ascontiguousarray(self.lda_.scalings_[:, :width], np.float32)

    def _dense_of(self, vectors: sparse.csr_matrix) -> np.ndarray:
        """Unit LSA vector, then unit LDA vector, side by side (float32)."""
        if self._project is None:
            return np.zeros((vectors.shape[0], 0), dtype=np.float32)
        lsa = np.asarray(vectors.astype(np.float32) @ self._project)
        parts = [_unit(lsa)]
        if self._shift is not None and self._scalings is not None:
            parts.append(_unit((lsa - self._shift) @ self._scalings))
        return np.hstack(parts)

    def __len__(self) -> int:
        return getattr(self, "_size", 0)

    def add(self, texts: Sequence[str], topics: Sequence[str]) -> None:
        """Append newly resolved items (rows ``len(self)`` onwards) with the fitted vectorizers."""
        if not texts:
            return
        vectors = self._sparse(list(texts))
        recent = vectors if self._recent is None else sparse.vstack([self._recent, vectors])
        if recent.shape[0] >= MERGE_ROWS:
            self._rows = sparse.vstack([self._rows, recent]).tocsr()
            self._recent = None
        else:
            self._recent = recent.tocsr()
        extra = self._dense_of(vectors)
        if self._size + len(extra) > len(self._dense):  # grow by doubling: adds stay cheap
            grown = np.empty((max(2 * len(self._dense), self._size + len(extra)),
                              self._dense.shape[1]), dtype=np.float32)
            grown[: self._size] = self._dense[: self._size]
            self._dense = grown
        self._dense[self._size : self._size + len(extra)] = extra
        self._size += len(extra)
        self.topics_.extend(topics)

    def _exact(self, vector: sparse.csr_matrix, dense: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The full score of one query against ``rows`` (sorted): TF-IDF cosine plus the
        weighted cosine in the topic space."""
        main = self._rows.shape[0]
        cut = int(np.searchsorted(rows, main))
        parts = [self._rows[rows[:cut]] @ vector.T]
        if cut < len(rows) and self._recent is not None:
            parts.append(self._recent[rows[cut:] - main] @ vector.T)
        result = np.asarray(sparse.vstack(parts).todense(), dtype=np.float32).ravel()
        if self.lda_ is not None:
            lsa = self._project.shape[1] if self._project is not None else 0
            metric = self._dense[rows, lsa:] @ dense[lsa:]
            result += self.metric_weight * metric
        return result

    def _candidates(self, dense: np.ndarray, allowed: np.ndarray | None) -> list[np.ndarray]:
        """Rows worth scoring exactly for each query (dense vectors, one a row), sorted: all
        allowed rows of a small index, else the ``shortlist`` best by the dense vectors."""
        if self.svd_ is None or self._size <= self.shortlist:
            rows = np.arange(self._size)
            return [rows if allowed is None else rows[allowed[: self._size]]] * len(dense)
        weights = dense.copy()
        weights[:, self.svd_.n_components :] *= self.metric_weight  # the LDA part
        cheap = weights @ self._dense[: self._size].T
        if allowed is not None:
            cheap[:, ~allowed[: self._size]] = -np.inf
        n = min(self.shortlist, self._size)
        tops = np.argpartition(-cheap, n - 1, axis=1)[:, :n]
        return [np.sort(top[np.isfinite(c[top])]) for top, c in zip(tops, cheap, strict=True)]

    def query(
        self,
        text: str,
        k: int = 5,
        allowed: np.ndarray | None = None,
        first_topic: str | None = None,
    ) -> list[Neighbour]:
        """The ``k`` nearest rows; ``allowed`` masks rows (e.g. same language); rows of
        ``first_topic`` are listed first."""
        return self.query_many([text], k, allowed, first_topic)[0]

    def query_many(
        self,
        texts: Sequence[str],
        k: int = 5,
        allowed: np.ndarray | None = None,
        first_topic: str | None = None,
    ) -> list[list[Neighbour]]:
        """``query`` for several texts at once: one vectorizer call and one matrix product."""
        if not len(self) or not texts:
            return [[] for _ in texts]
        vectors = self._sparse(list(texts))
        dense = self._dense_of(vectors)
        found: list[list[Neighbour]] = []
        for i, rows in enumerate(self._candidates(dense, allowed)):
            if not len(rows):
                found.append([])
                continue
            scores = self._exact(vectors[i], dense[i], rows)
            found.append(self.pick(rows, scores, k, first_topic))
        return found

    def pick(
        self, rows: np.ndarray, row_scores: np.ndarray, k: int, first_topic: str | None = None
    ) -> list[Neighbour]:
        """The top ``k`` of ``rows`` by ``row_scores``, at most ``per_topic`` a topic while
        other topics are among the best ``candidates``."""
        order = np.argsort(-row_scores, kind="stable")[: self.candidates]
        taken: dict[str, int] = {}
        chosen: list[Neighbour] = []
        skipped: list[Neighbour] = []
        for i in order:
            if len(chosen) == k:
                break
            row, score = int(rows[i]), float(row_scores[i])
            topic = self.topics_[row]
            if taken.get(topic, 0) >= self.per_topic:
                skipped.append(Neighbour(row, score))
                continue
            taken[topic] = taken.get(topic, 0) + 1
            chosen.append(Neighbour(row, score))
        # fewer topics than places: the cap gives way rather than show less than there is
        chosen = sorted(chosen + skipped[: k - len(chosen)], key=lambda nb: -nb.score)
        if first_topic is not None:
            chosen.sort(key=lambda nb: self.topics_[nb.row] != first_topic)
        return chosen
