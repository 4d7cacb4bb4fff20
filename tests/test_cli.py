"""The `triage` command as a user runs it: bad input and unreachable services get one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.helpers import post_bytes


def triage(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    base.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("triage: ") and "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bogus"], "No such option"),
        (["no-such-command"], "No such command"),
        (["queue", "claim"], "Missing option '--agent'"),
        (["queue", "claim", "--agent", "a", "--lease-minutes", "-3"], "--lease-minutes"),
        (["demo", "--posts", "/no/such/file.jsonl"], "does not exist"),
        (["train", "--corpus", "/no/such/corpus.jsonl"], "does not exist"),
        (["models", "promote", "no-such-version"], "has no version"),
        (["connect", "replay", "posts.jsonl"], "TRIAGE_KAFKA_BOOTSTRAP"),
        (["alerts", "run"], "no alert channel"),
        (["alerts", "test"], "no alert channel"),
    ],
)
def test_bad_arguments_get_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    code, _, err = triage(*args, env={"TRIAGE_DATA_DIR": str(tmp_path)})
    assert code != 0
    assert expected in one_line_error(err)


def test_an_unreadable_jetstream_dictionary_gets_one_line(tmp_path: Path) -> None:
    code, _, err = triage(
        "connect", "bluesky", "--keyword", "acme",
        env={"TRIAGE_BLUESKY_ZSTD_DICTIONARY": str(tmp_path / "missing.dict")},
    )  # fmt: skip
    assert code != 0
    assert "TRIAGE_BLUESKY_ZSTD_DICTIONARY: cannot read" in one_line_error(err)


def test_bad_settings_get_one_line() -> None:
    code, _, err = triage("status", env={"TRIAGE_BATCH_SIZE": "lots"})
    assert code == 2 and "TRIAGE_BATCH_SIZE" in one_line_error(err)


def test_unreachable_store_gets_one_line() -> None:
    code, _, err = triage("status", env={"TRIAGE_MONGO_URI": "mongodb://127.0.0.1:9/"})
    assert code == 2 and "MongoDB unreachable" in one_line_error(err)


def test_unreachable_broker_gets_one_line(tmp_path: Path) -> None:
    code, _, err = triage(
        "worker", env={"TRIAGE_KAFKA_BOOTSTRAP": "127.0.0.1:9", "TRIAGE_DATA_DIR": str(tmp_path)}
    )
    assert code == 2 and "Kafka at 127.0.0.1:9 is unreachable" in one_line_error(err)


def test_demo_runs_the_whole_pipeline_embedded(tmp_path: Path) -> None:
    sample = tmp_path / "posts.jsonl"
    sample.write_bytes(b"\n".join([post_bytes(i) for i in range(300)] + [b"broken line"]) + b"\n")
    code, out, err = triage("demo", "--posts", str(sample), "--data-dir", str(tmp_path / "d"))
    assert code == 0, err
    assert "Pipeline summary" in out and "Queue depth" in out and "Top topics" in out
    from pipeline.store.embedded import EmbeddedStore

    store = EmbeddedStore(tmp_path / "d" / "triage.sqlite3")
    assert store.count("posts") == 300
    assert 0 < store.count("queue") < 300


def test_train_promote_and_roll_back(tmp_path: Path) -> None:
    env = {"TRIAGE_MODELS_DIR": str(tmp_path)}
    assert triage("train", env=env)[0] == 0
    assert triage("train", env=env)[0] == 0
    registry = orjson.loads((tmp_path / "registry.json").read_bytes())["models"]["triage"]
    first, second = sorted(registry["versions"])
    assert registry["active"] == second
    code, out, _ = triage("models", "rollback", env=env)
    assert code == 0 and first in out
    code, out, _ = triage("models", "list", env=env)
    assert first in out and second in out
    code, _, err = triage("models", "rollback", env=env)
    assert code == 2 and "no earlier active version" in one_line_error(err)


def test_x_needs_credentials_and_reads_them_from_a_secrets_dir(tmp_path: Path) -> None:
    code, _, err = triage("connect", "x", "--query", "acme")
    assert code == 2 and "TRIAGE_X_BEARER_TOKEN" in one_line_error(err)
    code, _, err = triage(
        "connect", "x", "--query", "acme", env={"TRIAGE_SECRETS_DIR": str(tmp_path / "none")}
    )
    assert code == 2 and "is not a directory" in one_line_error(err)
    (tmp_path / "triage_x_bearer_token").write_text("from-a-file")
    code, _, err = triage(
        "connect", "x", "--query", "acme", env={"TRIAGE_SECRETS_DIR": str(tmp_path)}
    )
    # past the credentials check: the token came from the file
    assert code == 2 and "TRIAGE_KAFKA_BOOTSTRAP" in one_line_error(err)
    assert "from-a-file" not in err


@pytest.mark.kafka
def test_replay_sends_a_file_to_kafka_and_dead_letters_bad_lines(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    from pipeline.bus.kafka import KafkaBus

    sample = tmp_path / "posts.jsonl"
    sample.write_bytes(b"\n".join([post_bytes(i) for i in range(50)] + [b"{broken"]) + b"\n")
    env = {
        "TRIAGE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TRIAGE_TOPIC_RAW": f"raw.{unique}",
        "TRIAGE_TOPIC_DLQ": f"dlq.{unique}",
    }
    code, out, err = triage("connect", "replay", str(sample), env=env)
    assert code == 0, err
    assert "50 posts sent, 1 dead-lettered" in out
    bus = KafkaBus(kafka_bootstrap)
    assert len(bus.read_all(f"raw.{unique}")) == 50
    assert len(bus.read_all(f"dlq.{unique}")) == 1


def test_reddit_needs_credentials() -> None:
    code, _, err = triage("connect", "reddit", "--subreddit", "acme")
    assert code == 2 and "TRIAGE_REDDIT_CLIENT_ID" in one_line_error(err)
    code, _, err = triage("connect", "reddit")
    assert code == 2 and "--subreddit" in one_line_error(err)


@pytest.mark.kafka
def test_ctrl_c_stops_a_connector_cleanly_and_it_resumes(
    kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    import signal
    import time

    from pipeline.bus.kafka import KafkaBus

    sample = tmp_path / "posts.jsonl"
    sample.write_bytes(b"\n".join(post_bytes(i) for i in range(400)) + b"\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")},
        "TRIAGE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TRIAGE_TOPIC_RAW": f"raw.{unique}",
        "TRIAGE_DATA_DIR": str(tmp_path),
    }
    # 400 posts a second apart, at 100x: about 4 seconds of replay
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "connect", "replay", str(sample), "--speed", "100"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    bus = KafkaBus(kafka_bootstrap)
    deadline = time.monotonic() + 60
    while len(bus.read_all(f"raw.{unique}")) < 20:
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "posts sent" in out  # the live count's last line
    sent = len(bus.read_all(f"raw.{unique}"))
    assert 20 <= sent < 400 and "Traceback" not in err
    code, _, err = triage("connect", "replay", str(sample), env=env)
    assert code == 0, err
    ids = [m.value for m in bus.read_all(f"raw.{unique}")]
    assert len(ids) == 400 == len(set(ids))  # resumed: no gap, no repeat


def test_agents_claim_and_resolve_from_the_command_line(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from classifiers.registry import Registry
    from classifiers.triager import Triager
    from pipeline.store.embedded import EmbeddedStore
    from tests.helpers import make_post

    store = EmbeddedStore(tmp_path / "triage.sqlite3")
    store.ensure_schema()
    triaged = Triager.from_registry(Registry()).triage(
        [make_post(i) for i in range(6)], datetime.now(UTC)
    )
    store.write_batch(triaged)
    env = {"TRIAGE_DATA_DIR": str(tmp_path)}
    code, out, err = triage("queue", "claim", "--agent", "ann", env=env)
    assert code == 0, err
    item_id = out.split()[0]
    held = store.get_item(item_id)
    assert held is not None and held.agent == "ann"
    code, _, err = triage("queue", "resolve", item_id, "--agent", "bob", "--reply", "x", env=env)
    assert code == 2 and "bob does not hold" in one_line_error(err)
    code, out, err = triage(
        "queue", "resolve", item_id, "--agent", "ann", "--reply", "Refund issued today.", env=env
    )
    assert code == 0 and "resolved" in out, err
    code, _, err = triage("queue", "release", "test:nope", "--agent", "ann", env=env)
    assert code == 2 and "no queue item" in one_line_error(err)


def test_version_names_the_package_and_the_active_model_bundle(tmp_path: Path) -> None:
    """A bug report needs both: the same code judges differently after a promotion."""
    from importlib.metadata import version

    models = tmp_path / "models"
    shutil.copytree(Path(__file__).resolve().parents[1] / "classifiers" / "models", models)
    env = {"TRIAGE_MODELS_DIR": str(models)}
    registry = orjson.loads((models / "registry.json").read_bytes())["models"]["triage"]
    inactive = sorted(v for v in registry["versions"] if v != registry["active"])[0]
    code, out, _ = triage("--version", env=env)
    assert code == 0 and f"social-triage {version('social-triage')}" in out
    assert f"triage {registry['active']}" in out and inactive not in out
    assert triage("models", "promote", inactive, env=env)[0] == 0
    code, out, _ = triage("--version", env=env)
    assert code == 0 and f"triage {inactive}" in out
