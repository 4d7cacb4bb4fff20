"""Reading labelled data for ``triage train`` and ``triage evaluate``: CSV, TSV, JSONL, XLSX.

Labels are kept exactly as the file spells them (``Low``, ``0``, ``spam``). Every problem a user
can have with a file (missing, empty, wrong columns, blank labels) is one ConfigError that names
the file and the problem.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pipeline.errors import ConfigError

FORMATS = ("csv", "tsv", "jsonl", "xlsx")


@dataclass(frozen=True)
class Labelled:
    texts: list[str]
    labels: list[str]
    columns: list[str]


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    if suffix in ("json", "ndjson"):
        return "jsonl"
    if suffix == "txt" or not suffix:
        with path.open("rb") as f:
            first = f.readline()
        if first.lstrip().startswith(b"{"):
            return "jsonl"
        return "tsv" if b"\t" in first else "csv"
    raise ConfigError(f"{path.name}: unknown format {suffix!r}; use one of {', '.join(FORMATS)}")


def _rows(path: Path, fmt: str) -> tuple[list[str], list[dict[str, Any]]]:
    if fmt in ("csv", "tsv"):
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as f:
            reader = csv.DictReader(
                f,
                delimiter="\t" if fmt == "tsv" else ",",
                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
            )
            return list(reader.fieldnames or []), list(reader)
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{path.name}:{number}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise ConfigError(f"{path.name}:{number}: each line must be a JSON object")
            rows.append(row)
        columns = list(dict.fromkeys(k for row in rows for k in row))
        return columns, rows
    from openpyxl import load_workbook

    try:
        sheet = load_workbook(path, read_only=True, data_only=True).active
    except Exception as exc:  # openpyxl raises many kinds for a bad workbook
        raise ConfigError(f"{path.name}: not a readable XLSX workbook ({exc})") from exc
    values = list(sheet.iter_rows(values_only=True)) if sheet is not None else []
    if not values:
        return [], []
    header = [str(h) if h is not None else "" for h in values[0]]
    return header, [dict(zip(header, row, strict=False)) for row in values[1:]]


def _table(
    path: Path, fmt: str | None, needed: tuple[str, ...]
) -> tuple[str, list[str], list[dict[str, Any]]]:
    """A data file's format, header and rows, with a one-line error for a missing file, an
    unknown format, no rows, or a missing column among ``needed``."""
    if not path.is_file():
        raise ConfigError(f"data file {path} does not exist")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    columns, rows = _rows(path, fmt)
    if not rows:
        raise ConfigError(f"{path.name} has no rows")
    for col in needed:
        if col not in columns:
            raise ConfigError(
                f"{path.name} has no column {col!r}; it has {', '.join(map(repr, columns))}"
            )
    return fmt, columns, rows


def read_labelled(path: Path, text_col: str, label_col: str, fmt: str | None = None) -> Labelled:
    path = Path(path)
    fmt, columns, rows = _table(path, fmt, (text_col, label_col))
    texts, labels = [], []
    for number, row in enumerate(rows, 2 if fmt != "jsonl" else 1):
        text, label = row.get(text_col), row.get(label_col)
        if label is None or str(label).strip() == "":
            raise ConfigError(f"{path.name}: row {number} has no {label_col!r} label")
        texts.append("" if text is None else str(text))
        labels.append(str(label).strip())
    return Labelled(texts, labels, columns)


def read_texts(path: Path, text_col: str, fmt: str | None = None) -> list[str]:
    """The texts of an unlabelled file (``triage classify --data``), in file order; the same
    formats and one-line errors as ``read_labelled``."""
    _, _, rows = _table(Path(path), fmt, (text_col,))
    return ["" if row.get(text_col) is None else str(row.get(text_col)) for row in rows]
