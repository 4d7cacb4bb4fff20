"""One contract, two stores: the embedded SQLite store and a real MongoDB-wire server (FerretDB)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from classifiers.triager import Triager
from pipeline.records import AuditEntry, Author, QueueItem, TriagedPost
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import QueueQuery, Store
from pipeline.store.mongo import MongoStore
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def batch(triager: Triager) -> list[TriagedPost]:
    return triager.triage([make_post(i) for i in range(40)], NOW)


def test_writing_a_batch_twice_stores_each_post_once(
    store: Store, batch: list[TriagedPost]
) -> None:
    first = store.write_batch(batch)
    second = store.write_batch(batch)
    assert first.posts_new == 40 and second.posts_new == 0 and second.duplicates == 40
    assert sorted(store.post_ids()) == sorted(t.id for t in batch)
    non_spam = sorted(t.id for t in batch if not t.is_spam)
    assert first.queued_new == len(non_spam) and second.queued_new == 0
    assert sorted(store.queue_ids()) == non_spam
    assert 0 < len(non_spam) < 40  # the sample holds spam, and spam is never queued


def test_overlapping_batches_keep_the_first_write(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch[:25])
    result = store.write_batch(batch[15:])
    assert result.posts_new == 15 and result.duplicates == 10
    assert store.count("posts") == 40


def test_stored_post_keeps_triage_reasons_and_versions(
    store: Store, batch: list[TriagedPost]
) -> None:
    store.write_batch(batch)
    doc = store.get_post(batch[1].id)
    assert doc is not None
    assert doc["post"]["text"] == batch[1].post.text
    assert doc["priority"]["reasons"] == batch[1].priority.reasons
    assert doc["model_versions"] == batch[1].model_versions
    assert store.get_post("test:no-such-post") is None


def test_stored_post_keeps_only_the_probabilities_that_are_read_back(
    store: Store, batch: list[TriagedPost]
) -> None:
    """Urgency's and sentiment's maps are read again (re-scoring, the tone cue); the other
    tasks' maps and the stage timings were most of a stored post and nobody read them."""
    store.write_batch(batch)
    doc = store.get_post(batch[1].id)
    assert doc is not None
    assert doc["urgency"]["probabilities"] == batch[1].urgency.probabilities
    assert doc["sentiment"]["probabilities"] == batch[1].sentiment.probabilities
    assert doc["topic"]["label"] == batch[1].topic.label
    assert "probabilities" not in doc["topic"] and "probabilities" not in doc["spam"]
    assert "timings_ms" not in doc


def test_claims_follow_priority_and_are_exclusive(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch)
    queued = sorted((t for t in batch if not t.is_spam), key=lambda t: -t.priority.score)
    lease = NOW + timedelta(minutes=10)
    first = store.claim_next("ann", lease, NOW)
    assert first is not None and first.agent == "ann" and first.status == "claimed"
    assert first.priority == queued[0].priority.score
    claimed = {first.id}
    for _ in range(len(queued) - 1):
        item = store.claim_next("bob", lease, NOW)
        assert item is not None and item.id not in claimed
        claimed.add(item.id)
    assert store.claim_next("cy", lease, NOW) is None
    # once the leases lapse, the items come back with their order intact
    later = store.claim_next("dee", lease, lease + timedelta(seconds=1))
    assert later is not None and later.id == first.id


def test_claims_take_items_in_order_as_the_queue_changes(
    store: Store, batch: list[TriagedPost]
) -> None:
    """The Mongo store looks for a claim first just below the priority the last one took; an
    item more urgent than that, arriving later, still comes first, and items far below it are
    still found."""
    queued = [t for t in batch if not t.is_spam]
    early, late = queued[:-3], queued[-3:]
    store.write_batch(early)
    lease = NOW + timedelta(minutes=10)
    taken = [store.claim_next("ann", lease, NOW) for _ in range(3)]
    top = max(t.priority.score for t in queued)
    urgent = late[0].model_copy(
        update={"priority": late[0].priority.model_copy(update={"score": top + 1})}
    )
    store.write_batch([urgent, *late[1:]])
    after = store.claim_next("ann", lease, NOW)
    assert after is not None and after.id == urgent.id
    rest = []
    while (item := store.claim_next("bob", lease, NOW)) is not None:
        rest.append(item)
    order = [(-i.priority, i.enqueued_at) for i in [*taken, after, *rest] if i is not None]
    assert sorted(order[4:]) == order[4:] and len(order) == len(queued)
    assert sorted(order[:3]) == order[:3]


def test_open_authors_are_the_customers_claims_reach_first(
    store: Store, batch: list[TriagedPost]
) -> None:
    store.write_batch(batch)
    lease = NOW + timedelta(minutes=10)
    first = store.claim_next("ann", lease, NOW)
    assert first is not None
    before = store.list_queue("open", limit=100)
    reached = store.open_authors(NOW, limit=5)
    claims = [c for _ in range(5) if (c := store.claim_next("bob", lease, NOW)) is not None]
    floor = min(c.priority for c in claims)
    assert len(reached) == 5
    assert set(reached) <= {i.author_id for i in before if i.priority >= floor}
    assert reached[0] == claims[0].author_id or claims[0].priority == claims[1].priority
    now_open = store.open_authors(NOW, limit=50)
    assert len(now_open) == len(before) - 5
    # leases that ran out make their items claimable again
    again = store.open_authors(lease + timedelta(seconds=1), limit=50)
    assert first.author_id in again and len(again) == len(before) + 1
    held_zh = sum(1 for c in [first, *claims] if c.language == "zh")
    zh = store.open_authors(NOW, languages=["zh"], limit=50)
    assert zh and len(zh) == sum(
        1 for t in batch if not t.is_spam and t.language == "zh"
    ) - held_zh


def test_agent_loads_count_live_leases_only(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch)
    long, short = NOW + timedelta(minutes=10), NOW + timedelta(minutes=1)
    a1, a2, a3 = (store.claim_next("ann", long, NOW) for _ in range(3))
    b1 = store.claim_next("bob", short, NOW)
    assert a1 and a2 and a3 and b1
    assert store.agent_loads(NOW) == {"ann": 3, "bob": 1}
    assert store.update_item(a1.id, a1.version, {"status": "open", "agent": None,
                                                 "lease_until": None})
    assert store.update_item(a2.id, a2.version, {"status": "resolved", "lease_until": None})
    assert store.agent_loads(NOW) == {"ann": 1, "bob": 1}
    later = NOW + timedelta(minutes=2)  # bob's lease has lapsed, so he holds nothing
    assert store.agent_loads(later) == {"ann": 1}
    taken = store.claim_next("dee", later + timedelta(minutes=10), later, authors=[b1.author_id])
    assert taken is not None and taken.id == b1.id
    assert store.agent_loads(later) == {"ann": 1, "dee": 1}


def test_claims_respect_skills(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch)
    item = store.claim_next("li", NOW + timedelta(minutes=5), NOW, languages=["zh"])
    assert item is not None and item.language == "zh"
    nothing = store.claim_next("x", NOW + timedelta(minutes=5), NOW, topics=["no-such-topic"])
    assert nothing is None


def test_concurrent_claims_never_share_an_item(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch)
    open_items = store.count("queue")
    taken: list[str] = []
    lock = threading.Lock()

    def agent(name: str) -> None:
        while (item := store.claim_next(name, NOW + timedelta(minutes=10), NOW)) is not None:
            with lock:
                taken.append(item.id)

    threads = [threading.Thread(target=agent, args=(f"agent{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken) == open_items == len(set(taken))


@pytest.fixture
def other(
    store: Store, request: pytest.FixtureRequest, tmp_path: Path, unique: str
) -> Iterator[Store]:
    """A second connection to the same store, as another process would open it."""
    s: Store
    if isinstance(store, MongoStore):
        s = MongoStore(request.getfixturevalue("mongo_uri"), f"test_{unique}")
    else:
        s = EmbeddedStore(tmp_path / "store.sqlite3")
    yield s
    s.close()


def test_another_connection_sees_every_change_at_once(
    store: Store, other: Store, batch: list[TriagedPost]
) -> None:
    store.write_batch(batch)
    lease = NOW + timedelta(minutes=10)
    first = store.claim_next("ann", lease, NOW)
    assert first is not None
    seen = other.get_item(first.id)
    assert seen is not None and seen.status == "claimed" and seen.agent == "ann"
    assert seen.version == first.version
    assert [i.id for i in other.list_queue("claimed")] == [first.id]
    assert other.agent_loads(NOW) == {"ann": 1}
    assert sum(other.queue_depth().values()) == store.count("queue") - 1
    taken = []
    while (item := other.claim_next("bob", lease, NOW)) is not None:
        taken.append(item.id)
    assert first.id not in taken and len(taken) == store.count("queue") - 1
    released = other.update_item(first.id, first.version, {"status": "open", "agent": None,
                                                           "lease_until": None})
    assert released is not None and released.version == first.version + 1
    back = store.get_item(first.id)
    assert back is not None and back.status == "open" and back.agent is None
    assert store.update_item(first.id, first.version, {"status": "resolved"}) is None


def test_a_connection_claiming_all_along_gets_what_another_added_and_released(
    store: Store, other: Store, batch: list[TriagedPost]
) -> None:
    """Another process's new items and releases reach a connection that loaded its queue
    before them (the MongoDB store's claim index re-reads only what it is behind on)."""
    store.write_batch(batch[:20])
    lease = NOW + timedelta(minutes=10)
    first = other.claim_next("bob", lease, NOW)
    assert first is not None
    store.write_batch(batch[20:])
    released = store.update_item(first.id, first.version, {"status": "open", "agent": None,
                                                           "lease_until": None})
    assert released is not None
    taken: dict[str, int] = {}
    deadline = time.monotonic() + 10
    while len(taken) < store.count("queue") and time.monotonic() < deadline:
        item = other.claim_next("cy", lease, NOW)
        if item is None:
            time.sleep(0.5)  # a re-read after one a moment ago waits its turn
            continue
        assert item.id not in taken
        taken[item.id] = item.version
    assert sorted(taken) == sorted(t.id for t in batch if not t.is_spam)
    assert taken[first.id] == first.version + 2


def test_items_read_in_one_call_are_as_current_as_one_by_one(
    store: Store, other: Store, batch: list[TriagedPost]
) -> None:
    store.write_batch(batch)
    queued = [t.id for t in batch if not t.is_spam]
    first = store.claim_next("ann", NOW + timedelta(minutes=10), NOW)
    assert first is not None
    wanted = [*queued[:5], first.id, "test:no-such-item"]
    items = {i.id: i for i in other.get_items(wanted)}
    assert set(items) == set(wanted) - {"test:no-such-item"}
    assert items[first.id].status == "claimed" and items[first.id].version == first.version
    assert all(items[i] == other.get_item(i) for i in items)
    assert other.get_items([]) == []


def test_depth_topics_and_audit(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch)
    depth = store.queue_depth()
    assert sum(depth.values()) == store.count("queue")
    assert set(depth) <= {"P1", "P2", "P3", "P4"}
    topics = store.top_topics(3)
    expected: dict[str, int] = {}
    for t in batch:
        if not t.is_spam:
            expected[t.topic.label] = expected.get(t.topic.label, 0) + 1
    assert topics[0][1] == max(expected.values())
    assert all(expected[name] == n for name, n in topics)
    store.record_audit([AuditEntry(at=NOW, actor="ann", action="claim", item_id=batch[0].id)])
    assert store.count("audit") == 1


START = datetime(2026, 11, 1, tzinfo=UTC)  # make_post(i) was created i seconds after this


def test_queue_pages_filter_search_and_window(store: Store, batch: list[TriagedPost]) -> None:
    store.write_batch(batch)
    queued = sorted((t for t in batch if not t.is_spam), key=lambda t: -t.priority.score)
    everything = store.queue_page(QueueQuery(limit=100))
    assert everything.total == len(queued)
    assert [i.priority for i in everything.items] == [t.priority.score for t in queued]
    first, second = (store.queue_page(QueueQuery(offset=o, limit=5)) for o in (0, 5))
    assert first.total == second.total == len(queued)
    assert [i.id for i in first.items + second.items] == [i.id for i in everything.items[:10]]
    band = queued[0].priority.band
    banded = store.queue_page(QueueQuery(bands=(band,), limit=100))
    assert banded.total == sum(t.priority.band == band for t in queued) > 0
    assert {i.band for i in banded.items} == {band}
    topic, language = queued[-1].topic.label, queued[-1].language
    narrowed = store.queue_page(QueueQuery(topics=(topic,), languages=(language,), limit=100))
    assert {i.id for i in narrowed.items} == {
        t.id for t in queued if t.topic.label == topic and t.language == language
    }
    assert store.queue_page(QueueQuery(sources=("reddit",))).total == 0
    assert store.queue_page(QueueQuery(sources=("test",))).total == len(queued)
    # a customer by handle ("user1x" is one author among the first 40 posts)
    target = next(t for t in queued if 10 <= int(t.post.native_id) < 20)
    found = store.queue_page(QueueQuery(search=target.post.author.handle or "", limit=100))
    assert [i.id for i in found.items] == [target.id]
    word = target.post.text.split()[0].upper()
    by_text = store.queue_page(QueueQuery(search=word, limit=100))
    assert target.id in {i.id for i in by_text.items}
    assert all(word.lower() in i.text.lower() for i in by_text.items)
    # SLA state: a cutoff per band on the post's creation
    cut = {b: START + timedelta(seconds=20) for b in ("P1", "P2", "P3", "P4")}
    older = store.queue_page(QueueQuery(created_before=cut, limit=100))
    newer = store.queue_page(QueueQuery(created_after=cut, limit=100))
    assert {i.id for i in older.items} == {t.id for t in queued if int(t.post.native_id) < 20}
    assert {i.id for i in newer.items} == {t.id for t in queued if int(t.post.native_id) >= 20}
    only_p = {queued[0].priority.band: START + timedelta(seconds=40)}
    assert store.queue_page(QueueQuery(created_before=only_p, limit=100)).total == banded.total


def test_queue_of_a_range_backlog_by_age_and_handles(
    store: Store, batch: list[TriagedPost]
) -> None:
    store.write_batch(batch)
    queued = [t for t in batch if not t.is_spam]
    since, until = START + timedelta(seconds=10), START + timedelta(seconds=20)
    ranged = store.queue_between(since, until)
    assert sorted(i.id for i in ranged) == sorted(
        t.id for t in queued if 10 <= int(t.post.native_id) < 20
    )
    claimed = store.claim_next("ann", NOW + timedelta(minutes=10), NOW)
    assert claimed is not None
    edges = [NOW, START + timedelta(seconds=20), START]
    backlog = store.backlog(edges)
    for band in ("P1", "P2", "P3", "P4"):
        young = sum(
            t.priority.band == band and int(t.post.native_id) >= 20 for t in queued
        )
        old = sum(t.priority.band == band and int(t.post.native_id) < 20 for t in queued)
        assert backlog.get(band, [0, 0]) == [young, old]
    author = f"test:{queued[0].post.author.id}"
    assert store.author_handles([author, "x:no"]) == {author: queued[0].post.author.handle}


def test_authors_keep_their_latest_profile(
    store: Store, triager: Triager, batch: list[TriagedPost]
) -> None:
    old = make_post(1000, source="x").model_copy(
        update={"author": Author(id="z", handle="old", followers=5)}
    )
    new = make_post(1001, source="x").model_copy(
        update={"author": Author(id="z", handle="new", followers=900)}
    )
    store.write_batch(triager.triage([new], NOW))
    store.write_batch(triager.triage([old], NOW))  # arrives late: must not overwrite
    author = store.get_author("x:z")
    assert author is not None and author["handle"] == "new" and author["followers"] == 900
    assert store.get_author("x:nobody") is None


def test_checkpoints_survive_a_new_connection(store: Store) -> None:
    assert store.get_checkpoint("x:search:acme") is None
    store.set_checkpoint("x:search:acme", "1578511538419212288")
    store.set_checkpoint("x:search:acme", "1578516068309794817")
    assert store.get_checkpoint("x:search:acme") == "1578516068309794817"


def test_checkpoints_list_by_prefix_with_when_they_were_written(store: Store) -> None:
    assert store.checkpoints_under("x:") == []
    before = datetime.now(UTC) - timedelta(seconds=1)
    for key in ("x:search:acme", "x:search:acme:resume", "xy:other", "w:x", "reddit:budget:c"):
        store.set_checkpoint(key, f"value of {key}")
    found = store.checkpoints_under("x:")
    assert [c.key for c in found] == ["x:search:acme", "x:search:acme:resume"]
    assert found[0].value == "value of x:search:acme"
    assert all(c.at is not None and before <= c.at <= datetime.now(UTC) for c in found)
    assert [c.key for c in store.checkpoints_under("")] == [
        "reddit:budget:c", "w:x", "x:search:acme", "x:search:acme:resume", "xy:other"
    ]


def test_records_are_found_by_fields_and_by_a_range_of_their_at_time(store: Store) -> None:
    at = NOW + timedelta(minutes=5, milliseconds=250)  # MongoDB keeps milliseconds
    store.put_record("trend_records", "a", {"at": at, "status": "emerging", "what": "x"})
    store.put_record("trend_records", "b", {"at": at + timedelta(hours=1), "status": "ended"})
    store.put_record("trend_records", "c", {"status": "emerging"})  # no time: never in a range
    store.put_record("trend_records", "a", {"at": at, "status": "fading", "what": "z"})
    store.put_record("incidents", "d", {"at": at, "status": "fading"})

    def found(**kw: object) -> list[tuple[str, str | None]]:
        docs = store.find_records("trend_records", **kw)  # type: ignore[arg-type]
        return [(d["status"], d.get("what")) for d in docs]

    assert found() == [("fading", "z"), ("ended", None), ("emerging", None)]
    assert found(since=at, until=at + timedelta(hours=1)) == [("fading", "z")]
    assert found(since=at + timedelta(milliseconds=1)) == [("ended", None)]
    assert found(until=at) == []
    assert found(since=NOW, where={"status": ["fading", "emerging"]}) == [("fading", "z")]
    (doc,) = store.find_records("trend_records", {"what": "z"})
    stored = doc["at"]
    assert (datetime.fromisoformat(stored) if isinstance(stored, str) else stored) == at


def test_deleting_a_record_removes_only_it(store: Store) -> None:
    store.put_record("k", "a", {"n": 1})
    store.put_record("k", "b", {"n": 2})
    store.put_record("other", "a", {"n": 3})
    assert store.delete_record("k", "a") is True
    assert store.delete_record("k", "a") is False
    assert store.get_record("k", "a") is None
    assert [d["n"] for d in store.find_records("k")] == [2]
    assert store.get_record("other", "a") == {"n": 3}
    store.put_record("k", "a", {"n": 4})  # a deleted key can be written again
    assert sorted(d["n"] for d in store.find_records("k")) == [2, 4]


def test_a_lease_has_one_holder_until_its_time_runs_out(store: Store) -> None:
    later = NOW + timedelta(minutes=2)
    first = store.take_lease("detector", "w1", later, NOW)
    assert first is not None and first.holder is None and first.state == {}
    assert store.take_lease("detector", "w2", later, NOW + timedelta(minutes=1)) is None
    # the holder renews it and records its progress; a renewal without state keeps it
    renewed = store.take_lease("detector", "w1", later + timedelta(minutes=2), NOW, {"closed": 7})
    assert renewed is not None and renewed.holder == "w1" and renewed.until == later
    assert store.take_lease("detector", "w1", later + timedelta(minutes=2), NOW) is not None
    assert store.take_lease("detector", "w2", NOW, later + timedelta(minutes=1)) is None
    # once it ran out another takes it over, and reads what the last holder recorded
    taken = store.take_lease("detector", "w2", NOW + timedelta(days=2), later + timedelta(1))
    assert taken is not None and taken.holder == "w1" and taken.state == {"closed": 7}
    assert store.take_lease("detector", "w1", NOW, later + timedelta(days=1)) is None
    assert store.take_lease("other", "w1", NOW, NOW) is not None  # leases are by name


def test_of_workers_racing_for_a_free_lease_exactly_one_takes_it(store: Store) -> None:
    results: list[object] = []

    def take(i: int) -> None:
        results.append(store.take_lease("race", f"w{i}", NOW + timedelta(minutes=1), NOW))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 1


def test_a_spike_s_items_are_found_by_time_and_words_whatever_worker_wrote_them(
    store: Store, batch: list[TriagedPost]
) -> None:
    store.write_batch(batch[:20])
    store.write_batch(batch[20:])  # as another worker would
    queued = {t.id: t for t in batch if not t.is_spam}
    since = batch[10].post.created_at

    def expect(holds: Callable[[TriagedPost], bool]) -> list[str]:
        """The ids of the queued posts since ``since`` that ``holds``, newest first."""
        found = [i for i, t in queued.items() if t.post.created_at >= since and holds(t)]
        return found[::-1]

    def ids(items: list[QueueItem]) -> list[str]:
        return [i.id for i in items]

    phone = expect(lambda t: "acmephone" in t.post.text.lower())
    assert phone and ids(store.queue_mentioning(since, ["ACMEPHONE"])) == phone
    late = expect(lambda t: "物流" in t.post.text or "tracking" in t.post.text)
    assert late and ids(store.queue_mentioning(since, ["物流", "tracking"])) == late
    topic = next(iter(queued.values())).topic.label
    assert ids(store.queue_mentioning(since, [], [topic])) == expect(
        lambda t: t.topic.label == topic
    )
    assert store.queue_mentioning(since, []) == []
    assert ids(store.queue_mentioning(since, ["ACMEPHONE"], limit=1)) == phone[:1]
    # a resolved item is no incident's any more
    item = store.get_item(phone[-1])
    assert item is not None
    store.update_item(item.id, item.version, {"status": "resolved"})
    assert ids(store.queue_mentioning(since, ["acmephone"])) == phone[:-1]
