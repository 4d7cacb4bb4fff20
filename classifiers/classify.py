"""``triage classify``: the active bundle's judgement of loose texts, one JSON object each.

Operators use it to try the brain and scripts to check it, so it runs exactly what the worker
runs (``Triager.triage`` over micro-batches) on texts wrapped as posts from source ``cli``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from classifiers.triager import Triager
from pipeline.records import MAX_TEXT_CHARS, Author, Post, Prediction, TriagedPost


def _head(prediction: Prediction | None, evidence: bool) -> dict[str, Any] | None:
    if prediction is None:
        return None
    out: dict[str, Any] = {"label": prediction.label, "confidence": round(prediction.confidence, 4)}
    if evidence:
        out["evidence"] = prediction.evidence
    return out


def as_json(triaged: TriagedPost) -> dict[str, Any]:
    return {
        "language": triaged.language,
        "spam": _head(triaged.spam, evidence=False),
        "topic": _head(triaged.topic, evidence=True),
        "urgency": _head(triaged.urgency, evidence=True),
        "sentiment": _head(triaged.sentiment, evidence=False),
        "emotion": _head(triaged.emotion, evidence=False),
        "entities": [e.model_dump() for e in triaged.entities],
        "priority": triaged.priority.model_dump(),
    }


def problem(text: str) -> str | None:
    """Why a text cannot be triaged as a post, or None."""
    if not text.strip():
        return "empty text"
    if len(text) > MAX_TEXT_CHARS:
        return f"text longer than {MAX_TEXT_CHARS:,} characters"
    return None


def classify(
    triager: Triager, texts: Sequence[str], now: datetime, batch_size: int
) -> Iterator[dict[str, Any]]:
    """One object per text, in input order; a text that is no post gets ``{"error": why}``."""
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        posts = [
            Post(
                source="cli",
                native_id=str(start + i),
                author=Author(id="cli"),
                text=text,
                created_at=now,
            )
            for i, text in enumerate(chunk)
            if problem(text) is None
        ]
        judged = iter(triager.triage(posts, now))
        for text in chunk:
            why = problem(text)
            yield {"error": why} if why else as_json(next(judged))
