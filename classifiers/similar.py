"""Nearest resolved cases for a new post: a vector index over the resolved history.

Two similarities, added: cosine over word 1-3-gram and character 1-4-gram TF-IDF (what the words
say), and cosine in a space learned from the history's own topic labels (latent semantic analysis,
then linear discriminant analysis), which pulls together cases that were filed under one topic even
when they share few words. Only labels of resolved items are used, so it works at query time.
Within the top ``k`` no topic takes more than ``per_topic`` places while other topics are among
the candidates, so an ambiguous post shows the agent alternatives instead of five copies of one
guess.

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


@dataclass(frozen=True)
class Neighbour:
    row: int
    score: float


class SimilarIndex(BaseEstimator):
    """Fit on (texts, topic labels); ``add`` later items; ``query`` for the nearest rows."""

    def __init__(
        self,
        metric_weight: float = 0.4,
        lsa_components: int = 200,
        per_topic: int = 3,
        candidates: int = 64,
        min_labelled: int = 50,
        random_state: int = 0,
    ) -> None:
        self.metric_weight = metric_weight
        self.lsa_components = lsa_components
        self.per_topic = per_topic
        self.candidates = candidates
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
        if len(texts) >= self.min_labelled and len(set(topics)) >= 2 and self.metric_weight > 0:
            n = min(self.lsa_components, vectors.shape[1] - 1, len(texts) - 1)
            self.svd_ = TruncatedSVD(n, n_iter=4, random_state=self.random_state).fit(vectors)
            self.lda_ = LinearDiscriminantAnalysis().fit(self.svd_.transform(vectors), topics)
        self.topics_: list[str] = list(topics)
        self._postings = vectors.T.tocsr()  # feature x item: a query touches only its features
        self._recent: list[sparse.csr_matrix] = []  # items added since, merged in chunks
        self.metric_ = self._metric(vectors)
        return self

    def _sparse(self, texts: Sequence[str]) -> sparse.csr_matrix:
        stacked = sparse.hstack([self.word_.transform(texts), self.char_.transform(texts)])
        return normalize(stacked.tocsr())

    def _metric(self, vectors: sparse.csr_matrix) -> np.ndarray | None:
        if self.svd_ is None or self.lda_ is None:
            return None
        projected = self.lda_.transform(self.svd_.transform(vectors))
        return np.asarray(normalize(projected), dtype=np.float32)

    def __len__(self) -> int:
        return len(getattr(self, "topics_", ()))

    def add(self, texts: Sequence[str], topics: Sequence[str]) -> None:
        """Append newly resolved items (rows ``len(self)`` onwards) with the fitted vectorizers."""
        if not texts:
            return
        vectors = self._sparse(list(texts))
        self._recent.append(vectors)
        if sum(m.shape[0] for m in self._recent) >= MERGE_ROWS:
            self._postings = sparse.hstack([self._postings, *(m.T for m in self._recent)]).tocsr()
            self._recent = []
        extra = self._metric(vectors)
        if self.metric_ is not None and extra is not None:
            self.metric_ = np.vstack([self.metric_, extra])
        self.topics_.extend(topics)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Similarity of each query to every indexed item (queries x items)."""
        vectors = self._sparse(list(texts))
        parts = [vectors @ self._postings, *(vectors @ m.T for m in self._recent)]
        result = np.asarray(sparse.hstack(parts).todense(), dtype=np.float32)
        query_metric = self._metric(vectors)
        if self.metric_ is not None and query_metric is not None:
            result += self.metric_weight * (query_metric @ self.metric_.T)
        return result

    def query(
        self,
        text: str,
        k: int = 5,
        allowed: np.ndarray | None = None,
        first_topic: str | None = None,
    ) -> list[Neighbour]:
        """The ``k`` nearest rows; ``allowed`` masks rows (e.g. same language); rows of
        ``first_topic`` are listed first."""
        if not len(self):
            return []
        row_scores = self.scores([text])[0]
        if allowed is not None:
            row_scores = np.where(allowed, row_scores, -np.inf)
        return self.pick(row_scores, k, first_topic)

    def pick(
        self, row_scores: np.ndarray, k: int, first_topic: str | None = None
    ) -> list[Neighbour]:
        n = min(self.candidates, len(row_scores))
        top = np.argpartition(-row_scores, n - 1)[:n] if n < len(row_scores) else np.arange(n)
        top = top[np.argsort(-row_scores[top], kind="stable")]
        taken: dict[str, int] = {}
        chosen: list[Neighbour] = []
        skipped: list[Neighbour] = []
        for row in top:
            score = float(row_scores[row])
            if not np.isfinite(score) or len(chosen) == k:
                break
            topic = self.topics_[row]
            if taken.get(topic, 0) >= self.per_topic:
                skipped.append(Neighbour(int(row), score))
                continue
            taken[topic] = taken.get(topic, 0) + 1
            chosen.append(Neighbour(int(row), score))
        # fewer topics than places: the cap gives way rather than show less than there is
        chosen = sorted(chosen + skipped[: k - len(chosen)], key=lambda nb: -nb.score)
        if first_topic is not None:
            chosen.sort(key=lambda nb: self.topics_[nb.row] != first_topic)
        return chosen
