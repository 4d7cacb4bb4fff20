"""The JSON Schemas in docs/schemas are the records' own: regenerated, they come out the same."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from pipeline.cli.schemas import SCHEMAS, rendered
from tests.helpers import post_bytes

DOCS = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def test_the_schema_files_match_the_records() -> None:
    assert sorted(p.name for p in DOCS.glob("*.json")) == sorted(SCHEMAS)
    for name, text in rendered().items():
        assert (DOCS / name).read_text() == text, f"{name} is stale: run `make schemas`"


def test_a_post_the_worker_takes_is_valid_under_the_published_schema() -> None:
    schema = json.loads((DOCS / "post.json").read_text())
    jsonschema.validate(json.loads(post_bytes(3)), schema)
    bad = {**json.loads(post_bytes(3)), "id": "test:3"}  # refused by the worker, and the schema
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError as exc:
        assert "id" in str(exc.message)
    else:
        raise AssertionError("the schema took an extra id field")
