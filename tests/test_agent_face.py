"""The agent console's form actions over HTTP, on both stores: CSRF, release, relabel, refusals."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.store.interface import Store
from pipeline.trends.incidents import Incident, save
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, tzinfo=UTC)
PASSWORD = "agent password"


def agent(store: Store, name: str) -> tuple[TestClient, str]:
    """A signed-in agent's client and the CSRF token its pages carry."""
    client = TestClient(create_app(store))
    client.post("/api/v1/login", json={"name": name, "password": PASSWORD})
    page = client.get("/agent")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and token
    return client, token.group(1)


def test_release_relabel_and_refusals(store: Store, triager: Triager) -> None:
    store.write_batch(triager.triage([make_post(i) for i in range(12)], NOW))
    for name in ("ann", "bob"):
        store.save_user(make_account(name, PASSWORD, ["agent"]))
    ann, token = agent(store, "ann")
    assert ann.post("/agent/claim", follow_redirects=False).status_code == 403  # no CSRF token
    claimed = ann.post("/agent/claim", data={"csrf_token": token}, follow_redirects=False)
    assert claimed.status_code == 303
    item_id = claimed.headers["location"].split("item=")[1]
    item = store.get_item(item_id)
    assert item is not None and item.agent == "ann" and item.status == "claimed"

    bob, bob_token = agent(store, "bob")
    refused = bob.post(f"/agent/items/{item_id}/release", data={"csrf_token": bob_token})
    assert "bob does not hold" in refused.text
    still = store.get_item(item_id)
    assert still is not None and still.agent == "ann"

    wrong = ann.post(
        f"/agent/items/{item_id}/relabel", data={"csrf_token": token, "topic": "weather"}
    )
    assert wrong.status_code == 422
    new_topic = "billing" if item.topic != "billing" else "delivery"
    ann.post(f"/agent/items/{item_id}/relabel", data={"csrf_token": token, "topic": new_topic})
    [correction] = store.list_corrections()
    assert correction.predicted["topic"] == item.topic and correction.label == new_topic
    assert correction.task == "topic" and correction.agent == "ann"

    released = ann.post(f"/agent/items/{item_id}/release", data={"csrf_token": token})
    assert f"{item_id} released" in released.text
    after = store.get_item(item_id)
    assert after is not None and after.status == "open" and after.agent is None


def test_an_incident_is_resolved_with_one_reply(store: Store, triager: Triager) -> None:
    store.write_batch(triager.triage([make_post(i) for i in range(12)], NOW))
    store.save_user(make_account("ann", PASSWORD, ["agent"]))
    members = [i.id for i in store.list_queue("open", 3)]
    save(
        store,
        Incident(
            id="inc-1",
            trend_id="trend-1",
            what="hashtag=#acmedown",
            item_ids=members,
            count=len(members),
            suggested_reply="We know, we are fixing it.",
            created_at=NOW,
            updated_at=NOW,
        ),
    )
    ann, token = agent(store, "ann")
    page = ann.get("/agent")
    assert 'data-incident="inc-1"' in page.text and "We know, we are fixing it." in page.text
    done = ann.post(
        "/agent/incidents/inc-1/resolve", data={"csrf_token": token, "reply": "Fixed now, sorry!"}
    )
    assert "incident inc-1: 3 items resolved" in done.text
    for item_id in members:
        item = store.get_item(item_id)
        assert item is not None and item.status == "resolved"
        assert item.resolution is not None and item.resolution.reply == "Fixed now, sorry!"
    assert 'data-incident="inc-1"' not in ann.get("/agent").text
