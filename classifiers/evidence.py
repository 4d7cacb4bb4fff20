"""Evidence an agent can read: the words and phrases that pushed a decision, cleaned.

The model's strongest features are n-grams of its own views (word n-grams over tokens, character
n-grams inside words, one token per Chinese character), so the raw top features repeat one token
through several views, cut words in pieces and favour whatever is frequent: stop words, digits of
an order number, one Chinese character three times. An agent reads these at the top of every
item, so here each feature is mapped back onto the words of the post it came from (Chinese
segmented into words with jieba), trimmed of stop words, digits and placeholders at its edges,
dropped when nothing meaningful is left, and de-duplicated so that the longest phrase covering a
shorter one is kept. Lexicon hits (``classifiers.lexicon``) come first: they are the reasons an
auditor can look up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

import jieba
from spacy.lang.en.stop_words import STOP_WORDS as EN_STOP
from spacy.lang.zh.stop_words import STOP_WORDS as ZH_STOP

# Kept although spaCy lists them as stop words: "not working" and "no refund" mean the opposite
# of "working" and "refund". Only at the start of a phrase of two or more words.
NEGATIONS = frozenset({"not", "no", "never", "n't", "cannot", "没", "没有", "不", "无法", "未"})
# What ``classifiers.text.normalise`` puts in place of links and handles.
PLACEHOLDERS = frozenset({"urltoken", "mentiontoken"})
STOP = frozenset(w.lower() for w in EN_STOP) | frozenset(ZH_STOP) | PLACEHOLDERS
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
WORDLIKE = re.compile(r"\w", re.UNICODE)
DIGITS = re.compile(r"\d")

jieba.setLogLevel(logging.WARNING)  # jieba prints its dictionary loading to stderr otherwise


@lru_cache(maxsize=1)
def _segmenter() -> jieba.Tokenizer:
    """jieba's tokenizer, its dictionary loaded once per process on first Chinese post."""
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def words(text: str, language: str) -> list[str]:
    """The words of a normalised post: jieba's segmentation for Chinese, whitespace otherwise
    (the prepared English text is already spaCy's tokens joined by spaces)."""
    if language == "zh" or HAN.search(text):
        return [w for w in _segmenter().lcut("".join(text.split())) if w.strip()]
    return text.split()


def _meaningless(word: str) -> bool:
    """A word that explains nothing: a stop word, a placeholder, punctuation, anything with a
    digit (order numbers, amounts, lone digits) or a single Latin character."""
    w = word.lower()
    return (
        w in STOP
        or not WORDLIKE.search(w)
        or DIGITS.search(w) is not None
        or (len(w) == 1 and w.isascii())
    )


def _trim(span: list[str]) -> list[str]:
    """The span without meaningless words at either edge (a leading negation stays when
    something meaningful follows it)."""
    start, end = 0, len(span)
    while end > start and _meaningless(span[end - 1]):
        end -= 1
    while start < end and _meaningless(span[start]):
        if span[start].lower() in NEGATIONS and end - start > 1:
            break
        start += 1
    return span[start:end]


def _span(feature: str, tokens: Sequence[str], joined: str, offsets: Sequence[int]) -> list[str]:
    """The post's words that the feature's first occurrence overlaps."""
    at = joined.find(feature)
    if at < 0:
        return []
    end = at + len(feature)
    return [t for t, o in zip(tokens, offsets, strict=True) if o < end and o + len(t) > at]


def clean(
    features: Sequence[str], text: str, language: str, first: Sequence[str] = (), k: int = 3
) -> list[str]:
    """At most ``k`` phrases of ``text`` that explain a decision, strongest first.

    ``features`` are the model's feature names for this post, strongest first, as
    ``TriageModel.evidence`` gives them; ``first`` are phrases that go before them (lexicon hits).
    """
    chinese = language == "zh" or HAN.search(text) is not None
    sep = "" if chinese else " "
    tokens = words(text, language)
    lowered = [t.lower() for t in tokens]
    offsets, pos = [], 0
    for t in lowered:
        offsets.append(pos)
        pos += len(t) + len(sep)
    joined = sep.join(lowered)
    kept: list[str] = []

    def add(phrase: str) -> None:
        if any(phrase in other for other in kept):
            return  # a longer phrase already says it
        longer = [i for i, other in enumerate(kept) if other in phrase]
        if longer:  # the longer phrase takes the place of the first shorter one it covers
            kept[longer[0]] = phrase
            for i in reversed(longer[1:]):
                del kept[i]
        else:
            kept.append(phrase)

    for hit in first:
        add(hit.lower())
    for feature in features:
        f = feature.lower().strip()
        f = "".join(f.split()) if chinese else " ".join(f.split())
        span = _trim(_span(f, tokens, joined, offsets)) if f else []
        if span:
            add(sep.join(span).lower())
    return kept[:k]
