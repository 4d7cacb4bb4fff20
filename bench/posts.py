"""Replayable benchmark posts, generated from the project's own seed templates.

Texts come from ``classifiers.seed`` (every scenario and spam template, in English and Chinese,
slots filled by a seeded generator). Real posts are longer and more varied than one template, so
a post joins one to three filled templates, which gives lengths from a few words up to a full
280-character post. The spam share is fixed (default 10%, inside the 5-15% that brand channels
see). Nothing from ``../shared/data`` is read or copied.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson

from classifiers.seed import SCENARIOS, SPAM_EN, SPAM_ZH, _decorate, _fill

MAX_CHARS = 280


def texts(n: int, seed: int = 2026, spam_share: float = 0.10) -> list[tuple[str, bool]]:
    """``n`` (text, is_spam) pairs; spam is exactly ``round(n * spam_share)`` of them."""
    rng = random.Random(seed)
    spam_at = set(rng.sample(range(n), round(n * spam_share)))
    out: list[tuple[str, bool]] = []
    for i in range(n):
        zh = rng.random() < 0.35
        if i in spam_at:
            template = rng.choice(SPAM_ZH if zh else SPAM_EN)
            out.append((_fill(template, rng, zh), True))
            continue
        parts = []
        for _ in range(rng.choices((1, 2, 3), weights=(55, 30, 15))[0]):
            scenario = rng.choice(SCENARIOS)
            template = rng.choice(scenario.zh if zh else scenario.en)
            parts.append(_fill(template, rng, zh))
        joiner = "" if zh else ". "
        out.append((_decorate(joiner.join(parts), rng, zh)[:MAX_CHARS], False))
    return out


def post_bytes(
    run: str, n: int, seed: int = 2026, spam_share: float = 0.10, start: datetime | None = None
) -> list[bytes]:
    """``n`` posts in the connector's JSONL layout, ids unique to ``run``, ready to produce."""
    rng = random.Random(seed + 1)
    at = start or datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    out = []
    for i, (text, _) in enumerate(texts(n, seed, spam_share)):
        at += timedelta(milliseconds=rng.randint(1, 400))
        author = rng.randint(1, max(n // 5, 1))
        followers = int(rng.paretovariate(1.2) * 40)
        out.append(
            orjson.dumps(
                {
                    "source": "bench",
                    "native_id": f"{run}-{i}",
                    "author": {
                        "id": str(author),
                        "handle": f"user{author}",
                        "followers": followers,
                        "verified": followers > 50_000,
                    },
                    "text": text,
                    "created_at": at.isoformat(),
                }
            )
        )
    return out
