"""The Bluesky connector against 152 events as Bluesky's production Jetstream served them, replayed
by a local websocket server that behaves as Jetstream's README says: it sends only the commits of
the ``wantedCollections`` (identity and account events to everyone), and with a ``cursor`` it plays
back from that ``time_us`` on; without one it tails "live" (the recording from its start). Given a
zstd dictionary and asked for ``compress=true``, it sends each event as its own zstd frame against
that dictionary, in a binary message, as Jetstream does with its published one."""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import zstandard
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from connectors.bluesky import POST, BlueskyConnector, native_id, native_uri, open_jetstream
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from pipeline.records import DeadLetter, Post
from pipeline.store.embedded import EmbeddedStore
from tests.cassettes import FIXTURES

RECORDING = FIXTURES / "bluesky_jetstream" / "jetstream_v1_2026-07-04.jsonl"


def events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in RECORDING.read_text().splitlines() if line.strip()]


def post_creates() -> list[dict[str, Any]]:
    return [
        e
        for e in events()
        if e["kind"] == "commit"
        and e["commit"]["collection"] == POST
        and e["commit"]["operation"] == "create"
    ]


class Jetstream:
    """Serves the recording; ``drop_after`` closes the first connections after that many events,
    as a dropped connection does. Every connection's query is kept."""

    def __init__(self, extra: list[str] | None = None, dictionary: bytes | None = None) -> None:
        self.lines = [json.dumps(e) for e in events()] + (extra or [])
        self.zstd = (
            zstandard.ZstdCompressor(dict_data=zstandard.ZstdCompressionDict(dictionary))
            if dictionary
            else None
        )
        self.queries: list[dict[str, list[str]]] = []
        self.drop_after: list[int] = []
        self.server: Server = serve(self.handle, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/subscribe"

    def handle(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        self.queries.append(query)
        wanted = set(query.get("wantedCollections", []))
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        limit = self.drop_after.pop(0) if self.drop_after else None
        sent = 0
        for line in self.lines:
            try:
                event = json.loads(line)
            except ValueError:
                event = {}
            commit = event.get("commit") or {}
            if event.get("kind") == "commit" and wanted and commit.get("collection") not in wanted:
                continue
            if cursor is not None and int(event.get("time_us", cursor)) < cursor:
                continue
            if limit is not None and sent == limit:
                return  # the connection drops
            if self.zstd is not None and query.get("compress") == ["true"]:
                ws.send(self.zstd.compress(line.encode()))
                sent += 1
                continue
            ws.send(line)
            sent += 1
        ws.close()  # the end of the recording

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def jetstream() -> Iterator[Jetstream]:
    server = Jetstream()
    yield server
    server.close()


def new_store(path: Path) -> EmbeddedStore:
    s = EmbeddedStore(path)
    s.ensure_schema()
    return s


def connector(bus: Any, store: EmbeddedStore, url: str, **kw: Any) -> BlueskyConnector:
    quick = functools.partial(open_jetstream, close_timeout=0.05)
    c = BlueskyConnector(bus.producer(), store, instance=url, open_socket=quick, **kw)
    c.setup()
    return c


def one_connection(c: BlueskyConnector) -> None:
    """Read one connection to its end (or the connector's stop), then flush and checkpoint, as
    ``start`` does."""
    with contextlib.suppress(ConnectionClosed):
        c.session()
    c.flush()


def posts_on(bus: Any, topic: str = "posts.raw") -> list[Post]:
    return [Post.model_validate_json(m.value) for m in bus.read_all(topic)]


def test_every_post_create_becomes_one_post_with_its_fields(
    jetstream: Jetstream, tmp_path: Path
) -> None:
    bus = InProcessBus()
    c = connector(bus, new_store(tmp_path / "b.sqlite3"), jetstream.url)
    one_connection(c)
    posts = posts_on(bus)
    creates = post_creates()
    assert len(posts) == len(creates) == 17 and c.rejected == 0
    assert jetstream.queries[0] == {"wantedCollections": [POST]}
    by_uri = {native_uri(p.native_id): p for p in posts}
    for event in creates:
        record, did = event["commit"]["record"], event["did"]
        post = by_uri[f"at://{did}/{POST}/{event['commit']['rkey']}"]
        assert post.source == "bluesky" and post.author.id == did
        card = (record.get("embed") or {}).get("external") or {}
        assert post.text == (record["text"] or f"{card['title']}\n\n{card['description']}")
        assert post.language == (record.get("langs") or [None])[0]
        assert post.created_at.isoformat()[:19] == record["createdAt"][:19]
        assert post.url == f"https://bsky.app/profile/{did}/post/{event['commit']['rkey']}"
        reply = record.get("reply")
        assert post.in_reply_to == (native_id(reply["parent"]["uri"]) if reply else None)
        assert post.conversation_id == (native_id(reply["root"]["uri"]) if reply else None)
        assert post.raw["cid"] == event["commit"]["cid"]


def test_the_brand_is_matched_by_keyword_handle_or_mentioned_did(
    jetstream: Jetstream, tmp_path: Path
) -> None:
    creates = post_creates()
    word = creates[3]["commit"]["record"]["text"].split()[0]
    bus = InProcessBus()
    c = connector(bus, new_store(tmp_path / "b.sqlite3"), jetstream.url, keywords=[word])
    one_connection(c)
    texts = [p.text for p in posts_on(bus)]
    assert texts and all(word.lower() in t.lower() for t in texts)
    assert len(texts) < len(creates)
    # nobody in the recording mentions this account: nothing matches, yet the cursor moves
    bus = InProcessBus()
    c = connector(
        bus,
        new_store(tmp_path / "n.sqlite3"),
        jetstream.url,
        handles=["acme.example"],
        dids=["did:plc:acmeacmeacmeacmeacmeacme"],
    )
    one_connection(c)
    served = [e for e in events() if e["kind"] != "commit" or e["commit"]["collection"] == POST]
    assert posts_on(bus) == [] and c.cursor == max(e["time_us"] for e in served)


def test_compressed_events_are_asked_for_and_read_with_the_dictionary(tmp_path: Path) -> None:
    # Jetstream's own dictionary is not reachable offline: one trained on the recording's events
    # plays its part (the frames and the dictionary mechanics are the same)
    samples = [json.dumps(e).encode() for e in events()]
    dictionary = zstandard.train_dictionary(16_384, samples * 4).as_bytes()
    server = Jetstream(extra=["{not json"], dictionary=dictionary)
    try:
        bus = InProcessBus()
        c = connector(
            bus, new_store(tmp_path / "z.sqlite3"), server.url, zstd_dictionary=dictionary
        )
        one_connection(c)
        assert server.queries[0] == {"wantedCollections": [POST], "compress": ["true"]}
        assert sorted(p.native_id for p in posts_on(bus)) == sorted(
            native_id(f"at://{e['did']}/{POST}/{e['commit']['rkey']}") for e in post_creates()
        )
        dead = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
        assert [d.reason.split(":")[0] for d in dead] == ["malformed Jetstream event"]
        # a frame compressed against another dictionary is a dead letter, and the rest goes on
        other = zstandard.train_dictionary(16_384, samples[::-1] * 4).as_bytes()
        frame = zstandard.ZstdCompressor(dict_data=zstandard.ZstdCompressionDict(other)).compress(
            samples[0]
        )
        c.on_message(frame)
        c.on_message(b"\x28\xb5\x2f\xfd" + b"garbage")
        c.on_message(zstandard.ZstdCompressor().compress(b" " * 50_000_000))  # a zip bomb
        assert c.rejected == 4
        reasons = [
            DeadLetter.model_validate_json(m.value).reason for m in bus.read_all("posts.dlq")
        ]
        assert "oversized event" in reasons[-1]
    finally:
        server.close()


def cut_and_restart(
    jetstream: Jetstream, bus: Any, read: Any, stores: Path, cuts: list[int], rewind_s: float
) -> None:
    """For each cut: a connector stopped (Ctrl-C) right after that many posts, then a fresh one
    on the same checkpoint; every post must be on the cut's topic exactly once."""
    expected = sorted(
        native_id(f"at://{e['did']}/{POST}/{e['commit']['rkey']}") for e in post_creates()
    )
    for cut in cuts:
        topic = f"raw.bsky.{stores.name}.{cut}"
        store = new_store(stores / f"cut{cut}.sqlite3")
        first = connector(bus, store, jetstream.url, rewind_s=rewind_s, topic=topic)
        emit = first.emit

        def emit_then_stop(
            post: Post, c: BlueskyConnector = first, emit: Any = emit, cut: int = cut
        ) -> None:
            emit(post)
            if c.sent == cut:
                c.stop()

        first.emit = emit_then_stop  # type: ignore[method-assign]
        if cut == 0:
            first.stop()
        one_connection(first)
        again = connector(bus, store, jetstream.url, rewind_s=rewind_s, topic=topic)
        one_connection(again)
        if first.cursor is not None:
            rewound = first.cursor - int(rewind_s * 1e6)
            assert int(jetstream.queries[-1]["cursor"][0]) == rewound
        ids = [p.native_id for p in read(topic)]
        assert sorted(ids) == expected, f"cut after {cut} posts"


@pytest.mark.parametrize("rewind_s", [5.0, 0.1])
def test_cut_after_any_post_and_restarted_every_post_once(
    rewind_s: float, jetstream: Jetstream, tmp_path: Path
) -> None:
    bus = InProcessBus()
    cuts = list(range(len(post_creates()) + 1))
    cut_and_restart(jetstream, bus, lambda t: posts_on(bus, t), tmp_path, cuts, rewind_s)


@pytest.mark.kafka
def test_cut_after_any_post_and_restarted_every_post_once_on_kafka(
    jetstream: Jetstream, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    kafka = KafkaBus(kafka_bootstrap)
    cuts = list(range(len(post_creates()) + 1))
    stores = tmp_path / unique
    stores.mkdir()
    kafka.ensure_topics([f"raw.bsky.{unique}.{cut}" for cut in cuts])
    read = lambda topic: posts_on(kafka, topic)  # noqa: E731
    cut_and_restart(jetstream, kafka, read, stores, cuts, 5.0)


@pytest.mark.parametrize("drop_after", [1, 20, 40, 60, 75])
def test_a_dropped_connection_reconnects_from_the_cursor_without_a_gap_or_repeat(
    drop_after: int, jetstream: Jetstream, tmp_path: Path
) -> None:
    jetstream.drop_after = [drop_after, drop_after]
    bus = InProcessBus()
    c = connector(bus, new_store(tmp_path / "b.sqlite3"), jetstream.url, rewind_s=0.1)
    for _ in range(3):
        one_connection(c)
    counts = collections.Counter(p.native_id for p in posts_on(bus))
    assert len(counts) == 17 and set(counts.values()) == {1}
    assert "cursor" not in jetstream.queries[0] and "cursor" in jetstream.queries[2]


def test_run_reconnects_with_backoff_and_stops_on_request(tmp_path: Path) -> None:
    refused = BlueskyConnector(
        InProcessBus().producer(),
        new_store(tmp_path / "b.sqlite3"),
        instance="ws://127.0.0.1:9/subscribe",
        max_backoff_s=2.0,
    )
    waited = threading.Event()
    wait = refused.wait

    def count_waits(seconds: float) -> bool:
        if len(refused.waits) == 3:
            refused.stop()
            waited.set()
        return wait(0)

    refused.wait = count_waits  # type: ignore[method-assign]
    refused.start()
    assert waited.is_set() and refused.waits[:3] == [1.0, 2.0, 2.0]


def test_malformed_events_go_to_the_dead_letters(tmp_path: Path) -> None:
    bad_post = dict(post_creates()[0])
    bad_post["commit"] = dict(
        bad_post["commit"], record={"$type": POST, "text": "hi", "createdAt": "x"}
    )
    server = Jetstream(extra=["{not json", json.dumps(bad_post | {"time_us": 1})])
    try:
        bus = InProcessBus()
        # the broken post is a re-send of one seen in the recording; a fresh uri for it
        bad_post["commit"]["rkey"] = "3zzzzzzzzzzzz"
        server.lines[-1] = json.dumps(bad_post | {"time_us": 1})
        c = connector(bus, new_store(tmp_path / "b.sqlite3"), server.url)
        one_connection(c)
    finally:
        server.close()
    letters = [DeadLetter.model_validate_json(m.value) for m in bus.read_all("posts.dlq")]
    assert c.sent == 17 and len(letters) == 2
    assert {d.stage for d in letters} == {"connector:bluesky"}
    assert any("malformed Jetstream event" in d.reason for d in letters)
