"""The SLA watchdog flow runs the queue's sweep, and places due phone callbacks (with the Twilio
stand-in that validates against Twilio's contract), against the real FerretDB."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from classifiers.triager import Triager
from flows.sla_watchdog import sla_watchdog
from pipeline.queue.escalation import ESCALATION, EscalationRecord
from pipeline.records import Author, Post, utcnow
from pipeline.settings import Settings
from pipeline.store import open_store
from tests.flow_runs.conftest import run_artifacts
from tests.twilio_mock import TwilioMock

pytestmark = [pytest.mark.mongo, pytest.mark.slow]


def post(i: int, age: timedelta, text: str) -> Post:
    return Post(
        source="test",
        native_id=str(i),
        author=Author(id=f"a{i}"),
        text=text,
        created_at=utcnow() - age,
    )


def test_expired_leases_return_and_breaches_are_raised_once(
    deployment_env: dict[str, str], triager: Triager
) -> None:
    now = utcnow()
    store = open_store(Settings.from_environment())
    store.ensure_schema()
    old = post(1, timedelta(days=4), "My order #4839201 is 6 days late and tracking hasn't moved")
    fresh = post(2, timedelta(seconds=5), "You charged my card TWICE for order 99812, fix this")
    store.write_batch(triager.triage([old, fresh], now))
    assert store.count("queue") == 2
    # ann claimed the fresh item eleven minutes ago under a ten-minute lease
    held = store.claim_next("ann", now - timedelta(minutes=1), now - timedelta(minutes=11))
    assert held is not None

    first = sla_watchdog(return_state=True)

    assert first.is_completed(), first.message
    done = first.result()
    assert done["released"] == [held.id]
    assert store.get_item(held.id).status == "open"  # type: ignore[union-attr]
    breached = {item for item, _ in done["breaches"]}
    assert breached == {old.id}  # four days old: past every target; the fresh one is not
    counts = json.loads(run_artifacts(first)["sla-watchdog"].data)[0]
    assert counts["released"] == 1 and counts["breaches"] == len(done["breaches"])

    again = sla_watchdog(return_state=True).result()
    assert again["breaches"] == [] and again["released"] == []  # each breach is raised once
    store.close()


def test_bad_sla_targets_fail_the_run(
    deployment_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_SLA_FIRST_RESPONSE_MINUTES", '{"P1": 15}')
    state = sla_watchdog(return_state=True)
    assert state.is_failed()
    assert "lack bands P2, P3, P4" in state.message


def test_the_watchdog_places_a_callback_once_its_window_opens(
    deployment_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, twilio: TwilioMock
) -> None:
    account = "AC" + "0123456789abcdef" * 2
    for name, value in {"ACCOUNT_SID": account, "AUTH_TOKEN": "tw-token", "BASE_URL": twilio.url,
                        "FROM_NUMBER": "+15550000001", "AGENT_NUMBER": "+15550000002"}.items():
        monkeypatch.setenv(f"TRIAGE_TWILIO_{name}", value)
    store = open_store(Settings.from_environment())
    store.ensure_schema()
    now = utcnow()
    due, later = (EscalationRecord(
        id=f"{n:032x}", item_id=f"test:{n}", author_id="a1", source="test", channel="phone",
        by="ann", at=now, reason="refund", credit=0, contact="+447700900123",
        window_start=start, window_end=start + timedelta(hours=1), call="scheduled",
    ) for n, start in ((1, now - timedelta(minutes=1)), (2, now + timedelta(hours=1))))
    for record in (due, later):
        store.put_record(ESCALATION, record.id, record.model_dump(mode="json"))

    done = sla_watchdog(return_state=True).result()

    assert done["callbacks_placed"] == [due.id] and done["callbacks_failed"] == []
    assert twilio.violations == [] and len(twilio.requests) == 1
    assert twilio.requests[0].form()["To"] == "+447700900123"
    placed = store.get_record(ESCALATION, due.id)
    assert placed is not None and placed["call"] == "placed"
    assert store.get_record(ESCALATION, later.id)["call"] == "scheduled"  # type: ignore[index]
    store.close()
