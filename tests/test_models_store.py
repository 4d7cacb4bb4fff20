"""The model registry in the store: shared by every process of a deployment, starting from the
packaged bundle on a fresh store, and followed by a running worker without a restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from classifiers.registry import PACKAGED, Registry
from classifiers.tasks import save, train_task
from classifiers.training import use_task_model
from classifiers.triager import MODEL_NAME
from pipeline.store.interface import Store
from pipeline.store.models import store_registry
from tests.helpers import post_bytes, wait_for
from tests.pipeline_runs import Deployment
from tests.test_models_use import brand_topics


def test_a_fresh_store_starts_with_the_packaged_bundle_and_shares_use(store: Store) -> None:
    registry = store_registry(store)
    packaged = Registry(PACKAGED).active(MODEL_NAME)
    assert registry.active(MODEL_NAME) == packaged
    assert list(registry.versions(MODEL_NAME)) == [packaged]
    version = use_task_model(registry, train_task("topic", brand_topics()))
    again = store_registry(store)  # another process's view: the same index, the same files
    assert again.active(MODEL_NAME) == version
    bundle, _ = again.load(MODEL_NAME)
    classes, _ = bundle.predict_proba(bundle.transform(["parcel late"]))["topic"]
    assert set(classes) == {"Delivery", "Billing"}
    assert again.rollback(MODEL_NAME) == packaged
    assert store_registry(store).active(MODEL_NAME) == packaged


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique, batch_size=50)
    yield d
    d.stop_all()
    d.drop()


@pytest.mark.kafka
@pytest.mark.mongo
def test_a_running_worker_takes_up_a_newly_active_version(
    deployment: Deployment, tmp_path: Path
) -> None:
    saved = tmp_path / "topic.joblib"
    save(train_task("topic", brand_topics()), saved)
    proc = deployment.start_worker()
    deployment.produce([post_bytes(i) for i in range(20)])
    store = deployment.store()
    wait_for(lambda: store.get_post("test:19") is not None, 180, "the first posts stored")
    before = store.get_post("test:0")
    assert before is not None

    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "models", "use", str(saved)],
        env=deployment.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    version = store_registry(store).active(MODEL_NAME)
    assert version is not None and version in done.stdout
    deployment.produce([post_bytes(i) for i in range(100, 120)])
    wait_for(lambda: store.get_post("test:119") is not None, 180, "the later posts stored")
    after = store.get_post("test:119")
    assert after is not None
    assert before["model_versions"]["topic"] != f"{MODEL_NAME}:{version}"
    assert after["model_versions"]["topic"] == f"{MODEL_NAME}:{version}"
    assert after["topic"]["label"] in {"Delivery", "Billing"}
    assert proc.poll() is None  # the same worker process, never restarted
    store.close()
