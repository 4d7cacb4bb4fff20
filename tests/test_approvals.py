"""Goodwill approvals on both stores: the limit, the daily cap, one decision, every step audited;
and the API's roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.queue.agent_queue import AgentQueue, NotHolder
from pipeline.queue.approvals import AlreadyDecided, Approvals, GoodwillRequest, NotASupervisor
from pipeline.store.interface import Store
from tests.helpers import embedded_settings, make_post

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
PASSWORD = "a long approvals password"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def setup(store: Store, triager: Triager) -> tuple[AgentQueue, Approvals, Clock, list[str]]:
    store.write_batch(triager.triage([make_post(i) for i in range(8)], NOW))
    clock = Clock()
    queue = AgentQueue(store, clock=clock)
    held = []
    for _ in range(3):
        item = queue.claim_next("ann")
        assert item is not None
        held.append(item.id)
    return queue, Approvals(queue, limit=250, daily_cap=400, currency="EUR"), clock, held


def test_limit_cap_and_one_decision(store: Store, triager: Triager) -> None:
    _, approvals, clock, (first, second, third) = setup(store, triager)
    small = approvals.request(first, "ann", GoodwillRequest(amount=200))
    assert small.status == "granted" and small.why == ""
    big = approvals.request(first, "ann", GoodwillRequest(kind="refund", amount=251))
    assert big.status == "pending" and "over the 250 EUR limit" in big.why
    # 200 granted today: another 250 would pass the 400 cap, though it is within the limit
    capped = approvals.request(second, "ann", GoodwillRequest(amount=250))
    assert capped.status == "pending" and "daily cap of 400 EUR (200 granted today)" in capped.why
    assert approvals.request(second, "ann", GoodwillRequest(amount=200)).status == "granted"
    assert approvals.granted_today("ann", clock.now) == 400
    assert {a.id for a in approvals.find(status="pending")} == {big.id, capped.id}

    with pytest.raises(NotASupervisor):
        approvals.decide(big.id, "ann", True, "my own")
    approved = approvals.decide(big.id, "sue", True, "fire: refund in full")
    assert approved.status == "approved" and approved.decided_by == "sue"
    with pytest.raises(AlreadyDecided, match="already approved by sue"):
        approvals.decide(big.id, "max", False, "too late")
    denied = approvals.decide(capped.id, "max", False, "enough for today")
    assert denied.status == "denied"
    got = approvals.get(capped.id)
    assert got is not None and got.decision_reason == "enough for today"
    # an approved request counts against the cap; a denied one does not; a new day starts at 0
    assert approvals.granted_today("ann", clock.now) == 651
    clock.now = NOW + timedelta(days=1)
    assert approvals.granted_today("ann", clock.now) == 0

    with pytest.raises(NotHolder):
        approvals.request(third, "bob", GoodwillRequest(amount=10))
    actions = [(e.action, e.actor) for e in store.audit_of_items([first])]
    assert ("goodwill_granted", "ann") in actions
    assert ("goodwill_pending", "ann") in actions
    assert ("goodwill_approved", "sue") in actions
    assert ("goodwill_denied", "max") in [(e.action, e.actor) for e in store.audit_of_items(
        [second])]


def test_the_api_keeps_decisions_for_supervisors(store: Store, triager: Triager) -> None:
    store.write_batch(triager.triage([make_post(i) for i in range(4)], NOW))
    for name, roles in (("ann", ["agent"]), ("sue", ["supervisor"]), ("root", ["admin"])):
        store.save_user(make_account(name, PASSWORD, roles))
    app = create_app(store, embedded_settings())

    def client(name: str) -> tuple[TestClient, dict[str, str]]:
        c = TestClient(app)
        r = c.post("/api/v1/login", json={"name": name, "password": PASSWORD})
        assert r.status_code == 200
        return c, {"X-CSRF-Token": r.json()["csrf_token"]}

    ann, ann_h = client("ann")
    sue, sue_h = client("sue")
    root, root_h = client("root")
    assert root.put("/api/v1/agents/ann", json={}, headers=root_h).status_code == 200
    claimed = ann.post("/api/v1/queue/next", headers=ann_h)
    assert claimed.status_code == 200, claimed.text
    item = claimed.json()["item"]["id"]
    asked = ann.post(f"/api/v1/items/{item}/goodwill", json={"amount": 500}, headers=ann_h)
    assert asked.status_code == 201 and asked.json()["status"] == "pending"
    approval = asked.json()["id"]
    assert ann.post(f"/api/v1/items/{item}/goodwill", json={"amount": -1}, headers=ann_h)\
        .status_code == 422
    assert sue.post(f"/api/v1/items/{item}/goodwill", json={"amount": 5}, headers=sue_h)\
        .status_code == 403
    assert ann.post(f"/api/v1/approvals/{approval}/approve", json={"reason": "me"},
                    headers=ann_h).status_code == 403
    assert [a["id"] for a in sue.get("/api/v1/approvals?status=pending").json()] == [approval]
    short = sue.post(f"/api/v1/approvals/{approval}/deny", json={"reason": ""}, headers=sue_h)
    assert short.status_code == 422
    done = sue.post(f"/api/v1/approvals/{approval}/deny", json={"reason": "too much"},
                    headers=sue_h)
    assert done.status_code == 200 and done.json()["status"] == "denied"
    again = root.post(f"/api/v1/approvals/{approval}/approve", json={"reason": "overrule"},
                      headers=root_h)
    assert again.status_code == 409
    assert ann.get(f"/api/v1/approvals/{approval}").json()["decision_reason"] == "too much"
    assert sue.get("/api/v1/approvals/nope").status_code == 404
