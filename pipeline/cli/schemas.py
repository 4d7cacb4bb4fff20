"""JSON Schema of every record on the pipeline's topics, written to ``docs/schemas/``.

``docs/kafka.md`` points producers and consumers outside this code base at these files; they are
generated from the pydantic records themselves (``make schemas``), and tests/test_schemas.py
fails when a record changes without them, so the contract cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from pipeline.records import DeadLetter, Post, TriagedPost
from pipeline.trends.detector import Trend

# file name: (record, the topics whose values it describes)
SCHEMAS: dict[str, tuple[type[BaseModel], str]] = {
    "post.json": (Post, "posts.raw"),
    "triaged_post.json": (TriagedPost, "posts.triaged, posts.spam"),
    "dead_letter.json": (DeadLetter, "posts.dlq"),
    "trend.json": (Trend, "trends.alerts"),
}


def rendered() -> dict[str, str]:
    """Each schema file's text, exactly as ``make schemas`` writes it."""
    out = {}
    for name, (model, topics) in SCHEMAS.items():
        schema = model.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://social-triage.example/schemas/{name}",
            "description": f"The value of a record on {topics} (UTF-8 JSON). "
            + (schema.get("description") or ""),
            **{k: v for k, v in schema.items() if k != "description"},
        }
        out[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "docs/schemas")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (target / name).write_text(text)
        print(f"schemas: {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
