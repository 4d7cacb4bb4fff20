"""`triage classify`: one JSON object per input, in input order, from the active bundle."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.test_cli import one_line_error, triage

KEYS = {"language", "spam", "topic", "urgency", "sentiment", "emotion", "entities", "priority"}


def lines(out: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def test_texts_in_order_with_every_head() -> None:
    texts = ["my order 12345678 never arrived", "充电器冒烟了，差点起火", "", "love the new app"]
    code, out, err = triage("classify", *texts)
    assert code == 0, err
    results = lines(out)
    assert len(results) == len(texts)
    assert results[2] == {"error": "empty text"}
    for result in (results[0], results[1], results[3]):
        assert set(result) == KEYS
        assert {"label", "confidence", "evidence"} <= set(result["topic"])  # type: ignore[arg-type]
        assert {"band", "score", "reasons"} <= set(result["priority"])  # type: ignore[arg-type]
    assert results[0]["language"] == "en" and results[1]["language"] == "zh"
    assert any(e["kind"] == "order_number" for e in results[0]["entities"])  # type: ignore[attr-defined,index]


def test_a_file_in_batches_keeps_its_order(tmp_path: Path) -> None:
    rows = [
        {"body": f"parcel {i} is late again"} if i % 2 else {"body": "refund me"} for i in range(7)
    ]
    data = tmp_path / "posts.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    code, out, err = triage(
        "classify", "--data", str(data), "--text-col", "body", env={"TRIAGE_BATCH_SIZE": "3"}
    )
    assert code == 0, err
    single = [lines(triage("classify", r["body"])[1])[0] for r in rows[:2]]
    results = lines(out)
    assert len(results) == 7
    assert results[:2] == single  # the same judgement alone as in a batch


def test_bad_input_gets_one_line(tmp_path: Path) -> None:
    code, _, err = triage("classify", "--data", str(tmp_path / "missing.csv"))
    assert code == 2 and "does not exist" in one_line_error(err)
    data = tmp_path / "x.csv"
    data.write_text("text\nhello\n")
    code, _, err = triage("classify", "--data", str(data), "--text-col", "body")
    assert code == 2 and "has no column 'body'" in one_line_error(err)
    code, _, err = triage("classify")
    assert code == 2 and "give texts to classify" in one_line_error(err)
