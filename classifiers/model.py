"""scikit-learn estimators over prepared text.

``TextClassifier`` learns one label set; ``TriageModel`` learns several (spam, topic, urgency,
sentiment) over one shared feature space, so that the worker runs one vectorizer call and one
``predict_proba`` per task for a whole batch. Both follow scikit-learn's conventions: parameters
in ``__init__``, learning in ``fit``, fitted attributes ending in ``_``.
"""

from __future__ import annotations

import copy
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from classifiers.ngrams import NgramTfidf
from classifiers.vectors import NAME as GLOVE
from classifiers.vectors import MeanWordVectors

# Prepared Chinese text has a space between characters (one spaCy token each); the character
# view reads the run of characters as written, so that its n-grams span words.
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_CJK_GAP = re.compile(rf"(?<={_HAN}) (?={_HAN})")


def join_cjk(text: str) -> str:
    return _CJK_GAP.sub("", text)


def make_featurizer(
    word_ngrams: tuple[int, int],
    char_ngrams: tuple[int, int],
    min_df: int,
    join_chinese: bool = False,
    word_vectors: str | None = None,
    vector_weight: float = 1.0,
) -> FeatureUnion:
    """Word n-grams over spaCy tokens plus character n-grams, both TF-IDF with sublinear tf, and
    optionally the text's mean pretrained word vector (``classifiers.vectors``).

    ``join_chinese`` lets the character view read Chinese as written (n-grams across words).
    Measured: +1.3 points accuracy on waimai_10k for ``TextClassifier``; on the seed bundle's
    held-out templates it lowered topic accuracy (0.714 to 0.657), so the bundle keeps it off.
    """
    views: list[tuple[str, Any]] = (
        [] if word_vectors is None else [("vectors", MeanWordVectors(word_vectors))]
    )
    return FeatureUnion(
        [
            (
                "word",
                NgramTfidf(
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
                NgramTfidf(
                    analyzer="char_wb",
                    preprocessor=join_cjk if join_chinese else None,
                    lowercase=False,
                    ngram_range=char_ngrams,
                    min_df=min_df,
                    sublinear_tf=True,
                    dtype=np.float32,
                ),
            ),
            *views,
        ],
        transformer_weights={"vectors": vector_weight} if views else None,
    )


def single_precision(svm: LinearSVC) -> LinearSVC:
    """The SVM with float32 weights, as the features are: half the bytes a saved model carries
    (its weights were most of the shipped bundle's 7.5 MB), and no decision moves by more than
    float32's rounding (``docs/models.md``)."""
    svm.coef_ = np.asarray(svm.coef_, dtype=np.float32)
    svm.intercept_ = np.asarray(svm.intercept_, dtype=np.float32)
    return svm


def _head(C: float, class_weight: str | None) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=3000, class_weight=class_weight)


def top_evidence(
    Z: sparse.csr_matrix,
    coef: np.ndarray,
    rows_classes: np.ndarray,
    names: Sequence[str],
    k: int,
) -> list[list[str]]:
    """For each row, the k features that pushed hardest towards the class predicted for it.

    Whole-batch array work, no loop over rows: each non-zero's contribution (value times the
    predicted class's weight) is laid out one row per post, and ``argpartition`` finds every
    row's k largest at once.
    """
    Z = Z.tocsr()
    n = Z.shape[0]
    out: list[list[str]] = [[] for _ in range(n)]
    if Z.nnz == 0 or k <= 0:
        return out
    per_row = np.diff(Z.indptr)
    rows = np.repeat(np.arange(n), per_row)
    laid = np.full((n, int(per_row.max())), -np.inf)
    laid[rows, np.arange(Z.nnz) - Z.indptr[rows]] = Z.data * coef[rows_classes[rows], Z.indices]
    k = min(k, laid.shape[1])
    best = np.argpartition(-laid, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(laid, best, axis=1)
    ranked = np.argsort(-values, axis=1, kind="stable")
    best = np.take_along_axis(best, ranked, axis=1)
    hit_rows, hit_ranks = np.nonzero(np.take_along_axis(values, ranked, axis=1) > 0)
    cols = Z.indices[Z.indptr[hit_rows] + best[hit_rows, hit_ranks]]
    for row, col in zip(hit_rows.tolist(), cols.tolist(), strict=True):
        out[row].append(names[col].strip())
    return out


class TextClassifier(ClassifierMixin, BaseEstimator):
    """One label set, learned from prepared text (see classifiers.text.TextPreparer).

    A linear SVM over word and character n-grams and the text's mean pretrained word vector
    (``word_vectors``, None for none; see ``classifiers.vectors``), which lets a word never seen
    in training count through its neighbours. Its C is chosen by stratified cross-validation
    on the training data alone, scored by macro-F1 (so that a rare label counts as much as a
    common one). A multinomial logistic regression fitted on the SVM's out-of-fold scores turns
    them into probabilities calibrated on data the SVM had not seen (Platt scaling, generalised
    to many labels), and ``predict`` takes the most probable label, as ``predict_proba`` says:
    stacked on all the scores, that layer also learns which labels the SVM mixes up (measured:
    Banking77 0.919 to 0.933 against the SVM's own argmax; ``docs/quality.md``). A multinomial
    naive Bayes over which word n-grams a text holds (``nb_alpha``, None for none) may add its
    out-of-fold log-probabilities to that layer's input: a second opinion that weighs every
    n-gram by how often it occurs with each label rather than by a margin, so where the two
    disagree the layer learns whom to trust. It is kept only where it earns its place: when the
    layer's cross-validated macro-F1 with it beats the layer's without it by more than twice the
    gain's standard error across folds (``nb_gain_``). Measured: online_shopping_10_cats 0.904
    to 0.911 and SMS spam MCC 0.958 to 0.961 with it; TweetEval emotion, whose gain of 0.004 was
    within two standard errors, lost 1.5 points on its test set when it was kept;
    ``docs/quality.md``. The SVM was
    chosen over logistic regression by measurement (``make quality``): better on SMS spam (MCC
    0.958 vs 0.950), TweetEval emotion (0.681 vs 0.675) and waimai (0.911 vs 0.898), 0.2 points
    worse on Banking77 (0.918 vs 0.920), and several times faster to fit, which is what makes
    the search for C affordable.
    """

    def __init__(
        self,
        word_ngrams: tuple[int, int] = (1, 3),
        char_ngrams: tuple[int, int] = (2, 6),
        min_df: int = 1,
        C: float | None = None,
        Cs: tuple[float, ...] = (0.1, 0.3, 1.0),
        cv: int = 3,
        class_weight: str | None = "balanced",
        random_state: int = 0,
        word_vectors: str | None = GLOVE,
        vector_weight: float = 1.0,
        nb_alpha: float | None = 0.1,
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.word_vectors = word_vectors
        self.vector_weight = vector_weight
        self.nb_alpha = nb_alpha
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.class_weight = class_weight
        self.random_state = random_state

    def _svm(self, C: float) -> LinearSVC:
        return LinearSVC(C=C, class_weight=self.class_weight, random_state=self.random_state)

    def _presence(self, Z: sparse.csr_matrix) -> sparse.csr_matrix:
        """Which word n-grams each row holds: the naive Bayes view, the union's first block."""
        words = sparse.csr_matrix(Z)[:, : len(self.featurizer_.transformer_list[0][1].vocabulary_)]
        words.data = np.ones_like(words.data)
        return words

    @staticmethod
    def _nb_scores(nb: MultinomialNB, words: sparse.csr_matrix) -> np.ndarray:
        """Log-probabilities clipped at -30 and scaled to [-1, 0], the SVM scores' range: a long
        text's run to the thousands, and unscaled they kept the calibration layer from
        converging (measured: Banking77 0.933 to 0.860)."""
        return np.clip(nb.predict_log_proba(words), -30.0, 0.0) / 30.0

    def _decide(self, scores: np.ndarray) -> np.ndarray:
        if scores.shape[1] == 1:
            return np.asarray(self.classes_[(scores[:, 0] > 0).astype(int)])
        return np.asarray(self.classes_[scores.argmax(axis=1)])

    def fit(self, X: Sequence[str], y: Sequence[Any]) -> TextClassifier:
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        self.featurizer_ = make_featurizer(
            self.word_ngrams,
            self.char_ngrams,
            self.min_df,
            join_chinese=True,
            word_vectors=self.word_vectors,
            vector_weight=self.vector_weight,
        )
        Z = self.featurizer_.fit_transform(X)
        folds = min(self.cv, int(np.unique(labels, return_counts=True)[1].min()))
        if folds < 2:  # a label with one example: nothing to cross-validate, nothing to calibrate
            raise ValueError("every label needs at least two examples")
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.random_state)
        splits = list(splitter.split(np.zeros(len(labels)), labels))
        candidates = (self.C,) if self.C is not None else tuple(sorted(self.Cs))
        self.cv_scores_: dict[float, float] = {}
        oof: dict[float, np.ndarray] = {}
        for C in candidates:
            scores = cross_val_predict(
                self._svm(C), Z, labels, cv=splits, method="decision_function"
            ).reshape(len(labels), -1)
            picked = self._decide(scores)
            per_fold = [f1_score(labels[test], picked[test], average="macro") for _, test in splits]
            self.cv_scores_[C] = float(np.mean(per_fold))
            oof[C] = scores
        self.C_ = max(self.cv_scores_, key=lambda C: self.cv_scores_[C])
        self.svm_ = single_precision(self._svm(self.C_).fit(Z, labels))
        stacked = oof[self.C_]
        self.nb_: MultinomialNB | None = None
        layer_scores = self._layer_scores(stacked, labels, splits)
        if self.nb_alpha is not None:
            words = self._presence(Z)
            nb_oof = np.zeros((len(labels), len(self.classes_)))
            for train, test in splits:
                nb = MultinomialNB(alpha=self.nb_alpha).fit(words[train], labels[train])
                nb_oof[test] = self._nb_scores(nb, words[test])
            with_nb = np.hstack([stacked, nb_oof])
            with_nb_scores = self._layer_scores(with_nb, labels, splits)
            gains = with_nb_scores - layer_scores
            self.nb_gain_ = (float(gains.mean()), float(gains.std(ddof=1) / np.sqrt(len(gains))))
            if self.nb_gain_[0] > 2 * self.nb_gain_[1]:
                self.nb_ = MultinomialNB(alpha=self.nb_alpha).fit(words, labels)
                stacked = with_nb
                layer_scores = with_nb_scores
        # What the whole stack scores out of fold, for ``train_task`` to weigh it against the
        # plain baseline on the same folds.
        self.cv_macro_f1_ = float(layer_scores.mean())
        self.calibrator_ = self._layer().fit(stacked, labels)
        return self

    @staticmethod
    def _layer() -> LogisticRegression:
        """The calibration layer, one definition for the layer fitted and the one scored."""
        return LogisticRegression(max_iter=1000)

    def _layer_scores(
        self, inputs: np.ndarray, labels: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
    ) -> np.ndarray:
        """The calibration layer's macro-F1 on each fold, learning from the other folds."""
        return np.asarray(
            cross_val_score(self._layer(), inputs, labels, cv=splits, scoring="f1_macro")
        )

    def _scores(self, Z: sparse.csr_matrix) -> np.ndarray:
        """What the calibration layer reads: the SVM's scores, then naive Bayes's."""
        scores = np.asarray(self.svm_.decision_function(Z)).reshape(Z.shape[0], -1)
        nb = getattr(self, "nb_", None)  # None too in a model saved before the opinion existed
        if nb is None:
            return scores
        return np.hstack([scores, self._nb_scores(nb, self._presence(Z))])

    def proba_of_features(self, Z: sparse.csr_matrix) -> np.ndarray:
        """``predict_proba`` on rows this model's own featurizer already made."""
        return np.asarray(self.calibrator_.predict_proba(self._scores(Z)))

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        return self.proba_of_features(self.featurizer_.transform(X))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return np.asarray(self.calibrator_.predict(self._scores(self.featurizer_.transform(X))))


def two_columns(scores: np.ndarray) -> np.ndarray:
    """A binary SVM's one score column as two (against, for), so a softmax over them is the
    sigmoid of the score and multi-class and binary heads read the same way."""
    return np.hstack([np.zeros_like(scores), scores]) if scores.shape[1] == 1 else scores


def fit_temperature(scores: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> float:
    """The one scale that turns out-of-fold SVM scores into the best probabilities by log loss
    (temperature scaling). A single number cannot reorder a row's scores, so the probabilities
    always agree with the SVM's own decision: the rare labels its class weights let it predict
    stay predicted, unlike a calibration layer that learns a prior of its own."""
    wide = two_columns(scores)
    truth = np.searchsorted(classes, labels)

    def loss(log_scale: float) -> float:
        log_p = log_softmax(np.exp(log_scale) * wide, axis=1)
        return float(-log_p[np.arange(len(truth)), truth].mean())

    return float(np.exp(minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded").x))


class PlainClassifier(ClassifierMixin, BaseEstimator):
    """The baseline every trained model is held to: word 1-2-gram and char_wb 2-5-gram TF-IDF
    and a class-balanced linear SVM, with probabilities by temperature scaling.

    On a few hundred rows or skewed labels it beat the stacked ``TextClassifier`` (issue 22:
    macro-F1 0.74 against 0.21 on 242 brand tweets with 16 topics), so ``train_task`` lets the
    two compete by cross-validation. ``scale`` is fitted by ``train_task`` on the out-of-fold
    scores of that competition (1.0 until then).
    """

    def __init__(self, C: float = 1.0, min_df: int = 1, scale: float = 1.0) -> None:
        self.C = C
        self.min_df = min_df
        self.scale = scale

    def fit(self, X: Sequence[str], y: Sequence[Any]) -> PlainClassifier:
        labels = np.asarray(y)
        self.featurizer_ = make_featurizer((1, 2), (2, 5), self.min_df, join_chinese=True)
        Z = self.featurizer_.fit_transform(X)
        self.svm_ = single_precision(
            LinearSVC(C=self.C, class_weight="balanced", random_state=0).fit(Z, labels)
        )
        self.classes_ = self.svm_.classes_
        return self

    def decision_function(self, X: Sequence[str]) -> np.ndarray:
        Z = self.featurizer_.transform(X)
        return np.asarray(self.svm_.decision_function(Z)).reshape(Z.shape[0], -1)

    def proba_of_features(self, Z: sparse.csr_matrix) -> np.ndarray:
        """``predict_proba`` on rows this model's own featurizer already made."""
        scores = np.asarray(self.svm_.decision_function(Z)).reshape(Z.shape[0], -1)
        return np.exp(log_softmax(self.scale * two_columns(scores), axis=1))

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        return self.proba_of_features(self.featurizer_.transform(X))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


HeadModel = TextClassifier | PlainClassifier


class Readable:
    """What a head's evidence reads, worked out once per loaded model (``evidence_of``).

    ``names`` holds each column's n-gram as the featurizer's vocabulary holds it: the same string
    objects, so a list of pointers rather than ``get_feature_names_out``'s fresh copy of every
    name with its view's prefix (the shipped bundle's four own featurizers have 290,000 columns),
    and no numpy string array of them each batch to find the readable ones. ``weights`` are the
    estimator's, one row per class (binary: against, for), with the columns no agent could read
    (a word vector's dimensions, named "") zeroed.
    """

    def __init__(self, names: list[str], coef: np.ndarray) -> None:
        if coef.shape[0] == 1:  # binary: one row of weights, for classes_[1]
            coef = np.vstack([-coef[0], coef[0]])
        unreadable = np.fromiter((not n for n in names), dtype=bool, count=len(names))
        self.names = names
        self.weights = np.where(unreadable, 0, coef).astype(coef.dtype, copy=False)


_NAMES: weakref.WeakKeyDictionary[FeatureUnion, list[str]] = weakref.WeakKeyDictionary()
_READABLE: weakref.WeakKeyDictionary[Any, Readable] = weakref.WeakKeyDictionary()


def column_names(featurizer: FeatureUnion) -> list[str]:
    """Each column's n-gram, in the featurizer's column order ("" for a word vector's)."""
    names = _NAMES.get(featurizer)
    if names is None:
        names = []
        for _, view in featurizer.transformer_list:
            vocabulary = getattr(view, "vocabulary_", None)
            if vocabulary is None:
                names += [""] * len(view.get_feature_names_out())
                continue
            inverse = [""] * len(vocabulary)
            for term, j in vocabulary.items():
                inverse[j] = term
            names += inverse
        _NAMES[featurizer] = names
    return names


def evidence_of(featurizer: FeatureUnion, weighed: Any) -> Readable:
    """The ``Readable`` of the estimator ``weighed`` (its ``coef_``) over ``featurizer``'s
    columns, kept as long as the estimator lives."""
    readable = _READABLE.get(weighed)
    if readable is None:
        readable = _READABLE[weighed] = Readable(column_names(featurizer), weighed.coef_)
    return readable


def head_evidence(
    head: HeadModel, Z: sparse.csr_matrix, predicted: np.ndarray, k: int
) -> list[list[str]]:
    """``top_evidence`` for a head with its own featurizer: the SVM's weights over its word and
    character n-grams (the word-vector view's dimensions are no words an agent could read)."""
    readable = evidence_of(head.featurizer_, head.svm_)
    return top_evidence(Z, readable.weights, predicted, readable.names, k)


@dataclass
class BundleFeatures:
    """One batch as the bundle's heads read it: the shared feature space's rows, and the
    prepared texts for the heads with a featurizer of their own (``TriageModel.use``), whose
    rows are made once per batch and kept here for the evidence step."""

    shared: sparse.csr_matrix | None
    texts: Sequence[str]
    own: dict[str, sparse.csr_matrix] = field(default_factory=dict)

    def of(self, task: str, head: HeadModel) -> sparse.csr_matrix:
        if task not in self.own:
            self.own[task] = head.featurizer_.transform(self.texts).tocsr()
        return self.own[task]


class TriageModel(BaseEstimator):
    """Several label sets: the model bundle the worker loads.

    The heads ``fit`` learns share one feature space, so a batch costs one vectorizer call for
    all of them. A model ``triage train --task`` made joins as a head with its own featurizer
    (``use``), replacing the shared head of its task or adding a new task: one model format,
    whatever trained it.
    """

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
        self.heads_ = {}
        for task, labels in Y.items():
            # a row may lack a task's label (a correction made before the task existed): each
            # head learns from the rows that carry its label
            known = np.array([label is not None for label in labels])
            self.heads_[task] = _head(self.C, self.class_weight).fit(
                Z[known], np.asarray(labels, dtype=object)[known].astype(str)
            )
        self.own_heads_: dict[str, HeadModel] = {}
        return self

    @property
    def _own(self) -> dict[str, HeadModel]:
        return dict(getattr(self, "own_heads_", {}))  # none in a bundle saved before ``use``

    def use(self, task: str, head: HeadModel) -> TriageModel:
        """A new bundle with ``head`` answering ``task``; this one is left as it was."""
        bundle = copy.copy(self)
        bundle.heads_ = {t: h for t, h in self.heads_.items() if t != task}
        bundle.own_heads_ = {**self._own, task: head}
        return bundle

    @property
    def tasks(self) -> tuple[str, ...]:
        return (*self.heads_, *self._own)

    def labels(self, task: str) -> list[str]:
        """The labels the head of ``task`` can answer."""
        head = self._own.get(task) or self.heads_[task]
        return [str(label) for label in head.classes_]

    def transform(self, X: Sequence[str]) -> BundleFeatures:
        shared = self.featurizer_.transform(X).tocsr() if self.heads_ else None
        return BundleFeatures(shared, X)

    def predict_proba(self, F: BundleFeatures) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per task: (classes, probabilities) for every row of an already-transformed batch."""
        out = {task: (h.classes_, h.predict_proba(F.shared)) for task, h in self.heads_.items()}
        for task, head in self._own.items():
            out[task] = (head.classes_, head.proba_of_features(F.of(task, head)))
        return out

    def evidence(
        self, task: str, F: BundleFeatures, predicted: np.ndarray, k: int = 3
    ) -> list[list[str]]:
        own = self._own.get(task)
        if own is not None:
            return head_evidence(own, F.of(task, own), predicted, k)
        readable = evidence_of(self.featurizer_, self.heads_[task])
        return top_evidence(F.shared, readable.weights, predicted, readable.names, k)
