"""Urgency on real posts: the shipped triager against 420 posts labelled by docs/urgency.md.

``tests/data/urgency_posts.jsonl`` holds real public posts (CrisisLex, TweetEval, Chinese
reviews) and the urgency a person gave each by the written definition. Three ways of deciding are
scored on it, so that each part's share is visible: the bundle's urgency head alone, the lexicon
alone (its strongest hit's level, else low), and both as the worker runs them (the lexicon's
level as a floor under the model's probabilities). Macro-F1 over the four levels, recall of
critical, of high, and of "critical or high" judged as one (a post that needs a person soon,
put where one looks soon). Writes the ``urgency_real_posts`` key of docs/quality.json and its
own section of docs/quality.md.

    python bench/urgency_quality.py            # (``make quality`` runs it)
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from sklearn.metrics import confusion_matrix, f1_score, recall_score

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from classifiers.lexicon import Lexicon  # noqa: E402
from classifiers.registry import PACKAGED, Registry  # noqa: E402
from classifiers.triager import Triager  # noqa: E402
from pipeline.records import URGENCY_LEVELS, Author, Post  # noqa: E402

DATA = REPO / "tests" / "data" / "urgency_posts.jsonl"
SECTION = "## Urgency on real posts (`urgency_real_posts`)"
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def load(path: Path = DATA) -> list[dict[str, str]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def scores(truth: list[str], predicted: list[str]) -> dict[str, float]:
    urgent = [t in ("critical", "high") for t in truth]
    flagged = [p in ("critical", "high") for p in predicted]
    per_level = recall_score(
        truth, predicted, labels=list(URGENCY_LEVELS), average=None, zero_division=0
    )
    return {
        "macro_f1": round(
            float(f1_score(truth, predicted, labels=list(URGENCY_LEVELS), average="macro")), 4
        ),
        "accuracy": round(float(np.mean(np.asarray(truth) == np.asarray(predicted))), 4),
        **{
            f"recall_{lvl}": round(float(r), 4)
            for lvl, r in zip(URGENCY_LEVELS, per_level, strict=True)
        },
        "recall_critical_or_high": round(
            sum(u and f for u, f in zip(urgent, flagged, strict=True)) / max(sum(urgent), 1), 4
        ),
        "precision_critical_or_high": round(
            sum(u and f for u, f in zip(urgent, flagged, strict=True)) / max(sum(flagged), 1), 4
        ),
    }


def main() -> None:
    started = time.perf_counter()
    rows = load()
    truth = [r["urgency"] for r in rows]
    posts = [
        Post(
            source="bench",
            native_id=str(r["id"]),
            author=Author(id="a"),
            text=r["text"],
            created_at=NOW - timedelta(minutes=1),
        )
        for r in rows
    ]
    lexicon = Lexicon()
    registry = Registry(PACKAGED)
    triager = Triager.from_registry(registry)
    model_only = Triager(triager.model, triager.version, lexicon=Lexicon.empty())
    shipped = [t.urgency.label for t in triager.triage(posts, NOW)]
    model = [t.urgency.label for t in model_only.triage(posts, NOW)]
    order = {"high": 1, "critical": 2}
    lexicon_only = []
    for hits in lexicon.hits_batch([r["text"] for r in rows]):
        top = max((h.signal.level for h in hits), key=order.__getitem__, default="low")
        lexicon_only.append(top)
    results = {
        "model and lexicon (what the worker runs)": scores(truth, shipped),
        "model alone (the bundle's urgency head)": scores(truth, model),
        "lexicon alone (strongest hit, else low)": scores(truth, lexicon_only),
    }
    for name, s in results.items():
        print(f"{name}: {s}", flush=True)
    value = results["model and lexicon (what the worker runs)"]
    matrix = confusion_matrix(truth, shipped, labels=list(URGENCY_LEVELS))
    by_source: dict[str, list[int]] = {}
    for r, p in zip(rows, shipped, strict=True):
        family = r["source"].split("/")[0]
        by_source.setdefault(family, [0, 0])
        by_source[family][0] += r["urgency"] in ("critical", "high")
        by_source[family][1] += r["urgency"] in ("critical", "high") and p in ("critical", "high")

    path = REPO / "docs" / "quality.json"
    merged = json.loads(path.read_text()) if path.exists() else {}
    merged["urgency_real_posts"] = {"metric": "macro_f1", "value": value["macro_f1"]}
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    counts = Counter(truth)
    cols = ["macro_f1", "recall_critical", "recall_high", "recall_critical_or_high",
            "precision_critical_or_high", "accuracy"]
    lines = [
        SECTION,
        "",
        "Command: `make quality` (`bench/urgency_quality.py`) · date: "
        f"{datetime.now(UTC):%Y-%m-%d} · model: `triage:{triager.version}` · lexicon:"
        f" `{lexicon.version}` ({len(lexicon.signals)} signals) ·"
        f" {time.perf_counter() - started:.0f} s",
        "",
        f"{len(rows)} real public posts labelled by the definition in `docs/urgency.md`"
        f" (`tests/data/urgency_posts.jsonl`, drawn by `bench/urgency_sample.py`; labelling notes"
        f" in `docs/urgency.md`): "
        + ", ".join(f"{counts[lvl]} {lvl}" for lvl in reversed(URGENCY_LEVELS))
        + ". One labeller: differences of a few points are noise.",
        "",
        "| decided by | " + " | ".join(c.replace("_", " ") for c in cols) + " |",
        "|---|" + "---|" * len(cols),
        *(f"| {name} | " + " | ".join(f"{s[c]:.3f}" for c in cols) + " |"
          for name, s in results.items()),
        "",
        "Confusion matrix of what the worker runs (rows: label, columns: decided; "
        + ", ".join(URGENCY_LEVELS) + "):",
        "",
        "| label | " + " | ".join(URGENCY_LEVELS) + " |",
        "|---|" + "---|" * len(URGENCY_LEVELS),
        *(f"| {lvl} | " + " | ".join(str(int(n)) for n in row) + " |"
          for lvl, row in zip(URGENCY_LEVELS, matrix, strict=True)),
        "",
        "Critical or high found, by source: "
        + "; ".join(f"{k} {found}/{n}" for k, (n, found) in sorted(by_source.items())) + ".",
    ]
    md = REPO / "docs" / "quality.md"
    text = md.read_text() if md.exists() else "# Quality\n"
    text = re.sub(rf"\n{re.escape(SECTION)}\n.*?(?=\n## |\n<!-- |\Z)", "", text, flags=re.S)
    md.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
