"""Language detection for a batch of posts.

Chinese and Japanese are told apart from everything else by their scripts, which is exact and
costs almost nothing; other text goes to py3langid's model (a maintained langid.py), restricted to
the languages a brand's social channels actually carry so that short posts are not read as Latin.

py3langid walks its byte automaton one post at a time in Python, about 30 microseconds a post.
``LanguageDetector`` walks it for the whole batch at once: one numpy step per byte position moves
every post still being read, and one sparse product scores them all. The tests check it agrees
with ``LanguageIdentifier.classify``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from scipy import sparse

from classifiers.text import CJK, MENTION, URL, may_hold_link

LANGUAGES = (
    "en",
    "zh",
    "ja",
    "de",
    "fr",
    "es",
    "it",
    "pt",
    "nl",
    "sv",
    "da",
    "no",
    "pl",
    "ru",
    "tr",
    "ar",
    "ko",
)
KANA = re.compile("[\u3040-\u30ff]")
MAX_BYTES = 2_000  # a post's language is plain well before this; bounds a batch's walk


def without_links(text: str) -> str:
    """The text with links and @handles blanked: they say nothing of the language."""
    if may_hold_link(text):
        text = URL.sub(" ", text)
    return MENTION.sub(" ", text) if "@" in text else text


def langid_bytes(text: str) -> bytes:
    """The bytes py3langid's model reads: NFC UTF-8, lower-cased when all upper case."""
    if text.isupper():
        text = text.lower()
    return unicodedata.normalize("NFC", text).encode("utf8", errors="surrogatepass")


class LanguageDetector:
    def __init__(self, languages: Sequence[str] = LANGUAGES) -> None:
        self.languages = tuple(languages)
        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
        identifier.set_languages([lang for lang in self.languages if lang != "zh"])
        self._classes = np.asarray(identifier.nb_classes)
        self._table = np.asarray(identifier.nb_ptc, dtype=np.float32)
        self._prior = np.asarray(identifier.nb_pc, dtype=np.float32)
        self._next = np.frombuffer(identifier.tk_nextmove, dtype=np.uint32)  # shared, 39 MB
        self._rowbase = np.asarray(identifier.tk_row, dtype=np.int64) << 8
        self._output = np.asarray(identifier.tk_output, dtype=np.int64)

    def detect(self, texts: Sequence[str]) -> list[str]:
        out: list[str] = []
        pending: list[int] = []
        cleaned: list[str] = []
        for i, text in enumerate(texts):
            text = without_links(text)
            cjk = len(CJK.findall(text))
            if cjk:
                out.append("ja" if len(KANA.findall(text)) > cjk / 4 else "zh")
            elif sum(map(str.isalpha, text)) < 3:
                out.append("und")
            else:
                out.append("")
                pending.append(i)
                cleaned.append(text)
        if pending:
            for i, language in zip(pending, self._classify(cleaned), strict=True):
                out[i] = language
        return out

    def _classify(self, texts: Sequence[str]) -> list[str]:
        counts = self._features([langid_bytes(t)[:MAX_BYTES] for t in texts])
        np.log1p(counts.data, out=counts.data)
        scores = counts @ self._table + self._prior
        best = self._classes[scores.argmax(axis=1)]
        found = counts.getnnz(axis=1)
        return ["und" if n == 0 else str(lang) for n, lang in zip(found, best, strict=True)]

    def _features(self, encoded: Sequence[bytes]) -> sparse.csr_matrix:
        """Feature counts of every text: the automaton walked over all of them in step."""
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        order = np.argsort(-lengths, kind="stable")  # longest first: the live texts are a prefix
        width = int(lengths.max(initial=0))
        grid = np.zeros((len(encoded), width), dtype=np.uint8)
        for row, i in enumerate(order.tolist()):
            grid[row, : lengths[i]] = np.frombuffer(encoded[i], dtype=np.uint8)
        live = np.searchsorted(-lengths[order], -np.arange(width), side="left")
        state = np.zeros(len(encoded), dtype=np.int64)
        rows: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        feats: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
        for pos in range(width):
            n = live[pos]
            state[:n] = self._next[self._rowbase[state[:n]] + grid[:n, pos]]
            found = self._output[state[:n]]
            hit = np.flatnonzero(found >= 0)
            rows.append(order[hit])
            feats.append(found[hit])
        counts = sparse.csr_matrix(
            (
                np.ones(sum(map(len, rows)), dtype=np.float32),
                (np.concatenate(rows), np.concatenate(feats)),
            ),
            shape=(len(encoded), self._table.shape[0]),
        )
        counts.sum_duplicates()
        return counts
