"""Urgency that means something: the lexicon of critical and high signals, how it raises the
model's urgency, and the labelled real posts it is measured on (issue 22, point 4)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pytest

from classifiers.lexicon import Lexicon, floor_levels
from classifiers.triager import Triager
from pipeline.errors import ConfigError
from pipeline.records import URGENCY_LEVELS
from tests.helpers import make_post

DATA = Path(__file__).parent / "data" / "urgency_posts.jsonl"
NOW = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def lexicon() -> Lexicon:
    return Lexicon()


def found(lexicon: Lexicon, text: str) -> list[tuple[str, str, str]]:
    return [(h.text, h.signal.level, h.signal.signal) for h in lexicon.hits(text)]


def test_signals_are_found_in_english_and_chinese(lexicon: Lexicon) -> None:
    assert found(lexicon, "My kettle CAUGHT  FIRE, smoke everywhere") == [
        ("caught  fire", "critical", "safety"),
        ("smoke", "critical", "safety"),
    ]
    assert found(lexicon, "three people injured") == [("injured", "critical", "safety")]
    assert found(lexicon, "I was charged twice, calling my lawyer") == [
        ("charged twice", "high", "money lost"),
        ("lawyer", "critical", "legal action"),
    ]
    assert found(lexicon, "充电宝冒烟了，我要报警") == [
        ("冒烟", "critical", "safety"),
        ("报警", "critical", "legal action"),
    ]
    # whole words only: "fired" and "firework" are not "fire"
    assert found(lexicon, "they fired him over the firework show") == []


def test_a_negation_cancels_what_it_denies_and_not_what_it_worsens(lexicon: Lexicon) -> None:
    assert found(lexicon, "No one was injured, thank you") == []
    assert found(lexicon, "there was no fire") == []
    assert found(lexicon, "没有起火，只是有点热") == []
    assert found(lexicon, "still no refund after a month") == [
        ("still no", "high", "repeated contact"),
        ("refund", "high", "money lost"),
    ]
    assert found(lexicon, "商家不退款") == [("不退款", "high", "money lost")]


def test_each_signal_counts_once_a_post(lexicon: Lexicon) -> None:
    assert [h for h, *_ in found(lexicon, "fire! fire! FIRE!")] == ["fire"]


def test_the_lexicon_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "urgency.tsv"
    bad.write_text("term\tlanguage\tlevel\tsignal\tnegatable\nfire\ten\turgent\tsafety\ty\n")
    with pytest.raises(ConfigError, match="row 1 is not term/language/level"):
        Lexicon(bad)
    with pytest.raises(ConfigError, match=r"urgency lexicon .*missing\.tsv"):
        Lexicon(tmp_path / "missing.tsv")
    assert Lexicon.empty().hits("my house is on fire") == []


def test_a_hit_is_a_floor_under_the_models_probabilities(lexicon: Lexicon) -> None:
    levels = ["critical", "high", "low", "medium"]  # the model's column order
    p = np.array([[0.1, 0.2, 0.6, 0.1], [0.5, 0.1, 0.3, 0.1], [0.1, 0.1, 0.7, 0.1]])
    hits = [lexicon.hits("calling my lawyer"), lexicon.hits("charged twice"), []]
    out = floor_levels(levels, p, hits)
    assert np.allclose(out.sum(axis=1), 1.0)
    assert np.allclose(out[0], [1.0, 0.0, 0.0, 0.0])  # everything below critical moves onto it
    assert np.allclose(out[1], [0.5, 0.5, 0.0, 0.0])  # the model's critical share stays
    assert np.allclose(out[2], p[2])  # no hit, no change


def test_hits_raise_urgency_and_become_reasons(triager: Triager) -> None:
    text = "If this isn't fixed today my lawyer will be in touch"
    [post] = triager.triage([make_post(1, text)], NOW)
    assert post.urgency.label == "critical"
    assert "signal 'lawyer': legal action (critical)" in post.priority.reasons
    assert post.urgency.evidence[0] == "lawyer"
    alone = Triager(triager.model, triager.version, lexicon=Lexicon.empty())
    [unaided] = alone.triage([make_post(1, text)], NOW)
    assert post.priority.score >= unaided.priority.score
    assert not any(r.startswith("signal") for r in unaided.priority.reasons)


def test_the_labelled_real_posts_follow_the_definition() -> None:
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines()]
    assert len(rows) >= 400
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({(r["source"], r["ref"]) for r in rows}) == len(rows)
    counts = Counter(r["urgency"] for r in rows)
    assert set(counts) == set(URGENCY_LEVELS) and min(counts.values()) >= 40
    families = Counter(r["source"].split("/")[0] for r in rows)
    assert set(families) == {"crisislex", "tweeteval", "chinese_sophonplus"}
    assert all(r["text"].strip() and r["drawn_as"] for r in rows)
