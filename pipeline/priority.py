"""The priority score that orders the agent queue, with the reasons an agent reads.

Score = 100 x weighted sum of: expected urgency, negative sentiment, author reach, and time waited,
each scaled to [0, 1]. Every term that matters enough to move the order is named in the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from pipeline.records import URGENCY_VALUE, Author, Priority

WEIGHTS = {"urgency": 0.55, "sentiment": 0.15, "reach": 0.15, "age": 0.15}
AGE_FULL_S = 4 * 3600.0
BANDS = ((75.0, "P1"), (50.0, "P2"), (25.0, "P3"), (0.0, "P4"))


def band_for(score: float) -> str:
    return next(band for floor, band in BANDS if score >= floor)


def scores(
    urgency_levels: Sequence[str],
    urgency: np.ndarray,
    negative: np.ndarray,
    authors: Sequence[Author],
    created_at: Sequence[datetime],
    now: datetime,
) -> list[tuple[float, str, list[str]]]:
    """Score, band and reasons of every post in a batch, its terms computed as arrays.

    ``urgency`` holds one row of probabilities per post, one column per level in
    ``urgency_levels``; ``negative`` the probability of negative sentiment.
    """
    values = np.array([URGENCY_VALUE.get(level, 0.0) for level in urgency_levels])
    expected = urgency @ values
    top = urgency.argmax(axis=1)
    reach = np.array([reach_of(a.followers, a.verified) for a in authors])
    waited_s = np.maximum([(now - c).total_seconds() for c in created_at], 0.0)
    age = np.minimum(waited_s / AGE_FULL_S, 1.0)
    total = 100.0 * (
        WEIGHTS["urgency"] * expected
        + WEIGHTS["sentiment"] * negative
        + WEIGHTS["reach"] * reach
        + WEIGHTS["age"] * age
    )
    out = []
    rows = zip(
        np.round(np.clip(total, 0.0, 100.0), 2).tolist(),
        top.tolist(),
        urgency[np.arange(len(top)), top].tolist(),
        negative.tolist(),
        authors,
        waited_s.tolist(),
        strict=True,
    )
    for score_, level, p_level, neg, author, waited in rows:
        reasons = [f"urgency {urgency_levels[level]} ({p_level:.0%})"]
        if neg >= 0.5:
            reasons.append(f"negative sentiment ({neg:.0%})")
        if author.followers >= 10_000 or author.verified:
            verified_ = ", verified" if author.verified else ""
            reasons.append(f"reach {author.followers:,} followers{verified_}")
        if waited >= 1800:
            reasons.append(f"waiting {waited / 3600:.1f} h")
        out.append((score_, band_for(score_), reasons))
    return out


# ---- re-scoring in the queue: the full score, as SLA time runs out

PRIORITY_VERSION = "queue-priority-1"
RESCORE_WEIGHTS = {
    "urgency": 0.50,
    "sentiment": 0.12,
    "reach": 0.08,
    "value": 0.10,
    "sla": 0.15,
    "spike": 0.05,
}
TIER_VALUE = {"standard": 0.0, "silver": 0.35, "gold": 0.7, "platinum": 1.0}


@dataclass(frozen=True)
class Inputs:
    """Everything the queue's score reads: triage's factors, the customer and the clock."""

    urgency: float
    negative: float
    followers: int
    verified: bool
    urgency_label: str
    tier: str | None
    sla_left_s: float
    sla_window_s: float
    spike: bool


def reach_of(followers: int, verified: bool) -> float:
    reach = min(math.log10(followers + 1) / 6.0, 1.0)
    return min(reach + 0.25, 1.0) if verified else reach


def rescore(inputs: Inputs) -> Priority:
    """The queue's score: the triage terms plus customer value, SLA pressure and spikes.

    SLA pressure is the share of the first-response window already spent, so an item climbs as
    its deadline nears and sits at the top once breached."""
    spent = 1.0 - inputs.sla_left_s / inputs.sla_window_s if inputs.sla_window_s > 0 else 1.0
    parts = {
        "urgency": inputs.urgency,
        "sentiment": inputs.negative,
        "reach": reach_of(inputs.followers, inputs.verified),
        "value": TIER_VALUE.get(inputs.tier or "standard", 0.0),
        "sla": min(max(spent, 0.0), 1.0),
        "spike": 1.0 if inputs.spike else 0.0,
    }
    total = 100.0 * sum(RESCORE_WEIGHTS[k] * v for k, v in parts.items())
    reasons = [f"urgency {inputs.urgency_label} (expected {inputs.urgency:.2f})"]
    if inputs.negative >= 0.5:
        reasons.append(f"negative sentiment ({inputs.negative:.0%})")
    if inputs.followers >= 10_000 or inputs.verified:
        verified = ", verified" if inputs.verified else ""
        reasons.append(f"reach {inputs.followers:,} followers{verified}")
    if parts["value"] > 0:
        reasons.append(f"customer tier {inputs.tier}")
    if inputs.sla_left_s <= 0:
        reasons.append(f"first-response SLA breached {-inputs.sla_left_s / 60:.0f} min ago")
    elif parts["sla"] >= 0.5:
        reasons.append(f"first-response SLA: {inputs.sla_left_s / 60:.0f} min left")
    if inputs.spike:
        reasons.append("part of a spike")
    score_ = round(min(max(total, 0.0), 100.0), 2)
    return Priority(score=score_, band=band_for(score_), reasons=reasons)
