"""Text preparation over whole batches: normalisation, then spaCy tokenisation with ``nlp.pipe``.

Models see the same prepared text in training and in the worker, so what one learns the other
finds. Chinese is tokenised by spaCy's Chinese tokenizer (one token per character by default, which
together with word bigrams covers most two-character words without a segmentation model).
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


def normalise(text: str) -> str:
    """Collapse what varies without changing meaning: links, handles, hashtags, stretched words."""
    text = URL.sub(" urltoken ", text)
    text = MENTION.sub(" mentiontoken ", text)
    text = HASHTAG.sub(r" \1 ", text)
    text = REPEAT.sub(r"\1\1", text)
    return " ".join(text.lower().split())


class TextPreparer:
    """Tokenises batches with a blank spaCy pipeline per language (tokenizer only: fast)."""

    def __init__(self) -> None:
        self._pipelines: dict[str, Language] = {}

    def _nlp(self, language: str) -> Language:
        code = "zh" if language == "zh" else "en"
        if code not in self._pipelines:
            self._pipelines[code] = spacy.blank(code)
        return self._pipelines[code]

    def prepare(self, texts: Sequence[str], languages: Sequence[str] | None = None) -> list[str]:
        normalised = [normalise(t) for t in texts]
        if languages is None:
            languages = ["zh" if CJK.search(t) else "en" for t in normalised]
        out = [""] * len(normalised)
        for code in ("en", "zh"):
            idx = [i for i, lang in enumerate(languages) if (lang == "zh") == (code == "zh")]
            if not idx:
                continue
            docs = self._nlp(code).pipe((normalised[i] for i in idx), batch_size=1000)
            for i, doc in zip(idx, docs, strict=True):
                out[i] = " ".join(tok.text for tok in doc if not tok.is_space)
        return out
