"""Phone callbacks keep their window, and only an escalation that happened spends the hourly
quota: on both stores, against the Twilio stand-in that holds every request to Twilio's
published OpenAPI description."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from classifiers.triager import Triager
from pipeline.errors import TransientError
from pipeline.outbound.channels import TwilioPhone
from pipeline.outbound.replies import NoReplier
from pipeline.queue.agent_queue import AgentQueue
from pipeline.queue.agents import AgentProfile
from pipeline.queue.escalation import (
    QUOTA,
    EscalationRequest,
    Escalations,
    PastWindow,
    RateLimited,
)
from pipeline.records import QueueItem
from pipeline.store.interface import Store
from tests.helpers import make_post
from tests.twilio_mock import TwilioMock

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ACCOUNT = "AC" + "0123456789abcdef" * 2


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(store: Store, clock: Clock, triager: Triager) -> AgentQueue:
    q = AgentQueue(store, lease=timedelta(minutes=600), clock=clock)
    q.agents.put(AgentProfile(name="ann", capacity=5))
    posts = [make_post(i).model_copy(update={"created_at": NOW - timedelta(minutes=1)})
             for i in range(3)]
    store.write_batch(triager.triage(posts, NOW))
    return q


def claim(queue: AgentQueue) -> QueueItem:
    item = queue.next_for("ann")
    assert item is not None
    return item


def callback(start: datetime, hours: float = 1.0) -> EscalationRequest:
    return EscalationRequest(
        channel="phone", reason="refund needs a call", phone="+447700900123",
        window_start=start, window_end=start + timedelta(hours=hours),
    )


def phone(twilio: TwilioMock, token: str = "tw-token") -> TwilioPhone:
    return TwilioPhone(ACCOUNT, SecretStr(token), "+15550000001", "+15550000002", twilio.url)


def test_a_callback_waits_for_its_window_and_is_placed_once(
    queue: AgentQueue, clock: Clock, twilio: TwilioMock
) -> None:
    escalations = Escalations(queue, phone=phone(twilio))
    item = claim(queue)
    record = escalations.escalate(item.id, "ann", callback(NOW + timedelta(hours=2)))
    assert record.call == "scheduled" and record.reference is None
    assert twilio.requests == []  # not placed at once: the customer was promised 11:00-12:00
    assert [c.id for c in escalations.callbacks("scheduled")] == [record.id]

    clock.now = NOW + timedelta(hours=1, minutes=59)
    assert escalations.place_due_callbacks().placed == [] and twilio.requests == []
    clock.now = NOW + timedelta(hours=2, minutes=1)
    swept = escalations.place_due_callbacks()
    assert swept.placed == [record.id] and twilio.violations == []
    [placed] = escalations.callbacks()
    assert placed.call == "placed" and placed.reference and placed.reference.startswith("CA")
    assert placed.placed_at == clock.now
    assert escalations.place_due_callbacks().placed == []  # once
    assert len(twilio.requests) == 1


def test_a_window_already_open_is_placed_at_once_and_a_past_one_refused(
    queue: AgentQueue, store: Store, twilio: TwilioMock
) -> None:
    escalations = Escalations(queue, phone=phone(twilio))
    item = claim(queue)
    now_open = escalations.escalate(item.id, "ann", callback(NOW - timedelta(minutes=5)))
    assert now_open.call == "placed" and now_open.reference is not None
    with pytest.raises(PastWindow):
        escalations.escalate(item.id, "ann", callback(NOW - timedelta(hours=3)))
    assert len(store.find_records(QUOTA)) == 1  # the refused one gave its token back
    assert twilio.violations == []


def test_a_refused_call_is_retried_in_the_window_and_missed_after_it(
    queue: AgentQueue, clock: Clock, twilio: TwilioMock
) -> None:
    escalations = Escalations(queue, phone=phone(twilio, token="wrong"))
    record = escalations.escalate(claim(queue).id, "ann", callback(NOW + timedelta(minutes=30)))
    clock.now = NOW + timedelta(minutes=31)
    failed = escalations.place_due_callbacks()
    assert list(failed.failed) == [record.id] and "401" in failed.failed[record.id]
    [waiting] = escalations.callbacks()
    assert waiting.call == "scheduled" and waiting.call_error and "401" in waiting.call_error
    escalations.phone = phone(twilio)
    clock.now = NOW + timedelta(minutes=32)
    assert escalations.place_due_callbacks().placed == [record.id]

    late = escalations.escalate(claim(queue).id, "ann", callback(NOW + timedelta(hours=1)))
    clock.now = NOW + timedelta(hours=3)
    assert escalations.place_due_callbacks().missed == [late.id]
    assert {c.id: c.call for c in escalations.callbacks()} == {
        record.id: "placed", late.id: "missed"
    }
    assert twilio.violations == []


def test_the_quota_is_spent_only_by_an_escalation_that_happened(
    queue: AgentQueue, store: Store, twilio: TwilioMock
) -> None:
    escalations = Escalations(queue, phone=phone(twilio, token="wrong"), per_agent_hour=1)
    item = claim(queue)
    with pytest.raises(TransientError, match="401"):  # the call, placed at once, is refused
        escalations.escalate(item.id, "ann", callback(NOW))
    assert store.find_records(QUOTA) == []
    del queue.repliers.by_source["test"]  # now the reply to the customer cannot be sent
    escalations.phone = phone(twilio)
    with pytest.raises(NoReplier):
        escalations.escalate(item.id, "ann", EscalationRequest(channel="video", reason="demo"))
    assert store.find_records(QUOTA) == []
    queue.repliers.by_source["test"] = queue.repliers.by_source["webhook"]
    escalations.escalate(item.id, "ann", EscalationRequest(channel="video", reason="demo"))
    with pytest.raises(RateLimited):
        escalations.escalate(item.id, "ann", EscalationRequest(channel="video", reason="again"))
    assert len(store.find_records(QUOTA)) == 1
