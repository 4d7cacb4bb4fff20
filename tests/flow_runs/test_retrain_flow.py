"""The retrain flow learns from agents' corrections in the real FerretDB, retrains each corrected
head, and promotes only heads that beat the active ones on their held-out rows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from classifiers.model import TriageModel
from classifiers.registry import PACKAGED, Registry
from classifiers.text import TextPreparer
from classifiers.training import SEED_CORPUS, read_seed
from classifiers.triager import MODEL_NAME, TASKS, Triager
from flows.retrain import retrain
from pipeline.assist.corrections import record_correction
from pipeline.records import utcnow
from pipeline.settings import Settings
from pipeline.store import open_store
from tests.flow_runs.conftest import run_artifacts
from tests.helpers import make_post

pytestmark = [pytest.mark.mongo, pytest.mark.slow]


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "models"
    monkeypatch.setenv("TRIAGE_MODELS_DIR", str(path))
    return path


def test_better_heads_are_promoted_with_the_corrections_learned(
    deployment_env: dict[str, str], models_dir: Path, triager: Triager
) -> None:
    # the active model learned from 60 rows only: heads from the whole corpus beat it
    rows = read_seed(SEED_CORPUS)[:60]
    weak = TriageModel().fit(
        TextPreparer().prepare([r["text"] for r in rows], [r["language"] for r in rows]),
        {t: [r[t] for r in rows] for t in TASKS},
    )
    registry = Registry(models_dir)
    weak_version = registry.register(
        MODEL_NAME, weak, data_sha256="0" * 64, metrics={}, params=weak.get_params()
    )
    store = open_store(Settings.from_environment())
    store.ensure_schema()
    triaged = triager.triage([make_post(i) for i in range(6)], utcnow())
    queued = [t for t in triaged if not t.is_spam]
    store.write_batch(queued)
    record_correction(store, queued[0].id, "urgency", "critical", "ann")
    record_correction(store, queued[1].id, "topic", "billing", "bob")
    store.close()

    state = retrain(margin=0.01, return_state=True)

    assert state.is_completed(), state.message
    result = state.result()
    assert result["corrections"] == 2
    assert sorted(result["heads"]) == ["topic", "urgency"]  # the corrected heads only
    for report in result["heads"].values():
        assert report["corrections"] == 1 and report["sources"] == {"seed corpus": 462}
    assert result["promoted"] and result["replaced"]
    assert registry.active(MODEL_NAME) == result["version"] != weak_version
    bundle, _ = registry.load(MODEL_NAME)
    assert set(bundle.own_heads_) == set(result["replaced"])
    table = run_artifacts(state)["retrain-comparison"].data
    assert "| head | corrections | training rows |" in table
    assert f"**promoted** as `{result['version']}`" in table


def test_heads_that_do_not_beat_the_active_ones_are_not_promoted(
    deployment_env: dict[str, str], models_dir: Path, triager: Triager
) -> None:
    shutil.copytree(PACKAGED, models_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    registry = Registry(models_dir)
    before = (registry.active(MODEL_NAME), sorted(registry.versions(MODEL_NAME)))
    store = open_store(Settings.from_environment())
    store.ensure_schema()
    [item] = [t for t in triager.triage([make_post(1)], utcnow()) if not t.is_spam]
    store.write_batch([item])
    record_correction(store, item.id, "sentiment", "negative", "ann")
    store.close()

    state = retrain(margin=1.0, return_state=True)  # a gain no head can make

    assert state.is_completed(), state.message
    result = state.result()
    assert not result["promoted"] and not result["heads"]["sentiment"]["replaced"]
    assert (registry.active(MODEL_NAME), sorted(registry.versions(MODEL_NAME))) == before
    assert "**not promoted**" in run_artifacts(state)["retrain-comparison"].data


def test_a_missing_corpus_fails_the_run(deployment_env: dict[str, str], models_dir: Path) -> None:
    state = retrain(corpus="/nonexistent/seed.jsonl", return_state=True)
    assert state.is_failed()
    assert "corpus file /nonexistent/seed.jsonl does not exist" in state.message
