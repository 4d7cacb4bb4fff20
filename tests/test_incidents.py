"""Spike to incident, on both stores: grouping, the suggested reply, and bulk resolution."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from dashboards.queue_api import QueueServices
from pipeline.outbound.replies import Repliers
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import AuditEntry, Author, Post, QueueItem
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from pipeline.store.interface import Store
from pipeline.trends.detector import SamplePost, Trend
from pipeline.trends.incidents import (
    Candidate,
    Incident,
    IncidentError,
    IncidentRefused,
    get_incident,
    incidents,
    link_incidents,
    resolve_incident,
)

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
SPIKE = [
    "The app crashes at login since the update #acmedown",
    "#acmedown again, cannot see my orders",
    "Is the app broken for everyone? #AcmeDown",
    "acme app keeps crashing, #acmedown please fix",
    "Still #acmedown after reinstalling",
]
OTHER = [
    "Where is my parcel? Ordered a week ago",
    "Love the new headphones, thank you",
    "How do I change my email address?",
]


class Outbox:
    """X's reply endpoint, as the tests see it: what was sent; replies to posts in ``down`` fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.down: set[str] = set()
        self._lock = threading.Lock()

    def reply(self, item: QueueItem, text: str) -> str:
        native = item.id.split(":", 1)[1]
        if native in self.down:
            raise ConnectionError("network down")
        with self._lock:
            self.sent.append((native, text))
            return f"r{len(self.sent)}"


def post(i: int, text: str, minutes_ago: int = 5, source: str = "x") -> Post:
    return Post(
        source=source,
        native_id=str(i),
        author=Author(id=f"u{i}"),
        text=text,
        created_at=NOW - timedelta(minutes=minutes_ago),
    )


def spike_trend(started: datetime = NOW - timedelta(minutes=30)) -> Trend:
    return Trend(
        id="hashtag:#acmedown:1",
        what="#acmedown",
        kind="hashtag",
        related=["app crashes"],
        started_at=started,
        detected_at=NOW,
        updated_at=NOW,
        growth=12.0,
        volume=40,
        peak_volume=40,
        expected=3.3,
        p_value=1e-12,
        sample_posts=[SamplePost(id="x:1", text=SPIKE[0], author="x:u1", sentiment="negative")],
        sentiment_mix={"negative": 40},
        top_authors=[],
        status="emerging",
        detector="poisson",
    )


@pytest.fixture
def queued(store: Store, triager: Triager) -> list[str]:
    posts = [post(i, t) for i, t in enumerate(SPIKE)]
    posts += [post(100 + i, t) for i, t in enumerate(OTHER)]
    posts.append(post(200, "#acmedown last month too", minutes_ago=24 * 60))
    triaged = triager.triage(posts, NOW)
    store.write_batch(triaged)
    return sorted(t.id for t in triaged if not t.is_spam and t.id != "x:200")


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
def queue(store: Store, outbox: Outbox) -> AgentQueue:
    return AgentQueue(store, repliers=Repliers(store, {"x": outbox}))


def test_open_items_of_a_spike_become_one_incident(store: Store, queued: list[str]) -> None:
    spike_ids = sorted(f"x:{i}" for i in range(len(SPIKE)))
    assert set(spike_ids) <= set(queued)
    made = link_incidents(store, [spike_trend()], NOW)
    assert len(made) == 1
    incident = made[0]
    assert incident.item_ids == spike_ids and incident.count == len(SPIKE)
    assert "x:200" not in incident.item_ids  # posted before the spike began
    assert "#acmedown" in incident.suggested_reply
    assert incident.status == "open"
    # the worker may retry: linking again changes nothing, and there is still one incident
    assert link_incidents(store, [spike_trend()], NOW) == []
    assert [i.id for i in incidents(store)] == [incident.id]
    assert get_incident(store, incident.id).item_ids == spike_ids


def test_a_worker_s_recent_posts_group_and_a_claimed_one_stays_with_its_agent(
    store: Store, queued: list[str], triager: Triager, queue: AgentQueue, outbox: Outbox
) -> None:
    """The worker matches spikes against the posts it queued, reading nothing; one an agent
    claimed since then joins, and resolving the incident leaves it to that agent."""
    recent = [
        Candidate.of(t) for t in triager.triage([post(i, t) for i, t in enumerate(SPIKE)], NOW)
    ]
    item = store.get_item("x:2")
    assert item is not None and queue.take(item, "bob", NOW, {}) is not None
    (incident,) = link_incidents(store, [spike_trend()], NOW, recent)
    assert incident.item_ids == sorted(f"x:{i}" for i in range(len(SPIKE)))
    assert link_incidents(store, [spike_trend()], NOW, recent) == []
    done = resolve_incident(queue, incident.id, "ann", "On it", NOW + timedelta(minutes=1))
    assert done.skip_reasons == {"x:2": "held by bob"}
    assert sorted(n for n, _ in outbox.sent) == [str(i) for i in range(len(SPIKE)) if i != 2]


ZH_SPIKE = [
    "热水器用了三天就漏水，太失望了",
    "新买的热水器漏水，客服一直不回复",
    "热水器漏水严重，要求退货",
]


def test_a_chinese_spike_groups_its_chinese_posts_and_suggests_a_chinese_reply(
    store: Store, triager: Triager
) -> None:
    triaged = triager.triage([post(300 + i, t) for i, t in enumerate(ZH_SPIKE)], NOW)
    recent = [Candidate.of(t) for t in triaged] + [
        Candidate.of(t) for t in triager.triage([post(400, "热水器很好用，推荐")], NOW)
    ]
    trend = spike_trend().model_copy(
        update={"id": "term:漏水:1", "what": "漏水", "kind": "term", "related": []}
    )
    (incident,) = link_incidents(store, [trend], NOW, recent)
    assert incident.item_ids == sorted(t.id for t in triaged)
    assert "漏水" in incident.suggested_reply and "感谢" in incident.suggested_reply
    assert not any(c.isascii() and c.isalpha() for c in incident.suggested_reply)


def test_an_ended_or_volume_spike_makes_no_incident(store: Store, queued: list[str]) -> None:
    ended = spike_trend().model_copy(update={"status": "ended"})
    volume = spike_trend().model_copy(update={"kind": "volume", "what": "all", "id": "v"})
    assert link_incidents(store, [ended, volume], NOW) == []


def test_resolving_the_incident_replies_to_each_customer_and_audits(
    store: Store, queued: list[str], queue: AgentQueue, outbox: Outbox
) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    lease = NOW + timedelta(minutes=10)
    held = store.claim_next("bob", lease, NOW)  # bob holds the most urgent item
    assert held is not None
    later = NOW + timedelta(minutes=1)
    done = resolve_incident(queue, incident.id, "ann", "We are on it, sorry!", later)
    assert done.status == "resolved" and done.resolved_by == "ann"
    expected_skipped = [held.id] if held.id in incident.item_ids else []
    assert done.skipped_items == expected_skipped
    assert done.skip_reasons == {i: "held by bob" for i in expected_skipped}
    assert sorted(done.resolved_items + done.skipped_items) == incident.item_ids
    # one reply to each author on X, none to bob's item: bob answers it himself
    assert sorted(outbox.sent) == sorted(
        (i.split(":")[1], "We are on it, sorry!") for i in done.resolved_items
    )
    for item_id in done.resolved_items:
        item = store.get_item(item_id)
        assert item is not None and item.status == "resolved" and item.agent == "ann"
        assert item.resolution is not None and item.resolution.reply == "We are on it, sorry!"
        assert item.first_response_at == later
    for item_id in other_ids(queued):
        item = store.get_item(item_id)
        assert item is not None and item.status in ("open", "claimed")
    assert get_incident(store, incident.id).status == "resolved"
    authors = [f"x:u{i}" for i in range(len(SPIKE))]
    replies = {r.id: r for r in queue.repliers.for_authors(authors)}
    resolved_audit = [a for a in audit_entries(store) if a.action == "resolve"]
    assert sorted(a.item_id for a in resolved_audit if a.item_id) == sorted(done.resolved_items)
    for entry in resolved_audit:
        assert entry.detail["incident"] == incident.id and entry.detail["delivery"] == "sent"
        assert replies[entry.detail["reply_id"]].item_id == entry.item_id
    with pytest.raises(IncidentError):
        resolve_incident(queue, incident.id, "ann", "again", later)
    with pytest.raises(IncidentError):
        resolve_incident(queue, "incident:nope", "ann", "x", later)
    assert len(outbox.sent) == len(done.resolved_items)


def test_an_unsent_reply_leaves_its_item_and_the_incident_open_to_resolve_again(
    store: Store, queued: list[str], queue: AgentQueue, outbox: Outbox
) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    failing = incident.item_ids[1]
    outbox.down.add(failing.split(":")[1])
    later = NOW + timedelta(minutes=1)
    first = resolve_incident(queue, incident.id, "ann", "Fixed, sorry!", later)
    assert first.status == "open" and first.resolved_by is None
    assert first.skip_reasons == {failing: "reply not sent: network down"}
    assert sorted(first.resolved_items) == sorted(set(incident.item_ids) - {failing})
    item = store.get_item(failing)
    assert item is not None and item.status == "open" and item.agent is None
    assert [i.id for i in incidents(store, "open")] == [incident.id]
    assert len(outbox.sent) == len(incident.item_ids) - 1

    outbox.down.clear()
    again = resolve_incident(queue, incident.id, "ann", "Fixed, sorry!", later)
    assert again.status == "resolved" and again.skip_reasons == {}
    assert sorted(again.resolved_items) == incident.item_ids
    # every customer was answered exactly once over both attempts
    assert sorted(n for n, _ in outbox.sent) == sorted(i.split(":")[1] for i in incident.item_ids)
    closed = [a for a in audit_entries(store) if a.action == "resolve"]
    assert sorted(a.item_id for a in closed if a.item_id) == incident.item_ids
    assert [a.item_id for a in audit_entries(store) if a.action == "reply_failed"] == [failing]


def test_racing_resolutions_reply_once_per_item(
    store: Store, queued: list[str], queue: AgentQueue, outbox: Outbox
) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    start = threading.Barrier(3)
    results: list[Incident | str] = []

    def resolve(agent: str) -> None:
        start.wait()
        try:
            results.append(resolve_incident(queue, incident.id, agent, f"from {agent}", NOW))
        except IncidentRefused as exc:  # it came after another had resolved the incident
            results.append(str(exc))

    threads = [threading.Thread(target=resolve, args=(a,)) for a in ("ann", "ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and any(isinstance(r, Incident) for r in results)
    assert all(isinstance(r, Incident) or "already resolved" in r for r in results)
    assert sorted(n for n, _ in outbox.sent) == sorted(i.split(":")[1] for i in incident.item_ids)
    for item_id in incident.item_ids:
        item = store.get_item(item_id)
        assert item is not None and item.status == "resolved"
        assert item.resolution is not None and item.resolution.reply == f"from {item.agent}"
    closed = [a.item_id for a in audit_entries(store) if a.action == "resolve"]
    assert sorted(i for i in closed if i) == incident.item_ids


class GatedOutbox(Outbox):
    """Runs ``gates[native id]`` before that reply: the test orders two racing resolutions."""

    def __init__(self, base: Outbox) -> None:
        super().__init__()
        self.base = base
        self.gates: dict[str, Callable[[], None]] = {}

    def reply(self, item: QueueItem, text: str) -> str:
        gate = self.gates.get(item.id.split(":", 1)[1])
        if gate is not None:
            gate()
        return self.base.reply(item, text)


def test_a_resolution_finishing_last_keeps_the_incident_open_for_a_reply_that_failed_meanwhile(
    store: Store, queued: list[str], outbox: Outbox
) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    gated = GatedOutbox(outbox)
    queue = AgentQueue(store, repliers=Repliers(store, {"x": gated}))
    first, last = (i.split(":")[1] for i in (incident.item_ids[0], incident.item_ids[-1]))
    ann_holds, ann_may_fail, ann_done = threading.Event(), threading.Event(), threading.Event()

    def ann_gate() -> None:  # ann holds the first item while bob passes it by
        ann_holds.set()
        ann_may_fail.wait(10)
        outbox.down.add(first)

    def bob_gate() -> None:  # bob's last reply waits until ann has failed and finished
        ann_may_fail.set()
        ann_done.wait(10)

    gated.gates = {first: ann_gate, last: bob_gate}
    results: dict[str, Incident] = {}

    def ann() -> None:
        results["ann"] = resolve_incident(queue, incident.id, "ann", "Fixed!", NOW)
        ann_done.set()

    thread = threading.Thread(target=ann)
    thread.start()
    assert ann_holds.wait(10)
    results["bob"] = resolve_incident(queue, incident.id, "bob", "Fixed!", NOW)
    thread.join()
    item = store.get_item(incident.item_ids[0])
    assert item is not None and item.status == "open"
    assert results["ann"].status == results["bob"].status == "open"
    assert get_incident(store, incident.id).status == "open"
    assert incident.item_ids[0] not in get_incident(store, incident.id).resolved_items


def other_ids(queued: list[str]) -> list[str]:
    return [i for i in queued if int(i.split(":")[1]) >= 100]


def audit_entries(store: Store) -> list[AuditEntry]:
    from pipeline.store.mongo import MongoStore

    if isinstance(store, EmbeddedStore):
        rows = store._run("SELECT doc FROM audit ORDER BY seq")
        return [AuditEntry.model_validate_json(r[0]) for r in rows]
    assert isinstance(store, MongoStore)
    return [
        AuditEntry.model_validate({k: v for k, v in d.items() if k != "_id"})
        for d in store.audit.find({})
    ]


def test_agents_reach_incidents_over_the_api(
    store: Store, queued: list[str], outbox: Outbox
) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    for name, roles in (("ann", ["agent"]), ("oli", ["operator"]), ("mia", ["marketing"])):
        store.save_user(make_account(name, PASSWORD, roles))
    app = create_app(store)
    services = QueueServices.from_settings(store, Settings(), Repliers(store, {"x": outbox}))
    app.state.queue_services = services
    ann, oli, mia = (signed_in(app, name) for name in ("ann", "oli", "mia"))
    path = f"/api/v1/incidents/{quote(incident.id, safe='')}"
    listed = ann.get("/api/v1/incidents")
    assert listed.status_code == 200, listed.text
    assert [(i["id"], i["count"]) for i in listed.json()] == [(incident.id, len(SPIKE))]
    assert "#acmedown" in listed.json()[0]["suggested_reply"]
    one = oli.get(path)
    assert one.status_code == 200, one.text
    assert sorted(i["id"] for i in one.json()["items"]) == incident.item_ids
    assert mia.get("/api/v1/incidents").status_code == 403
    refused = send(oli, f"{path}/resolve", {"reply": "Fixed, sorry!"})
    assert refused.status_code == 403
    assert send(ann, f"{path}/resolve", {}).status_code == 422
    unknown = send(ann, "/api/v1/incidents/incident:nope/resolve", {"reply": "x"})
    assert unknown.status_code == 404 and "incident:nope" in unknown.json()["detail"]
    done = send(ann, f"{path}/resolve", {"reply": "Fixed, sorry!"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved" and done.json()["resolved_by"] == "ann"
    assert sorted(done.json()["resolved_items"]) == incident.item_ids
    sent = sorted((i.split(":")[1], "Fixed, sorry!") for i in incident.item_ids)
    assert sorted(outbox.sent) == sent
    for item_id in incident.item_ids:
        item = store.get_item(item_id)
        assert item is not None and item.status == "resolved" and item.agent == "ann"
    resolve_audit = [a for a in audit_entries(store) if a.action == "resolve"]
    assert sorted(a.item_id for a in resolve_audit if a.item_id) == incident.item_ids
    again = send(ann, f"{path}/resolve", {"reply": "Fixed, sorry!"})
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert len(outbox.sent) == len(incident.item_ids)
    assert ann.get("/api/v1/incidents").json() == []
    assert [i["id"] for i in ann.get("/api/v1/incidents?status=resolved").json()] == [incident.id]


def test_agents_list_and_resolve_incidents_from_the_command_line(
    tmp_path: Path, triager: Triager
) -> None:
    """Replies go through the configured connectors: without X credentials the X item's reply
    cannot be sent, so it and the incident stay open; the record-only items are answered."""
    store = EmbeddedStore(tmp_path / "triage.sqlite3")
    store.ensure_schema()
    posts = [post(i, t, source="x" if i == 0 else "test") for i, t in enumerate(SPIKE)]
    store.write_batch(triager.triage(posts, NOW))
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    assert "x:0" in incident.item_ids
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")},
        "TRIAGE_DATA_DIR": str(tmp_path),
    }

    def triage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "incidents", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = triage("list")
    assert listed.returncode == 0, listed.stderr
    assert incident.id in listed.stdout and "#acmedown" in listed.stdout
    bad = triage("resolve", "incident:nope", "--agent", "ann", "--reply", "x")
    assert bad.returncode == 2 and bad.stderr.strip() == "triage: no incident 'incident:nope'"
    recorded = sorted(i for i in incident.item_ids if i != "x:0")
    for _ in range(2):  # resolving again answers nobody twice
        done = triage("resolve", incident.id, "--agent", "ann", "--reply", "Fixed, sorry!")
        assert done.returncode == 1, done.stderr
        assert f"{len(recorded)} items resolved, open" in done.stdout
        assert "skipped x:0: reply not sent: no way to reply on 'x'" in done.stdout
        replies = Repliers(store).for_authors([f"test:u{i}" for i in range(len(SPIKE))])
        assert sorted(r.item_id for r in replies) == recorded
        assert {r.delivery for r in replies} == {"recorded"}
    for item_id in incident.item_ids:
        item = store.get_item(item_id)
        assert item is not None and item.status == ("open" if item_id == "x:0" else "resolved")
    assert incident.id in triage("list").stdout
    assert triage("list", "--status", "later").stderr.startswith("triage: unknown --status")


def signed_in(app: object, name: str) -> TestClient:
    client = TestClient(app)  # type: ignore[arg-type]
    answer = client.post("/api/v1/login", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def send(client: TestClient, path: str, body: object) -> Response:
    return client.post(path, json=body)
