"""The model registry: versions with their provenance, promote and roll back, and the worker's
record of which version judged each post."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from classifiers.model import TriageModel
from classifiers.registry import Registry
from classifiers.text import TextPreparer
from classifiers.training import SEED_CORPUS, read_seed
from classifiers.triager import MODEL_NAME, TASKS, Triager
from tests.helpers import make_post
from tests.test_cli import one_line_error, triage


def small_bundle(rows: int) -> tuple[TriageModel, str]:
    seed = read_seed(SEED_CORPUS)[::7][:rows]
    prepared = TextPreparer().prepare([r["text"] for r in seed], [r["language"] for r in seed])
    model = TriageModel(C=1.0).fit(prepared, {t: [r[t] for r in seed] for t in TASKS})
    return model, f"{rows:064x}"


def test_a_bundle_without_the_emotion_head_still_triages(tmp_path: Path) -> None:
    model, _ = small_bundle(300)  # the four required heads only, as bundles before emotion
    [triaged] = Triager(model, "old").triage([make_post(1)], datetime(2026, 11, 2, tzinfo=UTC))
    assert triaged.emotion is None and "emotion" not in triaged.model_versions
    assert triaged.topic.label and triaged.priority.reasons


def test_heads_learn_from_the_rows_that_carry_their_label() -> None:
    seed = read_seed(SEED_CORPUS)[::3]
    prepared = TextPreparer().prepare([r["text"] for r in seed], [r["language"] for r in seed])
    # a third of the rows lack an emotion, as corrections made before the emotion head do
    emotions = [r["emotion"] if i % 3 else None for i, r in enumerate(seed)]
    model = TriageModel(C=1.0).fit(
        prepared, {"topic": [r["topic"] for r in seed], "emotion": emotions}
    )
    classes, probs = model.predict_proba(model.transform(prepared))["emotion"]
    assert set(classes) == {e for e in emotions if e is not None} and "None" not in classes
    assert probs.shape == (len(seed), len(classes))


def test_versions_carry_data_hash_metrics_settings_and_time(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    model, digest = small_bundle(400)
    version = registry.register(
        MODEL_NAME, model, data_sha256=digest, metrics={"topic": 0.9}, params=model.get_params()
    )
    meta = registry.versions(MODEL_NAME)[version]
    assert meta["data_sha256"] == digest and version.endswith(digest[:8])
    assert meta["metrics"] == {"topic": 0.9}
    assert meta["params"]["C"] == "1.0"
    assert datetime.fromisoformat(meta["created_at"]).tzinfo is not None
    assert (tmp_path / f"{MODEL_NAME}-{version}.joblib").is_file()


def test_worker_records_the_active_version_and_follows_promote_and_rollback(
    tmp_path: Path,
) -> None:
    registry = Registry(tmp_path)
    (first_model, first_hash), (second_model, second_hash) = small_bundle(300), small_bundle(350)
    first = registry.register(
        MODEL_NAME, first_model, data_sha256=first_hash, metrics={}, params={}
    )
    second = registry.register(
        MODEL_NAME, second_model, data_sha256=second_hash, metrics={}, params={}
    )
    posts = [make_post(i) for i in range(8)]
    now = datetime(2026, 11, 2, tzinfo=UTC)

    def judged_by() -> set[str]:
        triaged = Triager.from_registry(Registry(tmp_path)).triage(posts, now)
        return {v for t in triaged for v in t.model_versions.values()}

    assert judged_by() == {f"{MODEL_NAME}:{second}"}
    env = {"TRIAGE_MODELS_DIR": str(tmp_path)}
    code, out, _ = triage("models", "rollback", env=env)
    assert code == 0 and first in out
    assert judged_by() == {f"{MODEL_NAME}:{first}"}
    code, out, _ = triage("models", "promote", second, env=env)
    assert code == 0 and second in out
    assert judged_by() == {f"{MODEL_NAME}:{second}"}
    history = orjson.loads((tmp_path / "registry.json").read_bytes())["models"][MODEL_NAME]
    assert history["history"] == [first, second]  # rollback popped second, promote pushed it
    code, _, err = triage("models", "promote", "19990101000000-deadbeef", env=env)
    assert code == 2 and "has no version" in one_line_error(err)


def test_a_bundle_kept_with_xz_loads_as_it_was_saved(tmp_path: Path) -> None:
    # `make models` commits its bundle xz-compressed; the registry reads it like any other
    registry = Registry(tmp_path)
    model, digest = small_bundle(300)
    version = registry.register(
        MODEL_NAME, model, data_sha256=digest, metrics={}, params={}, compress=("xz", 6)
    )
    assert (tmp_path / f"{MODEL_NAME}-{version}.joblib").read_bytes().startswith(b"\xfd7zXZ")
    loaded, _ = registry.load(MODEL_NAME)
    texts = ["where is my parcel", "charged twice"]
    for task, (classes, probs) in loaded.predict_proba(loaded.transform(texts)).items():
        want_classes, want = model.predict_proba(model.transform(texts))[task]
        assert list(classes) == list(want_classes) and (probs == want).all()
