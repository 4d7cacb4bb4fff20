"""Evidence an agent reads: the words that pushed a decision, never junk (issue 22, point 5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from classifiers.evidence import STOP, Words, clean, words
from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from dashboards.i18n import reason
from pipeline.store.embedded import EmbeddedStore
from tests.helpers import make_post


def test_stop_words_digits_placeholders_and_single_letters_are_never_evidence() -> None:
    features = ["my", "and", "it", "mentiontoken my", "7", "x", "it broke", "roke", "broke"]
    text = "mentiontoken my order 7777777 x and it broke"
    assert clean(features, Words(text, "en")) == ["broke"]


def test_the_longest_phrase_covering_a_shorter_one_is_kept_once() -> None:
    text = "my kettle caught fire this morning"
    found = clean(["fire", "caught fire", "fir", "kettle"], Words(text, "en"))
    assert found == ["caught fire", "kettle"]
    # a piece of a word stands for the whole word it came from
    assert clean(["ettl", " kett"], Words(text, "en")) == ["kettle"]


def test_a_negation_stays_at_the_head_of_a_phrase() -> None:
    assert clean(["not working"], Words("it is not working", "en")) == ["not working"]
    assert clean(["not"], Words("it is not working", "en")) == []


def test_chinese_evidence_is_words_once_each() -> None:
    prepared = "我 的 手 机 着 火 了 ， 我 很 害 怕"  # the worker's prepared Chinese text
    assert words(prepared, "zh")[:4] == ["我", "的", "手机", "着火"]
    found = clean(["我", "我", "我", "着 火", "火", "手", "机"], Words(prepared, "zh"))
    assert found == ["着火", "手机"]


def test_lexicon_hits_come_first() -> None:
    found = clean(["kettle", "smoke"], Words("smoke from my kettle", "en"), first=["smoke"])
    assert found == ["smoke", "kettle"]


def test_shipped_model_explains_real_posts_without_junk(triager: Triager) -> None:
    posts = [
        "PRIME is a joke now NOTHING arrives on time",
        "@AmazonHelp my order 7777777 and it still has not arrived, 3rd time I ask",
        "I have been charged twice for my subscription and nobody answers",
        "我的订单我一直没收到，我很生气，我要投诉",
        "外卖送到的时候已经凉了，而且少了一份米饭",
        "My AcmeWatch caught fire while charging, smoke everywhere",
    ]
    triaged = triager.triage(
        [make_post(i, t) for i, t in enumerate(posts)], datetime(2026, 11, 2, tzinfo=UTC)
    )
    for t in triaged:
        for found in (t.urgency.evidence, t.topic.evidence):
            assert len(found) == len(set(found)), found
            for phrase in found:
                assert phrase.lower() not in STOP, (t.post.text, phrase)
                assert not re.search(r"\d", phrase), (t.post.text, phrase)
                assert not (len(phrase) == 1 and phrase.isascii()), (t.post.text, phrase)
                assert phrase.lower() in t.post.text.lower().replace("  ", " "), phrase
    assert any(t.urgency.evidence or t.topic.evidence for t in triaged[:5])


def test_the_chinese_console_shows_the_reasons_in_chinese(
    tmp_path: Path, triager: Triager
) -> None:
    text = "我的水壶充电时着火了，满屋子烟，我的水壶坏了"
    [fire] = triager.triage([make_post(1, text)], datetime(2026, 11, 2, tzinfo=UTC))
    zh = [reason("zh", r) for r in fire.priority.reasons]
    assert zh[0].startswith("紧急度危急") and "依据：“着火”" in zh[0]
    assert "信号“着火”：安全（危急）" in zh
    assert all(not re.search(r"\b(?:urgency|topic|signal|from)\b", r) for r in zh), zh
    assert reason("en", fire.priority.reasons[0]) == fire.priority.reasons[0]
    assert reason("zh", "something new") == "something new"  # shown, never lost

    store = EmbeddedStore(tmp_path / "store.sqlite3")
    store.ensure_schema()
    store.write_batch([fire])
    store.save_user(make_account("ann", "agent password", ["agent"]))
    client = TestClient(create_app(store))
    client.post("/api/v1/login", json={"name": "ann", "password": "agent password"})
    page = client.get("/agent?lang=zh").text
    assert "信号“着火”：安全（危急）" in page and "signal &#39;" not in page
    assert "signal &#39;着火&#39;" in client.get("/agent?lang=en").text
