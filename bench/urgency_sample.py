"""Draw the candidates for the urgency test set (``tests/data/urgency_posts.jsonl``).

Real public posts from ``../shared/data``, chosen by each set's own labels, never by the urgency
lexicon (so that the lexicon's recall on the set is not a product of how it was drawn): crisis
tweets by CrisisLex's information type, tweets by TweetEval's sentiment and emotion, Chinese
reviews by their sentiment, more negative than positive so that problems are well represented;
English and Chinese only.
Seeded, so the same candidates come out on any machine; a person then labels each one by the
definition in ``docs/urgency.md``.

    python bench/urgency_sample.py ../shared/data > candidates.jsonl
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path

import orjson
import py3langid

SEED = 22
MAX_CHARS = 200


def crisislex(root: Path) -> list[dict[str, str]]:
    quota = {
        "Affected individuals": 40,
        "Infrastructure and utilities": 30,
        "Caution and advice": 25,
        "Donations and volunteering": 20,
        "Sympathy and support": 25,
        "Other Useful Information": 20,
    }
    rows: dict[str, list[dict[str, str]]] = {k: [] for k in quota}
    for path in sorted((root / "crisislex/data/CrisisLexT26").glob("*/*-tweets_labeled.csv")):
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            for row in csv.DictReader(f, skipinitialspace=True):
                kind, text = row.get("Information Type", ""), row.get("Tweet Text", "")
                # English only: the product triages English and Chinese, and T26 mixes in others
                if (
                    kind in rows
                    and 20 < len(text) <= MAX_CHARS
                    and py3langid.classify(text)[0] == "en"
                ):
                    rows[kind].append(
                        {"source": f"crisislex/{path.parent.name}", "ref": row["Tweet ID"],
                         "text": text, "drawn_as": kind}
                    )
    rng = random.Random(SEED)
    return [r for kind, n in quota.items() for r in rng.sample(rows[kind], n)]


def tweeteval(root: Path) -> list[dict[str, str]]:
    out = []
    rng = random.Random(SEED)
    for task, quota in (
        ("sentiment", {"0": 30, "1": 25, "2": 25}),  # negative, neutral, positive
        ("emotion", {"0": 25, "3": 15}),  # anger, sadness
    ):
        folder = root / "tweeteval/datasets" / task
        lines = folder.joinpath("mapping.txt").read_text().splitlines()
        names = dict(line.split("\t", 1) for line in lines if "\t" in line)
        texts = folder.joinpath("test_text.txt").read_text(encoding="utf-8").splitlines()
        labels = folder.joinpath("test_labels.txt").read_text().split()
        for label, n in quota.items():
            pool = [i for i, y in enumerate(labels) if y == label and len(texts[i]) <= MAX_CHARS]
            for i in rng.sample(pool, n):
                out.append({"source": f"tweeteval/{task}/test", "ref": str(i + 1),
                            "text": texts[i].strip(), "drawn_as": names.get(label, label)})
    return out


def chinese(root: Path) -> list[dict[str, str]]:
    base = root / "chinese_sophonplus/datasets"
    sets = (
        ("waimai_10k/waimai_10k.csv", {"0": 50, "1": 10}),
        ("ChnSentiCorp_htl_all/ChnSentiCorp_htl_all.csv", {"0": 30, "1": 5}),
        ("online_shopping_10_cats/online_shopping_10_cats.csv", {"0": 40, "1": 5}),
    )
    rng = random.Random(SEED)
    out = []
    for name, quota in sets:
        with (base / name).open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        for label, n in quota.items():
            pool = [
                (i, r) for i, r in enumerate(rows, start=2)
                if r["label"] == label and 8 <= len(r["review"] or "") <= MAX_CHARS // 2
            ]
            for i, r in rng.sample(pool, n):
                out.append({"source": f"chinese_sophonplus/{name.split('/')[0]}", "ref": str(i),
                            "text": r["review"].strip(),
                            "drawn_as": "negative" if label == "0" else "positive"})
    return out


def main(root: Path) -> None:
    for row in crisislex(root) + tweeteval(root) + chinese(root):
        sys.stdout.buffer.write(orjson.dumps(row) + b"\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
