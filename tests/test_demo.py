"""`triage demo` behaves like the product: every channel it shows can be answered (into the demo
outbox), it claims nothing on anyone's behalf, its outage becomes an incident, and it writes and
deletes only its own store."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifiers.triager import Triager
from pipeline.cli.demo import LOCK, MARKER, own_data_dir
from pipeline.errors import ConfigError
from pipeline.outbound.replies import DEMO_OUTBOX, NoReplier, Repliers
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import utcnow
from pipeline.store.embedded import EmbeddedStore
from pipeline.trends.incidents import incidents
from tests.helpers import make_post
from tests.test_cli import one_line_error, triage


def test_demo_and_replay_sources_answer_into_the_demo_outbox(
    tmp_path: Path, triager: Triager
) -> None:
    store = EmbeddedStore(tmp_path / "s.sqlite3")
    store.ensure_schema()
    sources = ("sample", "twitter", "demo", "webhook", "x")
    posts = [
        make_post(i, text="My parcel never arrived, order A1234567", source=source)
        for i, source in enumerate(sources)
    ]
    store.write_batch(triager.triage(posts, utcnow()))
    queue = AgentQueue(store, repliers=Repliers(store))
    sent = {}
    for post in posts:
        item = store.get_item(post.id)
        assert item is not None
        taken = queue.take(item, "ann", utcnow(), {})
        assert taken is not None
        if post.source == "x":  # a real channel with no connector configured is refused
            with pytest.raises(NoReplier, match="configure its connector"):
                queue.resolve(post.id, "ann", "Sorry, a new one is on its way")
            continue
        queue.resolve(post.id, "ann", "Sorry, a new one is on its way")
        resolved = store.get_item(post.id)
        assert resolved is not None and resolved.status == "resolved"
        (reply,) = Repliers(store).for_authors([item.author_id])
        sent[post.source] = (reply.delivery, reply.via)
    assert sent == {
        "sample": ("sent", DEMO_OUTBOX),
        "twitter": ("sent", DEMO_OUTBOX),
        "demo": ("sent", DEMO_OUTBOX),
        "webhook": ("recorded", None),
    }


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "work"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, _, err = triage("demo", "--data-dir", str(precious))
    assert code == 2 and "not a demo store" in one_line_error(err)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_a_second_demo_cannot_wipe_a_running_one(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    held = own_data_dir(data)
    try:
        (data / "triage.sqlite3").write_text("the first demo's store")
        with pytest.raises(ConfigError, match="another demo is using"):
            own_data_dir(data)
        assert (data / "triage.sqlite3").read_text() == "the first demo's store"
    finally:
        held.close()
    again = own_data_dir(data)  # the first one stopped: its own store is cleared for the next
    again.close()
    assert sorted(p.name for p in data.iterdir()) == sorted([MARKER, LOCK])


@pytest.mark.slow
def test_demo_tells_its_story_in_the_data_dir_of_the_settings(tmp_path: Path) -> None:
    code, out, err = triage("demo", env={"TRIAGE_DATA_DIR": str(tmp_path)}, timeout=600)
    assert code == 0, err
    assert "Open incidents" in out and "First in the queue" in out
    store = EmbeddedStore(tmp_path / "demo" / "triage.sqlite3")
    # the summary looked at the top of the queue without claiming it
    assert store.list_queue("claimed", 10) == []
    top = store.list_queue("open", 1)
    assert top and top[0].agent is None
    # the outage became one incident, with the outage's posts in it
    (incident,) = incidents(store, "open")
    outage = [i for i in map(store.get_item, incident.item_ids) if i and "503" in i.text]
    assert len(outage) >= 40
    # agents resolved past cases into the demo outbox; assist has templates and knowledge
    resolved = store.resolved_since(None)
    assert len(resolved) > 100 and all(i.resolution for i in resolved)
    replies = Repliers(store).for_authors([i.author_id for i in resolved[:20]])
    assert replies and {r.via for r in replies} == {DEMO_OUTBOX}
    assert len(store.find_records("assist_template")) >= 10
    assert len(store.find_records("assist_article")) >= 5
    # customers keep to one case: one language per author
    languages: dict[str, set[str]] = {}
    for item in store.list_queue("open", 5000):
        languages.setdefault(item.author_id, set()).add(item.language)
    assert sum(len(v) > 1 for v in languages.values()) <= len(languages) // 50
