"""Moving a conversation to e-mail, a phone callback or video, without asking anyone.

Agents need no approval inside the policy: at most ``per_agent_hour`` escalations per agent per
clock hour, and goodwill credit up to ``credit_limit`` per escalation. The hourly quota is a set
of numbered tokens inserted under unique keys, so concurrent requests cannot overspend it on any
store. Every escalation, and every refusal, is in the audit log with who, what, when and why;
the customer is told on the channel they wrote on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import EmailStr, Field, model_validator

from pipeline.outbound.channels import (
    E164,
    CallbackRequest,
    JitsiRooms,
    Mailer,
    ManualDialling,
    PhoneProvider,
    VideoProvider,
    tel_link,
)
from pipeline.queue.agent_queue import AgentQueue, QueueError, UnknownItem
from pipeline.records import AuditEntry, AwareDatetime, QueueItem, Record

ESCALATION = "escalation"
QUOTA = "escalation_quota"
Channel = Literal["email", "phone", "video"]


class EscalationRequest(Record):
    channel: Channel
    reason: str = Field(min_length=3, max_length=1000, description="why, for the audit log")
    email: EmailStr | None = Field(default=None, description="for e-mail")
    phone: str | None = Field(default=None, pattern=E164, description="E.164, for a callback")
    window_start: AwareDatetime | None = Field(default=None, description="callback window")
    window_end: AwareDatetime | None = None
    video_start: AwareDatetime | None = Field(default=None, description="None: meet now")
    credit: float = Field(default=0.0, ge=0, description="goodwill credit granted")
    message: str | None = Field(default=None, max_length=2000, description="e-mail body")

    @model_validator(mode="after")
    def _channel_fields(self) -> EscalationRequest:
        if self.channel == "email" and self.email is None:
            raise ValueError("an e-mail escalation needs the customer's e-mail address")
        if self.channel == "phone":
            if self.phone is None or self.window_start is None or self.window_end is None:
                raise ValueError("a callback needs phone, window_start and window_end")
            if self.window_end <= self.window_start:
                raise ValueError("the callback window must end after it starts")
        return self


class EscalationRecord(Record):
    id: str
    item_id: str
    author_id: str
    source: str
    channel: Channel
    status: Literal["open", "closed"] = "open"
    by: str
    at: AwareDatetime
    reason: str
    credit: float
    contact: str | None = None
    link: str | None = None
    reference: str | None = None
    window_start: AwareDatetime | None = None
    window_end: AwareDatetime | None = None
    reply_id: str | None = None


class PolicyRefused(QueueError):
    status = 403


class RateLimited(QueueError):
    status = 429


class ChannelUnavailable(QueueError):
    status = 503


class Escalations:
    def __init__(
        self,
        queue: AgentQueue,
        mailer: Mailer | None = None,
        phone: PhoneProvider | None = None,
        video: VideoProvider | None = None,
        per_agent_hour: int = 5,
        credit_limit: float = 50.0,
    ) -> None:
        self.queue = queue
        self.store = queue.store
        self.mailer = mailer
        self.phone = phone or ManualDialling()
        self.video = video or JitsiRooms()
        self.per_agent_hour = per_agent_hour
        self.credit_limit = credit_limit

    def escalate(self, item_id: str, agent: str, request: EscalationRequest) -> EscalationRecord:
        item = self.queue.held(item_id, agent)
        now = self.queue.clock()
        if request.credit > self.credit_limit:
            self._refused(agent, item, now, request, f"credit over {self.credit_limit:g}")
            raise PolicyRefused(
                f"credit {request.credit:g} is over the {self.credit_limit:g} an agent may grant"
                " without approval"
            )
        if request.channel == "email" and self.mailer is None:
            raise ChannelUnavailable("e-mail is not configured (TRIAGE_SMTP_HOST)")
        if not self._take_quota(agent, now):
            self._refused(agent, item, now, request, "hourly limit")
            raise RateLimited(
                f"{agent} has used all {self.per_agent_hour} escalations of this hour"
            )
        record = self._carry_out(item, agent, now, request)
        self.store.put_record(ESCALATION, record.id, record.model_dump(mode="json"))
        self.queue.touch(
            item,
            agent,
            "escalate",
            {
                "escalation": record.id,
                "channel": record.channel,
                "why": request.reason,
                "credit": request.credit,
                "reference": record.reference,
                "reply_id": record.reply_id,
            },
        )
        return record

    def _carry_out(
        self, item: QueueItem, agent: str, now: datetime, request: EscalationRequest
    ) -> EscalationRecord:
        link = reference = contact = None
        if request.channel == "email":
            assert self.mailer is not None and request.email is not None
            contact = str(request.email)
            body = request.message or (
                f"Hello,\n\nyou wrote to us: \"{item.text}\"\n\nWe are following up here by"
                f" e-mail so that we can help you properly.\n\n{agent}, customer care"
            )
            reference = self.mailer.send(contact, "Following up on your message", body)
            tell = "We have sent you an e-mail to follow up. Please check your inbox."
        elif request.channel == "phone":
            assert request.phone and request.window_start and request.window_end
            contact = request.phone
            callback = CallbackRequest(
                number=request.phone,
                window_start=request.window_start,
                window_end=request.window_end,
                reason=request.reason,
            )
            reference = self.phone.request_callback(callback)
            link = tel_link(request.phone)
            start, end = (t.astimezone(UTC) for t in (request.window_start, request.window_end))
            tell = (
                f"We will call you back between {start:%d %b %H:%M} and {end:%H:%M} UTC."
            )
        else:
            link = self.video.create_meeting(f"Support for {item.id}", request.video_start)
            when = (
                f" at {request.video_start.astimezone(UTC):%d %b %H:%M} UTC"
                if request.video_start
                else " now"
            )
            tell = f"Let's talk on video{when}: {link}"
        reply = self.queue.repliers.send(item, tell, agent, now, f"escalation:{request.channel}")
        return EscalationRecord(
            id=uuid.uuid4().hex,
            item_id=item.id,
            author_id=item.author_id,
            source=item.source,
            channel=request.channel,
            by=agent,
            at=now,
            reason=request.reason,
            credit=request.credit,
            contact=contact,
            link=link,
            reference=reference,
            window_start=request.window_start,
            window_end=request.window_end,
            reply_id=reply.id,
        )

    def _take_quota(self, agent: str, now: datetime) -> bool:
        hour = now.astimezone(UTC).strftime("%Y%m%d%H")
        return any(
            self.store.add_record(QUOTA, f"{agent}:{hour}:{n}", {"agent": agent, "hour": hour})
            for n in range(self.per_agent_hour)
        )

    def _refused(
        self, agent: str, item: QueueItem, now: datetime, request: EscalationRequest, why: str
    ) -> None:
        self.store.record_audit(
            [
                AuditEntry(
                    at=now,
                    actor=agent,
                    action="escalate_refused",
                    item_id=item.id,
                    detail={"channel": request.channel, "why": request.reason, "refused": why},
                )
            ]
        )

    def close(self, escalation_id: str, agent: str, outcome: str) -> EscalationRecord:
        doc = self.store.get_record(ESCALATION, escalation_id)
        if doc is None:
            raise UnknownItem(f"no escalation {escalation_id!r}")
        record = EscalationRecord.model_validate({**doc, "status": "closed"})
        self.store.put_record(ESCALATION, record.id, record.model_dump(mode="json"))
        self.store.record_audit(
            [
                AuditEntry(
                    at=self.queue.clock(),
                    actor=agent,
                    action="escalation_closed",
                    item_id=record.item_id,
                    detail={"escalation": record.id, "outcome": outcome},
                )
            ]
        )
        return record

    def for_authors(self, author_ids: list[str], status: str | None = None) -> list[
        EscalationRecord
    ]:
        where: dict[str, object] = {"author_id": author_ids}
        if status is not None:
            where["status"] = status
        found = self.store.find_records(ESCALATION, where)
        return [EscalationRecord.model_validate(d) for d in found]

