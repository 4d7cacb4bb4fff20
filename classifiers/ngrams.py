"""A TF-IDF vectorizer whose ``transform`` gives scikit-learn's matrix several times faster.

scikit-learn builds every n-gram of every post in Python and looks each up in the vocabulary:
about 90 microseconds a post for the worker's word and character views, most of the speed
budget (``docs/performance.md``). Character n-grams of ``char_wb`` never cross a word boundary,
so a word's columns depend on the word alone: ``NgramTfidf`` computes them once per distinct
word (words repeat, by Zipf's law) and keeps them in a bounded cache. Fitting is scikit-learn's
own; transforming reads only the fitted ``vocabulary_`` and ``idf_``, and the tests check the
two give the same matrix.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

CACHE_WORDS = 20_000  # distinct words kept (about 6 MB), emptied whole when full


class NgramTfidf(TfidfVectorizer):
    """``TfidfVectorizer`` with a fast ``transform`` for the ``word`` and ``char_wb`` analyzers.

    Other settings (stop words, a custom tokenizer or analyzer, file input) fall back to
    scikit-learn's ``transform``.
    """

    def _fast(self) -> bool:
        return (
            self.analyzer in ("word", "char_wb")
            and self.input == "content"
            and self.tokenizer is None
            and self.stop_words is None
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_word_cache", None)  # a cache, rebuilt on use
        return state

    def transform(self, raw_documents: Iterable[str]) -> sparse.csr_matrix:
        if isinstance(raw_documents, str) or not self._fast():
            return super().transform(raw_documents)
        counts = self._counts(raw_documents)
        if self.binary:
            counts.data.fill(1)
        if self.sublinear_tf:
            np.log(counts.data, out=counts.data)
            counts.data += 1
        if self.use_idf:
            counts.data *= self.idf_[counts.indices].astype(counts.dtype, copy=False)
        if self.norm is not None:
            normalize(counts, norm=self.norm, copy=False)
        return counts

    def _counts(self, docs: Iterable[str]) -> sparse.csr_matrix:
        preprocess, decode = self.build_preprocessor(), self.decode
        columns = self._char_columns() if self.analyzer == "char_wb" else self._word_columns()
        indices = array("i")
        indptr = [0]
        for doc in docs:
            indices += columns(preprocess(decode(doc)))
            indptr.append(len(indices))
        counts = sparse.csr_matrix(
            (
                np.ones(len(indices), dtype=self.dtype),
                np.frombuffer(indices, dtype=np.intc),
                np.asarray(indptr, dtype=np.int64),
            ),
            shape=(len(indptr) - 1, len(self.vocabulary_)),
        )
        counts.sum_duplicates()
        return counts

    def _word_columns(self) -> Callable[[str], array[int]]:
        vocabulary = self.vocabulary_
        # r"\S+" finds exactly what str.split() does (both use str.isspace), at a third the cost
        tokenize = str.split if self.token_pattern == r"\S+" else self.build_tokenizer()
        low, high = self.ngram_range
        lookup = vocabulary.get

        def columns(doc: str) -> array[int]:
            tokens = tokenize(doc)
            grams = list(tokens) if low == 1 else []
            if low <= 2 <= high:
                grams += [f"{a} {b}" for a, b in pairwise(tokens)]
            for n in range(max(low, 3), min(high, len(tokens)) + 1):
                grams += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
            return array("i", [j for j in map(lookup, grams) if j is not None])

        return columns

    def _char_columns(self) -> Callable[[str], array[int]]:
        cache: dict[str, array[int]] | None = getattr(self, "_word_cache", None)
        if cache is None:
            cache = {}
            self._word_cache = cache
        one_word = self._one_word

        def columns(doc: str) -> array[int]:
            out = array("i")
            for word in doc.split():
                cols = cache.get(word)
                if cols is None:
                    if len(cache) >= CACHE_WORDS:
                        cache.clear()
                    cols = cache[word] = one_word(word)
                out += cols
            return out

        return columns

    def _one_word(self, word: str) -> array[int]:
        """The columns of one word's n-grams, as ``TfidfVectorizer._char_wb_ngrams`` makes them."""
        vocabulary = self.vocabulary_
        padded = f" {word} "
        low, high = self.ngram_range
        cols = []
        for n in range(low, high + 1):
            if n >= len(padded):  # a word shorter than n counts once, as the whole padded word
                grams = [padded]
            else:
                grams = [padded[i : i + n] for i in range(len(padded) - n + 1)]
            cols += [j for g in grams if (j := vocabulary.get(g)) is not None]
            if n >= len(padded):
                break
        return array("i", cols)
