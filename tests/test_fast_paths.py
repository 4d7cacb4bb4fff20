"""The worker's fast paths give what the libraries they replace give.

Each fast path (n-gram TF-IDF, batched language detection, the Chinese character fallback,
whole-batch explanations and priorities) is checked against the library or the plain
per-post computation it stands in for, on English, Chinese and awkward inputs.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import spacy
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from classifiers.entities import EntityExtractor
from classifiers.language import LANGUAGES, LanguageDetector
from classifiers.model import Readable, column_names, join_cjk, make_featurizer, top_evidence
from classifiers.ngrams import NgramTfidf
from classifiers.text import HASHTAG, MENTION, REPEAT, URL, TextPreparer, normalise
from classifiers.training import SEED_CORPUS, read_seed
from pipeline import priority
from pipeline.records import Author

SEED = [r["text"] for r in read_seed(SEED_CORPUS)]
AWKWARD = [
    "",
    "   ",
    "a",
    "ab",
    "x y x y x y",
    "supercalifragilisticexpialidocious " * 3,
    "订 单 还 没 到 ， 好 慢",
    "mixed 中 文 and english tokens !!",
    "tabs\tand\nnewlines\u3000ideographic space",
]
SETTINGS = [
    {"analyzer": "word", "ngram_range": (1, 2), "token_pattern": r"\S+", "lowercase": False},
    {"analyzer": "word", "ngram_range": (2, 3), "token_pattern": r"\S+", "lowercase": False},
    {"analyzer": "word", "ngram_range": (1, 1)},  # scikit-learn's default token pattern
    {"analyzer": "char_wb", "ngram_range": (2, 5), "lowercase": False},
    {"analyzer": "char_wb", "ngram_range": (2, 6), "preprocessor": join_cjk, "lowercase": False},
    {"analyzer": "char_wb", "ngram_range": (1, 3), "lowercase": True, "binary": True},
    {"analyzer": "char_wb", "ngram_range": (3, 4), "sublinear_tf": False, "norm": "l1"},
]


@pytest.mark.parametrize("params", SETTINGS, ids=lambda p: f"{p['analyzer']}{p['ngram_range']}")
def test_ngram_tfidf_transforms_exactly_like_scikit_learn(params: dict[str, object]) -> None:
    prepared = TextPreparer().prepare(SEED)
    train, test = prepared[::2], prepared[1::2] + AWKWARD + [t.upper() for t in prepared[:20]]
    options = {"sublinear_tf": True, "dtype": np.float32, **params}
    ours = NgramTfidf(**options).fit(train)  # type: ignore[arg-type]
    theirs = TfidfVectorizer(**options).fit(train)  # type: ignore[arg-type]
    assert ours.vocabulary_ == theirs.vocabulary_
    for _ in range(2):  # the second pass reads the word cache the first one filled
        got, want = ours.transform(test), theirs.transform(test)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert sparse.issparse(got) and abs(got - want).max() == 0


def test_ngram_tfidf_cache_stays_bounded_and_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("classifiers.ngrams.CACHE_WORDS", 50)
    options = {"analyzer": "char_wb", "ngram_range": (2, 4)}
    ours, theirs = NgramTfidf(**options).fit(SEED), TfidfVectorizer(**options).fit(SEED)
    assert abs(ours.transform(SEED) - theirs.transform(SEED)).max() == 0
    assert 0 < len(ours._word_cache) <= 50


def test_ngram_tfidf_leaves_its_cache_out_of_the_saved_model() -> None:
    vectorizer = NgramTfidf(analyzer="char_wb", ngram_range=(2, 4)).fit(SEED)
    before = vectorizer.transform(SEED)
    restored = pickle.loads(pickle.dumps(vectorizer))
    assert not hasattr(restored, "_word_cache")
    assert abs(restored.transform(SEED) - before).max() == 0


def test_ngram_tfidf_falls_back_for_settings_it_does_not_speed_up() -> None:
    options = {"analyzer": "char", "ngram_range": (1, 3), "stop_words": None}
    ours, theirs = NgramTfidf(**options).fit(SEED), TfidfVectorizer(**options).fit(SEED)
    assert abs(ours.transform(AWKWARD) - theirs.transform(AWKWARD)).max() == 0


def test_normalise_skips_only_patterns_that_cannot_match() -> None:
    def every_pattern(text: str) -> str:
        text = HASHTAG.sub(r" \1 ", MENTION.sub(" mentiontoken ", URL.sub(" urltoken ", text)))
        return " ".join(REPEAT.sub(r"\1\1", text).lower().split())

    links = ["WWW.Acme.com/x", "see acme.co/help", "https://t.co/x @Care #Help", "a/b www"]
    for text in SEED + AWKWARD + links:
        assert normalise(text) == every_pattern(text), text


def test_products_are_found_whatever_their_case() -> None:
    extractor = EntityExtractor(["AcmePhone X", "Acme手机X"])
    for text in ("my ACMEPHONE x died", "İstanbul: my acmephone X died", "我的acme手机x坏了"):
        [product] = [e for e in extractor.extract(text) if e.kind == "product"]
        assert product.text.lower() in ("acmephone x", "acme手机x")
        assert text[product.start : product.end] == product.text


def test_batched_language_detection_agrees_with_py3langid() -> None:
    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
    reference.set_languages([lang for lang in LANGUAGES if lang != "zh"])
    detector = LanguageDetector()
    texts = [
        *SEED,
        "Bonjour, ma commande n'est jamais arrivée",
        "MEIN PAKET IST BESCHÄDIGT ANGEKOMMEN",  # all capitals: py3langid lower-cases these
        "¿Dónde está mi pedido? Llevo dos semanas esperando",
        "Где мой заказ?",
        "Siparişim nerede, iki haftadır bekliyorum",
        "주문한 물건이 아직 안 왔어요",
        "أين طلبي؟",
        "Dziękuję za szybką pomoc",
        "ok lol",
        "no no no no " * 300,  # longer than the walk reads
    ]
    detected = detector.detect(texts)
    for text, got in zip(texts, detected, strict=True):
        if got in ("zh", "ja", "und"):  # decided by script or length before the model
            continue
        assert got == reference.classify(text[:2000])[0], text
    # a post's language does not depend on the batch it came in
    assert [detector.detect([t])[0] for t in texts[::37]] == detected[::37]
    assert detector.detect([]) == []


def test_chinese_character_fallback_matches_spacys_chinese_tokenizer() -> None:
    chinese = spacy.blank("zh")  # its default segmenter: one token per character
    texts = [r["text"] for r in read_seed(SEED_CORPUS) if r["language"] == "zh"] + [
        "订单 还没到  ，\t好慢 iPhone 12！！",
        "　全角空格　",
    ]
    ours = TextPreparer().prepare(texts, ["zh"] * len(texts))
    theirs = [" ".join(t.text for t in chinese(normalise(x)) if not t.is_space) for x in texts]
    assert ours == theirs


def test_spacys_vocabulary_stays_bounded_and_tokens_do_not_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("classifiers.text.VOCAB_LIMIT", 300)
    texts = [f"order {n} for user{n * 7} isn't here, can't wait!!" for n in range(2000)]
    bounded = TextPreparer()
    got = [bounded.prepare(texts[k : k + 100], ["en"] * 100) for k in range(0, 2000, 100)]
    fresh = len(spacy.blank("en").vocab)
    assert bounded._nlp is not None and len(bounded._nlp.vocab) < fresh + 300 + 100 * 4
    monkeypatch.setattr("classifiers.text.VOCAB_LIMIT", 10**9)
    assert [t for batch in got for t in batch] == TextPreparer().prepare(texts, ["en"] * 2000)


def test_top_evidence_picks_each_rows_strongest_features() -> None:
    rng = np.random.default_rng(0)
    keep = np.ones(200)
    keep[5] = 0  # a post with no known feature
    Z = sparse.diags(keep) @ sparse.random(200, 50, density=0.2, format="csr", random_state=1)
    Z = sparse.csr_matrix(Z)
    Z.eliminate_zeros()
    coef = rng.normal(size=(3, 50))
    predicted = rng.integers(0, 3, size=200)
    names = [f"f{j}" for j in range(50)]
    found = top_evidence(Z, coef, predicted, names, k=3)
    for i, features in enumerate(found):
        row = Z[i]
        weights = row.data * coef[predicted[i], row.indices]
        contrib = dict(zip(row.indices.tolist(), weights.tolist(), strict=True))
        pushing = sorted((c for c in contrib.values() if c > 0), reverse=True)
        assert len(features) == min(3, len(pushing))
        got = [contrib[int(f[1:])] for f in features]
        assert got == pushing[: len(got)]  # the strongest, strongest first
    assert found[5] == []


def test_evidence_names_are_the_vocabularies_own_strings() -> None:
    featurizer = make_featurizer((1, 2), (2, 4), min_df=1).fit(TextPreparer().prepare(SEED))
    names = column_names(featurizer)
    assert names == [n.split("__", 1)[1] for n in featurizer.get_feature_names_out()]
    word = featurizer.transformer_list[0][1].vocabulary_
    assert all(names[j] is term for term, j in word.items())  # pointers, not copies
    assert column_names(featurizer) is names  # worked out once


def test_readable_weights_leave_out_unnamed_columns_and_widen_binary_heads() -> None:
    readable = Readable(["refund", "", "late"], np.array([[0.5, 2.0, -1.0]], dtype=np.float32))
    assert readable.weights.dtype == np.float32
    assert readable.weights.tolist() == [[-0.5, 0.0, 1.0], [0.5, 0.0, -1.0]]


def test_batch_priorities_score_urgency_reach_and_waiting() -> None:
    now = datetime(2026, 11, 2, 12, tzinfo=UTC)
    levels = ["critical", "high", "low", "medium"]
    urgency = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    negative = np.array([0.8, 0.1, 0.1])
    authors = [
        Author(id="a", followers=50),
        Author(id="b", followers=0),
        Author(id="c", followers=250_000, verified=True),
    ]
    created = [now, now + timedelta(minutes=5), now - timedelta(hours=3)]
    (s1, band1, why1), (s2, band2, why2), (s3, _, why3) = priority.scores(
        levels, urgency, negative, authors, created, now
    )
    assert why1[:2] == ["urgency critical (90%)", "negative sentiment (80%)"]
    assert s1 > s3 > s2 and band1 in ("P1", "P2") and band2 == "P4"
    assert s2 == 1.5  # only 10% negative: low urgency, no reach, a clock skewed into the future
    assert why2 == ["urgency low (100%)"]
    assert why3 == ["urgency low (100%)", "reach 250,000 followers, verified", "waiting 3.0 h"]
