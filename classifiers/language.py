"""Language detection for a batch of posts.

Chinese and Japanese are told apart from everything else by their scripts, which is exact and
costs almost nothing; other text goes to py3langid (a maintained langid.py), restricted to the
languages a brand's social channels actually carry so that short posts are not read as Latin.
"""

from __future__ import annotations

from collections.abc import Sequence

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from classifiers.text import CJK, MENTION, URL

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
KANA = "\u3040-\u30ff"


class LanguageDetector:
    def __init__(self, languages: Sequence[str] = LANGUAGES) -> None:
        self.languages = tuple(languages)
        self._langid = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
        self._langid.set_languages([lang for lang in self.languages if lang != "zh"])

    def detect(self, texts: Sequence[str]) -> list[str]:
        return [self._one(t) for t in texts]

    def _one(self, text: str) -> str:
        text = MENTION.sub(" ", URL.sub(" ", text))
        cjk = len(CJK.findall(text))
        if cjk:
            kana = sum(1 for ch in text if "\u3040" <= ch <= "\u30ff")
            return "ja" if kana > cjk / 4 else "zh"
        letters = sum(ch.isalpha() for ch in text)
        if letters < 3:
            return "und"
        return str(self._langid.classify(text)[0])
