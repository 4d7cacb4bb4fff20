"""Evidence an agent can read: the words and phrases that pushed a decision, cleaned.

The model's strongest features are n-grams of its own views (word n-grams over tokens, character
n-grams inside words, one token per Chinese character), so the raw top features repeat one token
through several views, cut words in pieces and favour whatever is frequent: stop words, digits of
an order number, one Chinese character three times. An agent reads these at the top of every
item, so here each feature is mapped back onto the words of the post it came from (Chinese
segmented into words by jieba's dictionary), trimmed of stop words, digits and placeholders at
its edges, dropped when nothing meaningful is left, and de-duplicated so that the longest phrase
covering a shorter one is kept. Lexicon hits (``classifiers.lexicon``) come first: they are the
reasons an auditor can look up.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate

import jieba
from spacy.lang.en.stop_words import STOP_WORDS as EN_STOP
from spacy.lang.zh.stop_words import STOP_WORDS as ZH_STOP

# Kept although spaCy lists them as stop words: "not working" and "no refund" mean the opposite
# of "working" and "refund". Only at the start of a phrase of two or more words.
NEGATIONS = frozenset({"not", "no", "never", "n't", "cannot", "没", "没有", "不", "无法", "未"})
# What ``classifiers.text.normalise`` puts in place of links and handles.
PLACEHOLDERS = frozenset({"urltoken", "mentiontoken"})
# spaCy's Chinese list (about 1,900 entries) also holds words that explain a complaint (及时,
# 一直, 完全): of it, only the single characters (我, 的, 了, …) and the pronouns and connectives
# below, so that "不及时" stays evidence and "我们" does not.
ZH_FUNCTION_WORDS = frozenset(
    {
        "我们", "你们", "他们", "她们", "它们", "这个", "那个", "这些", "那些",
        "什么", "怎么", "因为", "所以", "但是", "而且", "然后", "就是", "还是",
        "已经", "一个", "一些", "自己", "可以", "这样", "那样", "如果", "虽然",
        "不过", "或者", "还有", "以及", "这里", "那里", "时候",
    }
)
STOP = (
    frozenset(w.lower() for w in EN_STOP)
    | frozenset(w for w in ZH_STOP if len(w) == 1)
    | ZH_FUNCTION_WORDS
    | PLACEHOLDERS
)
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
HAN_RUN = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\s\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+"
)
WORDLIKE = re.compile(r"\w", re.UNICODE)
DIGITS = re.compile(r"\d")
# Chinese words: jieba's dictionary, words of two to four characters seen at least this often in
# its corpus (70,860 words, about 6 MB), matched longest first (``_segment``). jieba's own
# segmenter (a DAG over the whole dictionary, 584,000 entries) cost 180-420 microseconds a post
# and about 60 MB in the worker, more than the rest of triage together; evidence needs words,
# not the best parse.
MIN_FREQUENCY = 20
LONGEST = 4


@lru_cache(maxsize=1)
def chinese_words() -> frozenset[str]:
    """jieba's dictionary words, read once per process at the first Chinese post."""
    found = set()
    with jieba.get_dict_file() as f:
        for line in f:
            word, freq, *_ = line.decode("utf-8").split(" ")
            if 2 <= len(word) <= LONGEST and int(freq) >= MIN_FREQUENCY:
                found.add(word)
    return frozenset(found)


def _segment(run: str, vocabulary: frozenset[str]) -> list[str]:
    """A run of Chinese characters as words: backward maximum matching, the longest dictionary
    word ending at each place, from the end (more often right than from the start: "非常不满意"
    is 非常/不/满意, where the forward match gives 非常/不满/意)."""
    out, end = [], len(run)
    while end > 0:
        for size in (4, 3, 2):
            word = run[max(0, end - size) : end]
            if len(word) > 1 and word in vocabulary:
                break
        else:
            word = run[end - 1]
        out.append(word)
        end -= len(word)
    out.reverse()
    return out


def words(text: str, language: str) -> list[str]:
    """The words of a normalised post: Chinese runs segmented by jieba's dictionary, whitespace
    otherwise (the prepared English text is already spaCy's tokens joined by spaces)."""
    if language != "zh" and not HAN.search(text):
        return text.split()
    vocabulary = chinese_words()
    out: list[str] = []
    for m in HAN_RUN.finditer("".join(text.split())):
        piece = m.group()
        out.extend(_segment(piece, vocabulary) if HAN.match(piece) else [piece])
    return out


@lru_cache(maxsize=65536)
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


class Words:
    """One post's words and their offsets in the joined lower-cased text: computed once a post,
    shared by the tasks it is explained for."""

    def __init__(self, text: str, language: str) -> None:
        self.chinese = language == "zh" or HAN.search(text) is not None
        self.sep = "" if self.chinese else " "
        # prepared text is lower-cased already (``classifiers.text.normalise``)
        self.lowered = words(text.lower(), language)
        gap = len(self.sep)
        self.offsets = list(accumulate((len(t) + gap for t in self.lowered[:-1]), initial=0))
        self.joined = self.sep.join(self.lowered)

    def span(self, feature: str) -> str:
        """The words that the feature's first occurrence overlaps, without meaningless words at
        either edge (a leading negation stays when something meaningful follows it)."""
        at = self.joined.find(feature)
        if at < 0:
            return ""
        start = bisect.bisect_right(self.offsets, at) - 1
        end = bisect.bisect_left(self.offsets, at + len(feature))
        while end > start and _meaningless(self.lowered[end - 1]):
            end -= 1
        while start < end and _meaningless(self.lowered[start]):
            if self.lowered[start] in NEGATIONS and end - start > 1:
                break
            start += 1
        return self.sep.join(self.lowered[start:end])


def clean(
    features: Sequence[str], post: Words, first: Sequence[str] = (), k: int = 3
) -> list[str]:
    """At most ``k`` phrases of the post that explain a decision, strongest first.

    ``features`` are the model's feature names for this post, strongest first, as
    ``TriageModel.evidence`` gives them; ``first`` are phrases that go before them (lexicon hits).
    """
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
        if len(kept) >= k:
            break
        # the model's features are of prepared, lower-cased text already
        f = feature.replace(" ", "") if post.chinese else feature.strip()
        phrase = post.span(f) if f else ""
        if phrase:
            add(phrase)
    return kept[:k]
