"""The assist routes over both stores: agents read, operators edit, bad input is a clear 4xx."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from classifiers.triager import Triager
from dashboards.api import create_app
from dashboards.auth import make_account
from pipeline.outbound.replies import Repliers
from pipeline.queue.agent_queue import AgentQueue
from pipeline.records import QueueItem
from pipeline.store.interface import Store
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, tzinfo=UTC)
LATE = "My order #{n} is 6 days late and tracking hasn't moved"


class Outbox:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def reply(self, item: QueueItem, text: str) -> str:
        self.sent.append(text)
        return f"r{len(self.sent)}"


@pytest.fixture
def app_store(store: Store, triager: Triager) -> Store:
    store.write_batch(
        triager.triage([make_post(i, LATE.format(n=4839200 + i)) for i in range(8)], NOW)
    )
    queue = AgentQueue(store)
    for _ in range(6):
        item = queue.claim_next("ann")
        assert item is not None
        queue.resolve(item.id, "ann", "Sorry, your order is on its way: tracking within a day.")
    store.save_user(make_account("olga", "operator password", ["operator"]))
    store.save_user(make_account("ann", "agent password", ["agent"]))
    return store


def signed_in(store: Store, name: str, password: str, outbox: Outbox | None = None) -> TestClient:
    app = create_app(store)
    app.state.repliers = Repliers(store, {"test": outbox or Outbox()})
    client = TestClient(app)
    response = client.post("/api/v1/login", json={"name": name, "password": password})
    assert response.status_code == 200
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


def open_item(store: Store) -> QueueItem:
    [item, *_] = store.list_queue("open", 10)
    return item


def test_operators_keep_templates_and_agents_get_assistance(app_store: Store) -> None:
    item = open_item(app_store)
    ops = signed_in(app_store, "olga", "operator password")
    body = {"topic": item.topic, "language": item.language, "title": "Late",
            "body": "Sorry {handle}, order {order_number} is on its way: tracking within a day."}
    saved = ops.put("/api/v1/assist/templates/late", json=body)
    assert saved.status_code == 200 and saved.json()["updated_by"] == "olga"
    article = {"title": "Late orders", "body": "Open a carrier trace after 5 days late.",
               "language": item.language, "topics": [item.topic]}
    assert ops.put("/api/v1/assist/knowledge/late", json=article).status_code == 200
    agent = signed_in(app_store, "ann", "agent password")
    assert agent.put("/api/v1/assist/templates/late", json=body).status_code == 403
    help_ = agent.get(f"/api/v1/assist/items/{item.id}").json()
    assert len(help_["similar"]) == 5 and help_["similar"][0]["reply"].startswith("Sorry")
    [reply] = help_["replies"]
    assert reply["template_id"] == "late" and reply["missing"] == []
    assert reply["resolved_similar"] == 5 and "4839" in reply["text"]
    assert [a["id"] for a in help_["knowledge"]] == ["late"]
    assert agent.get("/api/v1/assist/templates", params={"topic": item.topic}).json()[0]["id"] == (
        "late"
    )
    assert agent.get("/api/v1/assist/items/test:nope").status_code == 404
    assert ops.delete("/api/v1/assist/templates/late").status_code == 204
    assert ops.delete("/api/v1/assist/templates/late").status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/api/v1/assist/templates/t1",
         {"topic": "delivery", "language": "en", "title": "x", "body": "Hi {name}"},
         "unknown placeholder"),
        ("/api/v1/assist/templates/bad%20id",
         {"topic": "delivery", "language": "en", "title": "x", "body": "Hi"}, "pattern"),
        ("/api/v1/assist/automation/rules/delivery/en",
         {"template_id": "nope", "threshold": 0.9}, "no reply template"),
        ("/api/v1/assist/automation/rules/delivery/en",
         {"template_id": "nope", "threshold": 0.2}, "threshold"),
        ("/api/v1/assist/automation/settings", {"enabled": True, "daily_cap": -1}, "daily_cap"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    app_store: Store, path: str, body: dict[str, object], says: str
) -> None:
    response = signed_in(app_store, "olga", "operator password").put(path, json=body)
    assert 400 <= response.status_code < 500
    assert says in str(response.json()["detail"])


def test_automation_through_the_api_is_audited_and_reversible(app_store: Store) -> None:
    item = open_item(app_store)
    outbox = Outbox()
    ops = signed_in(app_store, "olga", "operator password", outbox)
    body = {"topic": item.topic, "language": item.language, "title": "Late",
            "body": "Sorry, order {order_number} is on its way."}
    assert ops.put("/api/v1/assist/templates/late", json=body).status_code == 200
    rule = {"template_id": "late", "threshold": 0.5, "max_negative": 1.0}
    path = f"/api/v1/assist/automation/rules/{item.topic}/{item.language}"
    assert ops.put(path, json=rule).status_code == 200
    assert ops.post("/api/v1/assist/automation/run").json() == []  # off by default
    settings = {"enabled": True, "daily_cap": 1}
    assert ops.put("/api/v1/assist/automation/settings", json=settings).status_code == 200
    decisions = ops.post("/api/v1/assist/automation/run").json()
    assert [d["automated"] for d in decisions] == [True, False]
    assert "daily cap" in decisions[1]["reason"] and len(outbox.sent) == 1
    view = ops.get("/api/v1/assist/automation").json()
    assert view["sent_today"] == 1 and view["settings"]["enabled"] is True
    done = decisions[0]["item_id"]
    agent = signed_in(app_store, "ann", "agent password")
    assert agent.get("/api/v1/assist/automation").status_code == 403
    back = agent.post(f"/api/v1/assist/items/{done}/reopen", json={"reason": "wrong answer"})
    assert back.status_code == 200 and back.json()["status"] == "open"
    again = agent.post(f"/api/v1/assist/items/{done}/reopen", json={"reason": "again"})
    assert again.status_code == 409 and "not resolved" in again.json()["detail"]
    [report] = ops.get("/api/v1/assist/automation/reopened").json()
    assert report["item_id"] == done and report["reopened_by"] == "ann"
    ours = {"claim", "resolve", "auto_reply", "reopen"}  # the SLA watch may add its own entries
    actions = [e.action for e in app_store.audit_of_items([done]) if e.action in ours]
    assert actions[-4:] == ["claim", "resolve", "auto_reply", "reopen"]
