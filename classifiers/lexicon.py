"""The urgency lexicon: critical and high signals in English and Chinese, read from a TSV file.

A model trained on a few hundred posts cannot learn that one post in ten thousand mentions a fire;
a list can, and a person can audit it (``classifiers/lexicons/urgency.tsv``, its rules in the
file's header and in ``docs/urgency.md``). A hit makes a post at least as urgent as the signal's
level, whatever the model said, and is named in the post's reasons.

One alternation of every term scans a post once. It holds no group and no look-behind, so that
the regex engine can skip ahead to the characters a term can start with (with a named group and a
look-behind per term it cost 4 ms a post; like this, about 20 microseconds); which signal matched,
the word boundary before it and negation are checked in Python, only at hits.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ConfigError

URGENCY_LEXICON = Path(__file__).parent / "lexicons" / "urgency.tsv"
LEVELS = ("critical", "high")
EN_NEGATIONS = frozenset({"no", "not", "without", "zero", "none", "never", "nobody"})
ZH_NEGATIONS = ("没有", "没", "无", "未")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Signal:
    term: str
    language: str
    level: str
    signal: str
    negatable: bool


@dataclass(frozen=True)
class Hit:
    """One signal found in one post: the words as written in the post, and the signal's row."""

    text: str
    signal: Signal


def _pattern(term: str) -> str:
    if HAN.search(term):
        return re.escape(term)
    stem = term.removesuffix("*")
    body = r"\s+".join(re.escape(w) for w in stem.split())
    return body + (r"\w*" if term.endswith("*") else r"(?!\w)")


class Lexicon:
    """Signals read from a TSV file (term, language, level, signal, negatable)."""

    def __init__(self, path: Path = URGENCY_LEXICON) -> None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"urgency lexicon {path}: {exc.strerror}") from exc
        self._load(raw, str(path))

    @classmethod
    def empty(cls) -> Lexicon:
        """No signals at all: the model decides alone (to measure what the lexicon adds)."""
        lexicon = cls.__new__(cls)
        lexicon._load(b"term\tlanguage\tlevel\tsignal\tnegatable\n", "no lexicon")
        return lexicon

    def _load(self, raw: bytes, where: str) -> None:
        self.version = hashlib.sha256(raw).hexdigest()[:8]
        lines = [ln for ln in raw.decode("utf-8").splitlines() if ln and not ln.startswith("#")]
        self.signals: list[Signal] = []
        for n, row in enumerate(csv.DictReader(lines, delimiter="\t"), start=1):
            term, level = (row.get("term") or "").strip(), row.get("level")
            if not term or level not in LEVELS or row.get("language") not in ("en", "zh"):
                raise ConfigError(f"urgency lexicon {where}: row {n} is not term/language/level")
            self.signals.append(
                Signal(
                    term=term.lower(),
                    language=str(row["language"]),
                    level=str(level),
                    signal=(row.get("signal") or "").strip(),
                    negatable=(row.get("negatable") or "n").strip() == "y",
                )
            )
        # longest first, so that "caught fire" wins over "fire" at the same place
        ordered = sorted(self.signals, key=lambda sig: -len(sig.term))
        self._exact = {sig.term: sig for sig in self.signals if not sig.term.endswith("*")}
        self._prefixes = [
            (sig.term.removesuffix("*"), sig) for sig in ordered if sig.term.endswith("*")
        ]
        self._regex = (
            re.compile("|".join(_pattern(sig.term) for sig in ordered)) if ordered else None
        )

    def _signal(self, matched: str) -> Signal | None:
        """The row a match came from: its words with single spaces, or the prefix it starts
        with."""
        said = " ".join(matched.split())
        exact = self._exact.get(said)
        if exact is not None:
            return exact
        return next((sig for prefix, sig in self._prefixes if said.startswith(prefix)), None)

    def _negated(self, text: str, start: int, chinese: bool) -> bool:
        if chinese:
            return text[max(0, start - 2) : start].endswith(ZH_NEGATIONS)
        before = re.findall(r"[\w']+", text[max(0, start - 40) : start])[-3:]
        return any(w in EN_NEGATIONS or w.endswith("n't") for w in before)

    def hits(self, text: str) -> list[Hit]:
        """The signals in one post, in the order they occur, each signal once."""
        if self._regex is None:
            return []
        lowered = text.lower()
        found: list[Hit] = []
        seen: set[str] = set()
        for m in self._regex.finditer(lowered):
            signal = self._signal(m.group())
            at = m.start()
            chinese = bool(HAN.match(m.group()))
            if signal is None or signal.term in seen:
                continue
            if not chinese and at > 0 and (lowered[at - 1].isalnum() or lowered[at - 1] == "_"):
                continue  # inside a word: "wildfire" is not "fire"
            if signal.negatable and self._negated(lowered, at, chinese):
                continue
            seen.add(signal.term)
            found.append(Hit(text=m.group(), signal=signal))
        return found

    def hits_batch(self, texts: Sequence[str]) -> list[list[Hit]]:
        return [self.hits(t) if t else [] for t in texts]


def floor_levels(
    levels: Sequence[str], probabilities: np.ndarray, hits: Sequence[Sequence[Hit]]
) -> np.ndarray:
    """Urgency probabilities where every post with a hit is at least its strongest hit's level.

    The probability the model gave to levels below that floor moves onto the floor: the model
    still says how much more urgent than the floor a post may be, and the score stays a
    distribution. ``levels`` are the model's classes in column order (``pipeline.records.
    URGENCY_LEVELS`` spelled as the model has them); rows without hits are returned unchanged.
    """
    order = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    rank = np.array([order.get(level, 0) for level in levels])
    out = probabilities.copy()
    for i, post_hits in enumerate(hits):
        if not post_hits:
            continue
        floor = max(order[h.signal.level] for h in post_hits)
        if floor not in rank:
            continue
        below = rank < floor
        target = int(np.flatnonzero(rank == floor)[0])
        out[i, target] += out[i, below].sum()
        out[i, below] = 0.0
    return out
