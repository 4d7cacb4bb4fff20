"""`triage train --task` and `triage evaluate` on every file format, and on bad files."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from openpyxl import Workbook

from tests.test_cli import one_line_error
from tests.test_cli import triage as run_cli


def triage(*args: str) -> tuple[int, str, str]:
    """The CLI, with room for training's cross-validation on a machine shared with other work."""
    return run_cli(*args, timeout=600)

ROWS = [
    ("where is my parcel, tracking stuck", "Delivery"),
    ("parcel never arrived, order late", "Delivery"),
    ("courier lost my package", "Delivery"),
    ("charged twice on my card", "Billing"),
    ("refund still not on my card", "Billing"),
    ("invoice shows the wrong amount", "Billing"),
    ("订单一直没到，物流不更新", "Delivery"),
    ("重复扣款两次，退款没到账", "Billing"),
] * 4


def write(
    path: Path, rows: list[tuple[str, str]], text: str = "text", label: str = "label"
) -> Path:
    fmt = path.suffix
    if fmt in (".csv", ".tsv"):
        with path.open("w", newline="") as f:
            writer = csv.writer(f, delimiter="\t" if fmt == ".tsv" else ",")
            writer.writerow([text, label])
            writer.writerows(rows)
    elif fmt == ".jsonl":
        path.write_bytes(b"\n".join(orjson.dumps({text: t, label: y}) for t, y in rows))
    else:
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append([text, label])
        for row in rows:
            sheet.append(list(row))
        book.save(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".xlsx"])
def test_train_then_evaluate_writes_a_report(tmp_path: Path, suffix: str) -> None:
    data = write(tmp_path / f"labels{suffix}", ROWS)
    model, report = tmp_path / "m.joblib", tmp_path / "report.json"
    code, _, err = triage("train", "--task", "topic", "--data", str(data), "--out", str(model))
    assert code == 0, err
    code, out, err = triage(
        "evaluate",
        "--task",
        "topic",
        "--model",
        str(model),
        "--data",
        str(data),
        "--report",
        str(report),
    )
    assert code == 0, err
    assert "accuracy" in out and "Confusion matrix" in out
    result = orjson.loads(report.read_bytes())
    assert set(result) >= {"accuracy", "macro_f1", "mcc", "per_class"}
    assert set(result["per_class"]) == {"Delivery", "Billing"}  # spelled as in the file
    assert result["accuracy"] > 0.9
    assert sum(sum(row) for row in result["confusion_matrix"]["matrix"]) == len(ROWS)


def test_custom_label_names_and_columns(tmp_path: Path) -> None:
    rows = [(t, "1" if y == "Billing" else "0") for t, y in ROWS]
    data = write(tmp_path / "x.csv", rows, text="body", label="is_billing")
    model = tmp_path / "m.joblib"
    args = ["--data", str(data), "--text-col", "body", "--label-col", "is_billing"]
    assert triage("train", "--task", "billing-or-not", *args, "--out", str(model))[0] == 0
    code, out, _ = triage("evaluate", "--task", "billing-or-not", "--model", str(model), *args)
    assert code == 0 and "MCC" in out


def test_bad_files_get_one_line(tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", ROWS)
    model = tmp_path / "m.joblib"
    assert triage("train", "--task", "topic", "--data", str(good), "--out", str(model))[0] == 0
    empty = tmp_path / "empty.csv"
    empty.write_text("text,label\n")
    unknown = write(tmp_path / "unknown.csv", [*ROWS, ("my account is locked", "Account")])
    one_label = write(tmp_path / "one.csv", [(t, "Billing") for t, _ in ROWS])
    blank = write(tmp_path / "blank.csv", [*ROWS, ("no label here", "")])
    not_json = tmp_path / "bad.jsonl"
    not_json.write_text('{"text": "a", "label": "b"}\n{oops\n')
    cases = [
        (
            [
                "train",
                "--task",
                "topic",
                "--data",
                str(good),
                "--text-col",
                "body",
                "--out",
                str(model),
            ],
            "has no column 'body'; it has 'text', 'label'",
        ),
        (["train", "--task", "topic", "--data", str(empty), "--out", str(model)], "has no rows"),
        (
            ["train", "--task", "topic", "--data", str(one_label), "--out", str(model)],
            "at least two labels",
        ),
        (["train", "--task", "topic", "--data", str(blank), "--out", str(model)], "has no 'label'"),
        (["train", "--task", "topic", "--data", str(not_json), "--out", str(model)], "not JSON"),
        (["train", "--task", "topic", "--data", str(good)], "--task needs --data and --out"),
        (
            ["evaluate", "--task", "topic", "--model", str(model), "--data", str(unknown)],
            "labels the model never saw: 'Account'",
        ),
        (
            ["evaluate", "--task", "spam", "--model", str(model), "--data", str(good)],
            "trained for task 'topic', not 'spam'",
        ),
        (
            ["evaluate", "--task", "topic", "--model", str(good), "--data", str(good)],
            "is not a model saved by",
        ),
        (
            [
                "evaluate",
                "--task",
                "topic",
                "--model",
                str(tmp_path / "none.joblib"),
                "--data",
                str(good),
            ],
            "does not exist",
        ),
    ]
    for args, expected in cases:
        code, _, err = triage(*args)
        assert code == 2, (args, err)
        assert expected in one_line_error(err), (args, err)


def test_emotion_task_keeps_labels_as_spelled(tmp_path: Path) -> None:
    rows = [
        ("so angry, they ignored me again", "Anger"),
        ("this is outrageous, furious with support", "Anger"),
        ("love it, best day ever", "Joy"),
        ("so happy with my new phone", "Joy"),
        ("things will get better tomorrow", "Optimism"),
        ("hopeful the fix arrives soon", "Optimism"),
        ("feeling down, my parcel is lost", "Sadness"),
        ("so sad the gift never came", "Sadness"),
    ] * 3
    data = write(tmp_path / "emotion.tsv", rows)
    model, report = tmp_path / "m.joblib", tmp_path / "r.json"
    assert triage("train", "--task", "emotion", "--data", str(data), "--out", str(model))[0] == 0
    args = ["--model", str(model), "--data", str(data), "--report", str(report)]
    code, _, err = triage("evaluate", "--task", "emotion", *args)
    assert code == 0, err
    result = orjson.loads(report.read_bytes())
    assert list(result["per_class"]) == ["Anger", "Joy", "Optimism", "Sadness"]
    assert result["macro_f1"] > 0.9


def test_numeric_labels_stay_strings_as_spelled(tmp_path: Path) -> None:
    rows = [(t, "01" if y == "Billing" else "00") for t, y in ROWS]
    data = write(tmp_path / "n.jsonl", rows)
    model, report = tmp_path / "m.joblib", tmp_path / "r.json"
    assert triage("train", "--task", "flag", "--data", str(data), "--out", str(model))[0] == 0
    args = ["--model", str(model), "--data", str(data), "--report", str(report)]
    assert triage("evaluate", "--task", "flag", *args)[0] == 0
    assert set(orjson.loads(report.read_bytes())["per_class"]) == {"00", "01"}


def test_a_label_with_a_single_example_is_kept_out_and_named(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", [*ROWS, ("my password reset never arrives", "Account")])
    code, out, err = triage(
        "train", "--task", "topic", "--data", str(data), "--out", str(tmp_path / "m.joblib")
    )
    assert code == 0, err
    assert "kept out, one example each: 'Account'" in out
    assert "model won by cross-validated macro-F1" in out


def test_labels_with_one_example_each_get_one_line(tmp_path: Path) -> None:
    data = write(tmp_path / "x.csv", [*ROWS[:1], ("my password reset never arrives", "Account")])
    code, _, err = triage(
        "train", "--task", "topic", "--data", str(data), "--out", str(tmp_path / "m.joblib")
    )
    assert code == 2
    assert "at least two labels with two examples or more" in one_line_error(err)
