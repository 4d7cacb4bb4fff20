"""Playing recorded API traffic back to the real tweepy and praw clients.

Cassettes live in ../shared/fixtures and stay there. Matching is on method and path only, so any
cassette of the same endpoints works, whatever query parameters the connector adds. Fault cases are
new cassettes built from the recorded ones: the recorded interaction with its status, headers or
body changed.
"""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import vcr
import yaml

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
X_CASSETTES = FIXTURES / "x_api_v2"

# decode_compressed_response also applies on playback: with urllib3 2 a gzip body recorded by
# vcrpy is otherwise handed to the client still compressed.
player = vcr.VCR(
    record_mode="none",
    match_on=["method", "scheme", "host", "path"],
    decode_compressed_response=True,
)


def load(name: str) -> dict[str, Any]:
    path = X_CASSETTES / name
    if not path.exists():
        raise FileNotFoundError(f"recorded cassette {path} is missing (../shared/fixtures)")
    return dict(yaml.safe_load(path.read_text()))


def body_json(interaction: dict[str, Any]) -> Any:
    raw = interaction["response"]["body"]["string"]
    if isinstance(raw, bytes) and raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def with_status(
    interaction: dict[str, Any], code: int, body: Any, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The recorded exchange, answered differently: a fault the real API does produce."""
    changed = copy.deepcopy(interaction)
    response = changed["response"]
    response["status"] = {"code": code, "message": "fault"}
    response["body"] = {"string": json.dumps(body)}
    kept = {
        k: v
        for k, v in response["headers"].items()
        if k.lower() not in ("content-encoding", "content-length")
    }
    kept.update({k: [v] for k, v in (headers or {}).items()})
    response["headers"] = kept
    return changed


def last_page(interaction: dict[str, Any]) -> dict[str, Any]:
    """The recorded search answer as the last page of its poll: without ``meta.next_token``
    (tests/test_connector_x_pages.py covers polls of several pages)."""
    body = body_json(interaction)
    body["meta"].pop("next_token", None)
    return with_status(interaction, 200, body)


def write(path: Path, interactions: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.dump({"interactions": interactions, "version": 1}))
    return path
