"""Text preparation, language, entities, redaction and the models, in English and Chinese."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from classifiers.entities import EntityExtractor, luhn_ok, redact
from classifiers.language import LanguageDetector
from classifiers.model import TextClassifier, TriageModel
from classifiers.registry import Registry
from classifiers.text import TextPreparer, normalise
from classifiers.triager import Triager
from pipeline.errors import ConfigError
from tests.helpers import make_post


def test_normalise_collapses_links_handles_and_stretched_words() -> None:
    text = normalise("@AcmeCare sooooo slow!!! see https://t.co/abc #Fail")
    assert text == "mentiontoken soo slow!! see urltoken fail"


def test_chinese_is_tokenised_without_a_segmentation_model() -> None:
    [tokens] = TextPreparer().prepare(["订单还没到"], ["zh"])
    assert tokens.split() == ["订", "单", "还", "没", "到"]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("my order is three days late and nobody answers", "en"),
        ("Mein Paket ist immer noch nicht angekommen", "de"),
        ("Ma commande n'est toujours pas arrivée", "fr"),
        ("Mi pedido todavía no ha llegado", "es"),
        ("Il mio ordine non è ancora arrivato", "it"),
        ("订单已经晚了六天，物流一直没更新", "zh"),
        ("注文した商品がまだ届きません", "ja"),
        ("A minha encomenda ainda não chegou, já passaram duas semanas", "pt"),
        ("Mijn bestelling is nog steeds niet aangekomen", "nl"),
        ("Min beställning har fortfarande inte kommit fram", "sv"),
        ("Moje zamówienie wciąż nie dotarło", "pl"),
        ("Мой заказ до сих пор не пришёл", "ru"),
        ("我的訂單還沒到，客服也不回覆", "zh"),  # traditional characters
        ("我的AcmePhone X充电时着火了!!!", "zh"),  # Chinese around a Latin brand name
        ("@AcmeCare my parcel is late again https://t.co/x7", "en"),  # handles and links ignored
    ],
)
def test_language_detection(text: str, language: str) -> None:
    assert LanguageDetector().detect([text]) == [language]


def test_entities_and_redaction_in_english() -> None:
    text = "Order #4839201 never came. Call +1 415-555-0134 or jane.doe@example.com"
    found = EntityExtractor(["AcmePhone X"]).extract(text)
    kinds = {(e.kind, e.text) for e in found}
    assert ("order_number", "4839201") in kinds
    assert ("email", "jane.doe@example.com") in kinds
    assert ("phone", "+1 415-555-0134") in kinds
    assert redact(text, found) == "Order #4839201 never came. Call [PHONE] or [EMAIL]"


def test_entities_and_redaction_in_chinese() -> None:
    text = "订单号12345678还没到，电话13812345678，邮箱wang@example.cn"
    found = EntityExtractor().extract(text)
    assert {e.kind for e in found} >= {"order_number", "phone", "email"}
    assert redact(text, found) == "订单号12345678还没到，电话[PHONE]，邮箱[EMAIL]"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "call me at (415) 555-0134, card 4111-1111-1111-1111, order #4839201",
            "call me at [PHONE], card [CARD], order #4839201",
        ),
        (
            "请联系我 138 1234 5678 或者 +86 10 8888 6666，卡号 4111 1111 1111 1111",
            "请联系我 [PHONE] 或者 [PHONE]，卡号 [CARD]",
        ),
        ("我的邮箱是 li.ming@qq.com 订单号 20261123001", "我的邮箱是 [EMAIL] 订单号 20261123001"),
    ],
)
def test_redaction_hides_contact_and_card_details_but_keeps_order_numbers(
    text: str, shown: str
) -> None:
    assert redact(text, EntityExtractor().extract(text)) == shown


def test_only_card_numbers_that_pass_luhn_are_cards() -> None:
    extractor = EntityExtractor()
    assert [e.kind for e in extractor.extract("card 4111 1111 1111 1111")] == ["card"]
    assert "card" not in {e.kind for e in extractor.extract("ref 4111 1111 1111 1112")}
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")


def test_products_come_from_a_configurable_list() -> None:
    found = EntityExtractor(["SmartKettle 2"]).extract("my smartkettle 2 leaks")
    assert [(e.kind, e.text) for e in found] == [("product", "smartkettle 2")]


def test_text_classifier_follows_scikit_learn_conventions() -> None:
    X = ["refund please", "where is my parcel", "refund not received", "parcel lost"] * 5
    y = ["billing", "delivery", "billing", "delivery"] * 5
    model = TextClassifier(C=1.0)
    assert not hasattr(model, "classes_")
    clone(model).fit(X, y)
    model.fit(X, y)
    assert list(model.classes_) == ["billing", "delivery"]
    proba = model.predict_proba(["my refund"])
    assert proba.shape == (1, 2) and np.isclose(proba.sum(), 1)
    assert model.predict(["lost parcel"])[0] == "delivery"


def test_text_classifier_chooses_c_by_cross_validation_and_calibrates() -> None:
    rng = np.random.default_rng(0)
    words = {"billing": ["refund", "charged", "invoice"], "delivery": ["parcel", "courier", "late"]}
    noise = ["my", "the", "again", "today", "please", "订单", "还是"]
    X, y = [], []
    for i in range(120):
        label = "billing" if i % 3 else "delivery"
        X.append(" ".join([*rng.choice(words[label], 2), *rng.choice(noise, 4)]))
        y.append(label)
    model = TextClassifier(Cs=(0.01, 1.0)).fit(X, y)
    assert set(model.cv_scores_) == {0.01, 1.0} and model.C_ in (0.01, 1.0)
    assert model.cv_scores_[model.C_] == max(model.cv_scores_.values())
    proba = model.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1) and ((proba > 0) & (proba < 1)).all()
    # calibrated on out-of-fold scores: sure where the words are clear, not blindly certain
    assert 0.6 < proba.max(axis=1).mean() < 1.0
    assert (model.predict(X) == np.asarray(y)).mean() > 0.9


def test_naive_bayes_opinion_is_kept_only_when_it_beats_noise() -> None:
    rng = np.random.default_rng(1)
    words = {
        "billing": ["refund", "charged", "invoice", "fee"],
        "delivery": ["parcel", "courier", "late", "box"],
        "other": ["hello", "thanks", "store", "hours"],
    }
    noise = ["my", "the", "again", "today", "please", "fee", "box", "thanks"]
    X, y = [], []
    for i in range(150):
        label = list(words)[i % 3]
        X.append(" ".join([*rng.choice(words[label], 1), *rng.choice(noise, 5)]))
        y.append(label)
    # an SVM starved by a tiny C leaves naive Bayes plenty to add; one with room, nothing
    for C, kept in ((1e-4, True), (1.0, False)):
        model = TextClassifier(C=C).fit(X, y)
        mean, se = model.nb_gain_
        assert (model.nb_ is not None) == (mean > 2 * se) == kept
        # three SVM scores, then three naive Bayes log-probabilities scaled into [-1, 0] if kept
        assert model.calibrator_.n_features_in_ == (6 if kept else 3)
        nb_part = model._scores(model.featurizer_.transform(["refund", "订单"]))[:, 3:]
        assert nb_part.shape[1] == (3 if kept else 0) and ((nb_part >= -1) & (nb_part <= 0)).all()
    without = TextClassifier(C=1.0, nb_alpha=None).fit(X, y)
    assert without.nb_ is None and not hasattr(without, "nb_gain_")
    assert without.calibrator_.n_features_in_ == 3
    del without.nb_  # as in a model saved before the naive Bayes opinion existed
    assert list(without.predict(["refund charged", "courier box"])) == ["billing", "delivery"]


def test_chinese_character_view_spans_words() -> None:
    [prepared] = TextPreparer().prepare(["退款没到账"], ["zh"])
    names = TextClassifier(C=1.0).fit([prepared, "a b"] * 3, ["x", "y"] * 3)
    vocabulary = names.featurizer_.transformer_list[1][1].vocabulary_
    assert "退款没到" in vocabulary  # four characters across two words


def test_shipped_model_triages_both_languages(triager: Triager) -> None:
    now = datetime(2026, 11, 2, tzinfo=UTC)
    posts = [
        make_post(1, "My AcmeWatch caught fire while charging, smoke everywhere"),
        make_post(2, "我的扫地机器人充电时着火了，满屋子烟"),
        make_post(3, "Thank you for the quick refund, great service!"),
        make_post(4, "Earn $500 a day from home!!! DM me now bit.ly/x7"),
    ]
    fire_en, fire_zh, thanks, spam = triager.triage(posts, now)
    assert fire_en.urgency.label == fire_zh.urgency.label == "critical"
    assert fire_zh.language == "zh" and fire_en.language == "en"
    assert thanks.sentiment.label == "positive" and thanks.topic.label == "praise"
    # emotion, its own head: the fires frighten, the refund pleases
    assert fire_en.emotion and fire_zh.emotion and thanks.emotion
    assert (fire_en.emotion.label, fire_zh.emotion.label) == ("fear", "fear")
    assert thanks.emotion.label == "joy"
    assert spam.is_spam and not fire_en.is_spam
    assert fire_en.priority.score > thanks.priority.score
    assert fire_en.urgency.evidence  # the words that made it critical
    # ... and the agent reads them with the priority's reasons
    assert all(repr(w) in fire_en.priority.reasons[0] for w in fire_en.urgency.evidence)
    assert any(r.startswith(f"topic {fire_en.topic.label} from") for r in fire_en.priority.reasons)


def test_registry_refuses_unknown_versions_and_missing_models(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    with pytest.raises(ConfigError, match="no active 'triage' model"):
        registry.load("triage")
    model = TriageModel(C=1.0).fit(["a b", "c d"], {"t": ["x", "y"]})
    version = registry.register("triage", model, data_sha256="ab" * 32, metrics={}, params={})
    assert registry.active("triage") == version
    loaded, got = registry.load("triage")
    assert got == version and loaded.tasks == ("t",)
    with pytest.raises(ConfigError, match="has no version"):
        registry.promote("triage", "nope")
