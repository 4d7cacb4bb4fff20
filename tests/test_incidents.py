"""Spike to incident, on both stores: grouping, the suggested reply, and bulk resolution."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.embedded_store import EmbeddedStore
from pipeline.incidents import (
    IncidentError,
    get_incident,
    incidents,
    link_incidents,
    resolve_incident,
)
from pipeline.records import AuditEntry, Author, Post
from pipeline.store import Store
from pipeline.trends import SamplePost, Trend

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


def post(i: int, text: str, minutes_ago: int = 5) -> Post:
    return Post(
        source="x",
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


def test_an_ended_or_volume_spike_makes_no_incident(store: Store, queued: list[str]) -> None:
    ended = spike_trend().model_copy(update={"status": "ended"})
    volume = spike_trend().model_copy(update={"kind": "volume", "what": "all", "id": "v"})
    assert link_incidents(store, [ended, volume], NOW) == []


def test_resolving_the_incident_resolves_its_items_with_audit(
    store: Store, queued: list[str]
) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    lease = NOW + timedelta(minutes=10)
    held = store.claim_next("bob", lease, NOW)  # bob holds the most urgent item
    assert held is not None
    later = NOW + timedelta(minutes=1)
    done = resolve_incident(store, incident.id, "ann", "We are on it, sorry!", later)
    assert done.status == "resolved" and done.resolved_by == "ann"
    expected_skipped = [held.id] if held.id in incident.item_ids else []
    assert done.skipped_items == expected_skipped
    assert sorted(done.resolved_items + done.skipped_items) == incident.item_ids
    for item_id in done.resolved_items:
        item = store.get_item(item_id)
        assert item is not None and item.status == "resolved"
        assert item.resolution is not None and item.resolution.reply == "We are on it, sorry!"
    for item_id in other_ids(queued):
        item = store.get_item(item_id)
        assert item is not None and item.status in ("open", "claimed")
    assert get_incident(store, incident.id).status == "resolved"
    audit = audit_entries(store)
    resolved_audit = [a for a in audit if a.action == "resolve"]
    assert sorted(a.item_id for a in resolved_audit if a.item_id) == sorted(done.resolved_items)
    assert all(a.detail["incident"] == incident.id for a in resolved_audit)
    with pytest.raises(IncidentError):
        resolve_incident(store, incident.id, "ann", "again", later)
    with pytest.raises(IncidentError):
        resolve_incident(store, "incident:nope", "ann", "x", later)


def other_ids(queued: list[str]) -> list[str]:
    return [i for i in queued if int(i.split(":")[1]) >= 100]


def audit_entries(store: Store) -> list[AuditEntry]:
    from pipeline.mongo_store import MongoStore

    if isinstance(store, EmbeddedStore):
        rows = store._run("SELECT doc FROM audit ORDER BY seq")
        return [AuditEntry.model_validate_json(r[0]) for r in rows]
    assert isinstance(store, MongoStore)
    return [
        AuditEntry.model_validate({k: v for k, v in d.items() if k != "_id"})
        for d in store.audit.find({})
    ]


def test_agents_reach_incidents_over_the_api(store: Store, queued: list[str]) -> None:
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    for name, roles in (("ann", ["agent"]), ("oli", ["operator"]), ("mia", ["marketing"])):
        store.save_user(make_account(name, PASSWORD, roles))
    app = create_app(store)
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
    for item_id in incident.item_ids:
        item = store.get_item(item_id)
        assert item is not None and item.status == "resolved" and item.agent == "ann"
    resolve_audit = [a for a in audit_entries(store) if a.action == "resolve"]
    assert sorted(a.item_id for a in resolve_audit if a.item_id) == incident.item_ids
    again = send(ann, f"{path}/resolve", {"reply": "Fixed, sorry!"})
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert ann.get("/api/v1/incidents").json() == []
    assert [i["id"] for i in ann.get("/api/v1/incidents?status=resolved").json()] == [incident.id]


def test_agents_list_and_resolve_incidents_from_the_command_line(
    tmp_path: Path, triager: Triager
) -> None:
    store = EmbeddedStore(tmp_path / "triage.sqlite3")
    store.ensure_schema()
    store.write_batch(triager.triage([post(i, t) for i, t in enumerate(SPIKE)], NOW))
    (incident,) = link_incidents(store, [spike_trend()], NOW)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")},
           "TRIAGE_DATA_DIR": str(tmp_path)}

    def triage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", "incidents", *args],
            env=env, capture_output=True, text=True, timeout=120,
        )

    listed = triage("list")
    assert listed.returncode == 0, listed.stderr
    assert incident.id in listed.stdout and "#acmedown" in listed.stdout
    bad = triage("resolve", "incident:nope", "--agent", "ann", "--reply", "x")
    assert bad.returncode == 2 and bad.stderr.strip() == "triage: no incident 'incident:nope'"
    done = triage("resolve", incident.id, "--agent", "ann", "--reply", "Fixed, sorry!")
    assert done.returncode == 0, done.stderr
    assert f"{len(incident.item_ids)} items resolved" in done.stdout
    assert all(
        (item := store.get_item(i)) is not None and item.status == "resolved"
        for i in incident.item_ids
    )
    assert "none open" in triage("list").stdout
    assert triage("list", "--status", "later").stderr.startswith("triage: unknown --status")


def signed_in(app: object, name: str) -> TestClient:
    client = TestClient(app)  # type: ignore[arg-type]
    answer = client.post("/api/v1/login", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    client.headers["X-CSRF-Token"] = answer.json()["csrf_token"]
    return client


def send(client: TestClient, path: str, body: object) -> Response:
    return client.post(path, json=body)
