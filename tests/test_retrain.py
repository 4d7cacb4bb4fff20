"""The retrain flow's decision, in memory: each corrected head is retrained on its own rows plus
the corrections, scored beside the active head on rows neither learned from, and only a head
that wins replaces its predecessor, in one new version that keeps every other head."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from classifiers.model import TriageModel
from classifiers.registry import Registry
from classifiers.sources import heads, seed_head
from classifiers.tasks import train_task
from classifiers.training import SEED_CORPUS, use_task_model
from classifiers.triager import MODEL_NAME
from flows.retrain import base_heads, built_permissive, compare, comparison_table
from tests.test_model_registry import small_bundle
from tests.test_models_use import brand_topics

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# posts an agent relabelled: money matters the weak bundle had no words for
BILLING = [
    ("why was I charged twice for one AcmePhone case", "billing"),
    ("my invoice shows a fee I never agreed to", "billing"),
    ("the refund for my returned toaster never reached my card", "billing"),
    ("you took 49 euros after I cancelled the subscription", "billing"),
    ("double charge on my statement from acme store", "billing"),
]
TEXTS = ["my parcel is lost", "charged twice!!", "AcmePhone caught fire", "thanks, great help"]


def weak_registry(tmp_path: Path) -> tuple[Registry, str]:
    """A registry whose active bundle learned from 75 seed rows only."""
    registry = Registry(tmp_path)
    model, digest = small_bundle(300)
    return registry, registry.register(
        MODEL_NAME, model, data_sha256=digest, metrics={}, params={}
    )


def answers(bundle: TriageModel, task: str) -> np.ndarray:
    return bundle.predict_proba(bundle.transform(TEXTS))[task][1]


def test_a_head_that_wins_replaces_only_itself(tmp_path: Path) -> None:
    registry, weak = weak_registry(tmp_path)
    before, _ = registry.load(MODEL_NAME)

    result = compare(registry, {"topic": BILLING}, {"topic": seed_head("topic")}, margin=0.01)

    report = result["heads"]["topic"]
    assert report["corrections"] == 5 and report["held_out_corrections"] == 1
    assert report["candidate"] - report["active"] >= 0.01 and report["replaced"]
    assert report["selection"]["winner"] in ("stacked", "plain")
    assert result["promoted"] and result["replaced"] == ["topic"]
    assert registry.active(MODEL_NAME) == result["version"] != weak
    entry = registry.versions(MODEL_NAME)[result["version"]]
    assert entry["params"]["base_version"] == repr(weak)
    assert entry["metrics"]["topic"]["trained_by"] == "retrain flow"
    assert entry["metrics"]["topic"]["retrain"]["candidate"] == report["candidate"]
    after, _ = registry.load(MODEL_NAME)
    assert "topic" in after.own_heads_ and "topic" not in before.own_heads_
    for task in ("urgency", "sentiment", "spam"):  # the heads nobody corrected are kept as were
        assert np.array_equal(answers(after, task), answers(before, task))
    assert not np.array_equal(answers(after, "topic"), answers(before, "topic"))
    table = comparison_table(result, 5)
    assert "| topic | 5 |" in table and "| replaced |" in table
    assert f"**promoted** as `{result['version']}` (new heads: topic" in table


def test_a_retrained_version_keeps_its_lineage_s_licence_choice(tmp_path: Path) -> None:
    """A bundle built by ``make models PERMISSIVE=1`` says so; the retrain flow reads that
    (its heads' rows then leave out the restricted sets) and the version it builds says so too."""
    registry = Registry(tmp_path)
    model, digest = small_bundle(300)
    registry.register(MODEL_NAME, model, data_sha256=digest, metrics={},
                      params={"permissive": True})
    assert built_permissive(registry)
    result = compare(registry, {"topic": BILLING}, {"topic": seed_head("topic")}, margin=0.01)
    assert result["promoted"]
    assert registry.versions(MODEL_NAME)[result["version"]]["params"]["permissive"] == "True"
    assert built_permissive(registry)
    plain, _ = weak_registry(tmp_path / "plain")
    assert not built_permissive(plain)


def test_no_head_that_misses_the_margin_is_registered(tmp_path: Path) -> None:
    registry, weak = weak_registry(tmp_path)
    bases = {t: seed_head(t) for t in ("topic", "urgency")}
    urgent = [("my AcmeWatch is smoking", "critical"), ("toaster sparks, kids scared", "critical")]

    result = compare(registry, {"topic": BILLING, "urgency": urgent}, bases, margin=1.0)

    assert not result["promoted"] and result["version"] is None and result["replaced"] == []
    assert {t: r["replaced"] for t, r in result["heads"].items()} == {
        "topic": False,
        "urgency": False,
    }
    assert result["heads"]["urgency"]["held_out_corrections"] == 1  # one of the two
    assert list(registry.versions(MODEL_NAME)) == [weak] and registry.active(MODEL_NAME) == weak
    table = comparison_table(result, 7)
    assert table.count("| kept |") == 2 and "**not promoted**" in table


def test_a_head_with_labels_its_rows_lack_is_left_alone(tmp_path: Path) -> None:
    # the active topic head is a brand's own (Delivery, Billing): the seed rows cannot retrain it
    registry, _ = weak_registry(tmp_path)
    brand = use_task_model(registry, train_task("topic", brand_topics()))

    result = compare(registry, {"topic": BILLING}, {"topic": seed_head("topic")}, margin=0.0)

    assert "Billing" in result["heads"]["topic"]["skipped"]
    assert not result["promoted"] and registry.active(MODEL_NAME) == brand
    assert "skipped: the active head's labels" in comparison_table(result, 5)


def test_seed_rows_are_held_out_by_whole_templates() -> None:
    head = seed_head("urgency")
    train, held = head.split()
    template = dict(zip((t for t, _ in head.rows), head.groups, strict=True))
    assert held.texts and {template[t] for t in train.texts}.isdisjoint(
        template[t] for t in held.texts
    )
    assert (train, held) == head.split()  # the same rows each run


def test_a_head_learns_from_its_real_sets_where_the_data_is_at_hand() -> None:
    bases = base_heads(["topic", "urgency"], DATA, False, SEED_CORPUS)
    assert {"Banking77", "Bitext customer service"} <= set(bases["topic"].sources)
    assert set(bases["urgency"].sources) == {"seed corpus"}  # no real set means our urgency
    real = {h.task: h for h in heads(DATA, False)}
    assert bases["topic"].split() == real["topic"].split()  # make models's held-out rows
