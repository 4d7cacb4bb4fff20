"""Triage a whole batch of posts at once: the stages the worker runs, in order.

language -> text preparation (spaCy ``nlp.pipe``) -> one vectorizer call -> one ``predict_proba``
per task -> entities and redaction -> priority. Nothing here runs a model per message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from classifiers import evidence as evidence_
from classifiers.entities import EntityExtractor, mask_pii, redact
from classifiers.language import LanguageDetector
from classifiers.lexicon import Hit, Lexicon, floor_levels
from classifiers.model import TriageModel
from classifiers.registry import Registry
from classifiers.text import TextPreparer
from pipeline import priority
from pipeline.records import Post, Prediction, Priority, TriagedPost

MODEL_NAME = "triage"
TASKS = ("spam", "topic", "urgency", "sentiment")  # every bundle has these heads
OPTIONAL_TASKS = ("emotion",)  # heads a bundle has if it was trained with their labels


# Candidate features read per post and task before cleaning (``classifiers.evidence``): enough
# that three meaningful phrases survive the stop words and the repeats of one word across views.
EVIDENCE_CANDIDATES = 8


def explained(
    reasons: list[str], urgency: Prediction, topic: Prediction, hits: Sequence[Hit] = ()
) -> list[str]:
    """The priority's reasons with the words that drove the urgency and topic models, and one
    reason per urgency signal of the lexicon (after the first: it stays the urgency reason)."""
    if urgency.evidence and reasons:
        reasons[0] += f" from {', '.join(map(repr, urgency.evidence))}"
    signals = [f"signal {h.text!r}: {h.signal.signal} ({h.signal.level})" for h in hits]
    reasons[1:1] = signals
    if topic.evidence:
        reasons.append(f"topic {topic.label} from {', '.join(map(repr, topic.evidence))}")
    return reasons


def bundle_tasks(rows: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The tasks a bundle trained on these rows has: the required ones, and each optional one
    some row is labelled for."""
    return TASKS + tuple(t for t in OPTIONAL_TASKS if any(r.get(t) is not None for r in rows))


class Triager:
    def __init__(
        self,
        model: TriageModel,
        version: str,
        products: Sequence[str] = (),
        spam_threshold: float = 0.5,
        lexicon: Lexicon | None = None,
    ) -> None:
        missing = set(TASKS) - set(model.tasks)
        if missing:
            raise ValueError(f"model lacks tasks: {sorted(missing)}")
        self.model = model
        self.version = version
        self.spam_threshold = spam_threshold
        self.languages = LanguageDetector()
        self.preparer = TextPreparer()
        self.products = tuple(products)
        self.entities = EntityExtractor(products)
        self.tasks = TASKS + tuple(t for t in OPTIONAL_TASKS if t in model.tasks)
        self.lexicon = Lexicon() if lexicon is None else lexicon
        self.model_versions = {task: f"{MODEL_NAME}:{version}" for task in self.tasks}

    @classmethod
    def from_registry(cls, registry: Registry, products: Sequence[str] = ()) -> Triager:
        """The registry's active bundle, finding the brand's ``products``
        (``classifiers.products``)."""
        model, version = registry.load(MODEL_NAME)
        return cls(model, version, products)

    def triage(self, posts: Sequence[Post], now: datetime) -> list[TriagedPost]:
        if not posts:
            return []
        timings: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now_ = time.perf_counter()
            timings[stage] = round((now_ - clock) * 1000 / len(posts), 4)
            clock = now_

        texts = [p.text for p in posts]
        # Detect only where the source did not say (X gives ``lang``; replays and Reddit do not).
        unknown = [i for i, p in enumerate(posts) if not p.language]
        detected = iter(self.languages.detect([texts[i] for i in unknown]))
        languages = [p.language or next(detected) for p in posts]
        lap("language")
        prepared = self.preparer.prepare(texts, languages)
        lap("prepare")
        Z = self.model.transform(prepared)
        probs = self.model.predict_proba(Z)
        hits = self.lexicon.hits_batch(texts)
        levels, urgency_p = probs["urgency"]
        probs["urgency"] = (levels, floor_levels([str(c) for c in levels], urgency_p, hits))
        lap("classify")
        picks = {task: probs[task][1].argmax(axis=1) for task in self.tasks}
        said = [evidence_.Words(prepared[i], languages[i]) for i in range(len(posts))]
        evidence = {}
        for task in ("topic", "urgency"):
            raw = self.model.evidence(task, Z, picks[task], k=EVIDENCE_CANDIDATES)
            evidence[task] = [
                evidence_.clean(
                    raw[i], said[i], first=[h.text for h in hits[i]] if task == "urgency" else ()
                )
                for i in range(len(posts))
            ]
        lap("explain")
        entities = self.entities.extract_batch(texts)
        lap("entities")

        # Whole-batch conversions: one rounding and one ``tolist`` per task instead of a numpy
        # scalar per probability.
        names = {task: [str(c) for c in probs[task][0]] for task in self.tasks}
        rounded = {task: np.round(probs[task][1], 4).tolist() for task in self.tasks}
        picked = {task: picks[task].tolist() for task in self.tasks}

        def prediction(task: str, i: int) -> Prediction:
            labels, row, j = names[task], rounded[task][i], picked[task][i]
            return Prediction(
                label=labels[j],
                confidence=row[j],
                probabilities=dict(zip(labels, row, strict=True)),
                evidence=evidence[task][i] if task in evidence else [],
            )

        spam_col = int(np.flatnonzero(probs["spam"][0] == "spam")[0])
        spam_flags = (probs["spam"][1][:, spam_col] >= self.spam_threshold).tolist()
        negative = np.flatnonzero(probs["sentiment"][0] == "negative")
        priorities = priority.scores(
            names["urgency"],
            probs["urgency"][1],
            probs["sentiment"][1][:, negative[0]] if negative.size else np.zeros(len(posts)),
            [p.author for p in posts],
            [p.created_at for p in posts],
            now,
        )
        out = []
        for i, (post, (score, band, reasons)) in enumerate(zip(posts, priorities, strict=True)):
            urgency = prediction("urgency", i)
            topic = prediction("topic", i)
            out.append(
                TriagedPost(
                    post=post,
                    language=languages[i],
                    spam=prediction("spam", i),
                    is_spam=spam_flags[i],
                    topic=topic,
                    urgency=urgency,
                    sentiment=prediction("sentiment", i),
                    emotion=prediction("emotion", i) if "emotion" in self.tasks else None,
                    entities=mask_pii(entities[i]),
                    redacted_text=redact(post.text, entities[i]),
                    priority=Priority(
                        score=score, band=band, reasons=explained(reasons, urgency, topic, hits[i])
                    ),
                    model_versions=self.model_versions,
                    timings_ms=timings,
                    triaged_at=now,
                )
            )
        lap("assemble")
        return out
