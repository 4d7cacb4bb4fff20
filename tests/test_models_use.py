"""`triage models use`: a model from `triage train --task` becomes a head of the bundle the
worker runs, as a new active version that promote and rollback treat like any other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from classifiers.datasets import Labelled
from classifiers.registry import Registry
from classifiers.tasks import save, train_task
from classifiers.training import use_task_model
from classifiers.triager import MODEL_NAME, Triager
from tests.helpers import make_post
from tests.test_cli import one_line_error, triage
from tests.test_model_registry import small_bundle
from tests.test_train_evaluate import ROWS

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def brand_topics() -> Labelled:
    return Labelled([t for t, _ in ROWS], [y for _, y in ROWS], ["text", "label"])


def test_use_replaces_a_head_and_rollback_restores_it(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model, digest = small_bundle(300)
    base = registry.register(MODEL_NAME, model, data_sha256=digest, metrics={}, params={})
    saved = tmp_path / "topic.joblib"
    save(train_task("topic", brand_topics()), saved)
    env = {"TRIAGE_MODELS_DIR": str(tmp_path)}

    code, out, err = triage("models", "use", str(saved), env=env)
    assert code == 0, err
    version = Registry(tmp_path).active(MODEL_NAME)
    assert version != base and version in out
    assert Registry(tmp_path).versions(MODEL_NAME)[version]["params"]["base_version"] == repr(base)
    posts = [make_post(i) for i in range(6)]
    triaged = Triager.from_registry(Registry(tmp_path)).triage(posts, NOW)
    assert {t.topic.label for t in triaged} <= {"Delivery", "Billing"}
    assert set(triaged[0].topic.probabilities) == {"Delivery", "Billing"}
    assert all(t.topic.evidence for t in triaged)
    assert {t.model_versions["topic"] for t in triaged} == {f"{MODEL_NAME}:{version}"}
    assert triaged[0].urgency.label  # the other heads still answer

    assert triage("models", "rollback", env=env)[0] == 0
    again = Triager.from_registry(Registry(tmp_path)).triage(posts, NOW)
    assert "Delivery" not in again[0].topic.probabilities


def test_use_adds_a_new_task(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model, digest = small_bundle(300)
    registry.register(MODEL_NAME, model, data_sha256=digest, metrics={}, params={})
    use_task_model(registry, train_task("brand_topic", brand_topics()))
    bundle, _ = registry.load(MODEL_NAME)
    assert "brand_topic" in bundle.tasks and "topic" in bundle.tasks
    features = bundle.transform(["parcel never arrived", "charged twice"])
    classes, probs = bundle.predict_proba(features)["brand_topic"]
    assert list(classes[probs.argmax(axis=1)]) == ["Delivery", "Billing"]


def test_a_spam_head_without_spam_gets_one_line(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model, digest = small_bundle(300)
    registry.register(MODEL_NAME, model, data_sha256=digest, metrics={}, params={})
    saved = tmp_path / "spam.joblib"
    save(train_task("spam", brand_topics()), saved)
    code, _, err = triage("models", "use", str(saved), env={"TRIAGE_MODELS_DIR": str(tmp_path)})
    assert code == 2 and "needs the label 'spam'" in one_line_error(err)
    code, _, err = triage("models", "use", str(tmp_path / "none.joblib"))
    assert code == 2 and "does not exist" in one_line_error(err)
