"""The retrain flow learns from the seed corpus and agents' corrections in the real FerretDB, and
promotes only a model that beats the active one on the held-out split."""

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


def test_a_better_model_is_promoted_with_the_corrections_learned(
    deployment_env: dict[str, str], models_dir: Path, triager: Triager
) -> None:
    # the active model learned from 60 rows only: a model from the whole corpus beats it
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
    assert result["train_rows"] + result["held_out"] == len(read_seed(SEED_CORPUS)) + 2
    assert result["promoted"] and result["gain"] >= 0.01
    assert registry.active(MODEL_NAME) == result["version"] != weak_version
    table = run_artifacts(state)["retrain-comparison"].data
    assert "| task | active | candidate | change |" in table
    assert f"**promoted** as `{result['version']}`" in table


def test_a_model_that_does_not_beat_the_active_one_is_not_promoted(
    deployment_env: dict[str, str], models_dir: Path
) -> None:
    # the shipped model learned from every seed row, held-out ones included: hard to beat
    shutil.copytree(PACKAGED, models_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    registry = Registry(models_dir)
    before = (registry.active(MODEL_NAME), sorted(registry.versions(MODEL_NAME)))

    state = retrain(margin=0.01, return_state=True)

    assert state.is_completed(), state.message
    assert not state.result()["promoted"]
    assert (registry.active(MODEL_NAME), sorted(registry.versions(MODEL_NAME))) == before
    assert "**not promoted**" in run_artifacts(state)["retrain-comparison"].data


def test_a_missing_corpus_fails_the_run(deployment_env: dict[str, str], models_dir: Path) -> None:
    state = retrain(corpus="/nonexistent/seed.jsonl", return_state=True)
    assert state.is_failed()
    assert "corpus file /nonexistent/seed.jsonl does not exist" in state.message
