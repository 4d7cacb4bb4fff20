"""The marketing report: the same data as JSON, and as HTML, PNG, PDF and CSV that parse."""

from __future__ import annotations

import csv
import io
import json
import random
import struct
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import Store
from pipeline.trends.detector import TrendDetector
from pipeline.trends.report import PNG_SIZE, render, trend_report_data
from tests.test_trends import START, START_MIN, background, batch_of, burst, stream

END = START + timedelta(hours=5)


def fill(store: Store) -> None:
    detector = TrendDetector(store, worker_id="w")
    stream(detector, range(0, 4 * 60))
    burst(detector, 4 * 60, 20)
    rng = random.Random(8)
    for m in range(4 * 60 + 20, 4 * 60 + 40):
        detector.update_batch(background(START_MIN + m, rng))
        detector.update_batch(batch_of(START_MIN + m, ["hola pedido"], rng, topic="delivery"))
    detector.close()


@pytest.fixture
def data(store: Store) -> dict[str, object]:
    fill(store)
    return trend_report_data(store, START, END)


def test_report_data_is_json_and_adds_up(data: dict[str, object]) -> None:
    again = json.loads(json.dumps(data))
    assert again == data
    volume = data["volume"]
    assert isinstance(volume, list) and data["bin_minutes"] == 5
    assert sum(v["posts"] for v in volume) == data["posts"] == 6 * 280 + 4 * 20 + 20
    spikes = data["spikes"]
    assert isinstance(spikes, list) and spikes[0]["what"] == "#blackout"
    assert spikes[0]["sample_posts"] and spikes[0]["sentiment_mix"]
    topics = {r["topic"]: r for r in data["rising_topics"]}
    # the burst's topic has no baseline before the last third: "new", not an endless percentage
    assert topics["product_defect"]["posts"] == 80 and topics["product_defect"]["new"]
    assert topics["product_defect"]["growth"] is None and topics["general"]["growth"] is not None
    assert set(data["sentiment_by_topic"]) == {"general", "product_defect", "delivery"}
    assert data["share_by_source"] == {"x": 1.0}
    assert data["share_by_language"] == {"en": 1.0}


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_parses_with_charts_and_spikes(data: dict[str, object]) -> None:
    page = Collect()
    page.feed(render(data, "html").decode())
    imgs = [a for t, a in page.tags if t == "img"]
    assert imgs and (imgs[0]["src"] or "").startswith("data:image/png;base64,")
    assert "#blackout" in page.text
    assert any(t == "table" and a.get("id") == "spikes" for t, a in page.tags)


def test_png_report_is_a_png_of_the_promised_size(data: dict[str, object]) -> None:
    png = render(data, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == PNG_SIZE


def test_pdf_report_is_readable(data: dict[str, object]) -> None:
    reader = PdfReader(io.BytesIO(render(data, "pdf")))
    assert len(reader.pages) == 2
    assert "Spikes detected" in reader.pages[1].extract_text()
    assert "#blackout" in reader.pages[1].extract_text()


def test_csv_report_parses(data: dict[str, object]) -> None:
    rows = list(csv.DictReader(io.StringIO(render(data, "csv").decode())))
    sections = {r["section"] for r in rows}
    assert sections >= {"volume", "spike", "rising_topic", "sentiment", "share_by_language"}
    assert sum(int(r["value"]) for r in rows if r["section"] == "volume") == data["posts"]
    assert next(r["name"] for r in rows if r["section"] == "spike") == "#blackout"


def test_bad_range_and_format_are_refused(store: Store) -> None:
    with pytest.raises(ConfigError, match="before"):
        trend_report_data(store, END, START)
    with pytest.raises(ConfigError, match="format"):
        render(trend_report_data(store, START, END), "docx")


def test_cli_writes_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(kafka_bootstrap=None, mongo_uri=None, data_dir=tmp_path)
    store = EmbeddedStore(settings.embedded_db)
    store.ensure_schema()
    fill(store)
    store.close()
    monkeypatch.setenv("TRIAGE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TRIAGE_MONGO_URI", raising=False)
    out = tmp_path / "r.png"
    args = ["report", "trends", "--since", "2026-11-02T00:00:00", "--until",
            "2026-11-02T05:00:00", "--format", "png", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    bad = CliRunner().invoke(app, [*args[:6], "--format", "docx"], standalone_mode=False)
    assert isinstance(bad.exception, ConfigError) and "docx" in str(bad.exception)
