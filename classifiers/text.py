"""Text preparation over whole batches: normalisation, then tokenisation.

Models see the same prepared text in training and in the worker, so what one learns the other
finds. Text in alphabets goes through spaCy's tokenizer with ``nlp.pipe``. Chinese takes the
character fallback: one token per character, as spaCy's own Chinese tokenizer makes them without
a segmentation model, but without building a spaCy ``Doc`` for each post (the Chinese ``Doc`` cost
about 55 microseconds a post, more than the rest of the speed budget). Word bigrams over the
characters cover most two-character words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import spacy
from spacy.language import Language

URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:ly|cn|com|co|io|me)/\S*", re.I)
MENTION = re.compile(r"@\w+")
HASHTAG = re.compile(r"#(\w+)#?")
REPEAT = re.compile(r"(.)\1{2,}")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# spaCy keeps every distinct token it has seen (its vocabulary and tokenizer cache), so a worker
# that runs for days grows without end: about 21 MB over 200,000 generated posts (38,000 new
# entries). A fresh blank pipeline tokenises exactly as the old one, so it is swapped in once
# this many entries have been added (about 0.2 s, every 100,000 posts or so).
VOCAB_LIMIT = 20_000


def may_hold_link(text: str) -> bool:
    """False only when ``URL`` cannot match: every link it matches has a "/" or a "www"."""
    return "/" in text or "www" in text.lower()


def normalise(text: str) -> str:
    """Collapse what varies without changing meaning: links, handles, hashtags, stretched words."""
    if may_hold_link(text):
        text = URL.sub(" urltoken ", text)
    if "@" in text:
        text = MENTION.sub(" mentiontoken ", text)
    if "#" in text:
        text = HASHTAG.sub(r" \1 ", text)
    text = REPEAT.sub(r"\1\1", text)
    return " ".join(text.lower().split())


def characters(text: str) -> str:
    """Every character but whitespace, one token each: the Chinese character fallback."""
    return " ".join("".join(text.split()))


class TextPreparer:
    """Tokenises batches: spaCy's blank English tokenizer (fast, no model), characters for
    Chinese."""

    def __init__(self) -> None:
        self._nlp: Language | None = None
        self._fresh_size = 0  # the vocabulary a blank pipeline starts with

    def prepare(self, texts: Sequence[str], languages: Sequence[str] | None = None) -> list[str]:
        normalised = [normalise(t) for t in texts]
        if languages is None:
            languages = ["zh" if CJK.search(t) else "en" for t in normalised]
        out = [
            characters(t) if lang == "zh" else ""
            for t, lang in zip(normalised, languages, strict=True)
        ]
        idx = [i for i, lang in enumerate(languages) if lang != "zh"]
        if idx:
            if self._nlp is None or len(self._nlp.vocab) > self._fresh_size + VOCAB_LIMIT:
                self._nlp = spacy.blank("en")
                self._fresh_size = len(self._nlp.vocab)
            docs = self._nlp.pipe((normalised[i] for i in idx), batch_size=1000)
            for i, doc in zip(idx, docs, strict=True):
                out[i] = " ".join([tok.text for tok in doc if not tok.is_space])
        return out
