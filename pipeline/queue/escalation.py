"""Moving a conversation to e-mail, a phone callback or video, without asking anyone.

Agents need no approval inside the policy: at most ``per_agent_hour`` escalations per agent per
clock hour, and goodwill credit up to ``credit_limit`` per escalation. The hourly quota is a set
of numbered tokens inserted under unique keys, so concurrent requests cannot overspend it on any
store; a token is given back when the escalation fails anywhere after it was taken (the channel,
the reply to the customer, the record), so only an escalation that happened spends one. Every
escalation, and every refusal, is in the audit log with who, what, when and why; the customer is
told on the channel they wrote on.

A phone callback honours its window: the customer was promised a call between ``window_start``
and ``window_end``, so a window that has not begun is recorded as ``scheduled`` and
``place_due_callbacks`` (run every minute by the SLA watchdog flow) places it once the window
opens; one whose window passed unplaced is ``missed``, for an agent to follow up by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import EmailStr, Field, model_validator

from pipeline.errors import TransientError
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
PLACING = "callback_placing"
Channel = Literal["email", "phone", "video"]
CallState = Literal["scheduled", "placed", "missed", "manual"]


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
    call: CallState | None = Field(
        default=None,
        description="phone only: scheduled (waits for its window), placed, missed (the window"
        " passed unplaced) or manual (no telephony account: the agent dials the tel: link)",
    )
    placed_at: AwareDatetime | None = None
    call_error: str | None = Field(default=None, description="the last failed attempt")


class CallbackSweep(Record):
    placed: list[str] = Field(default_factory=list)
    missed: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict, description="id: why; tried again")


class PolicyRefused(QueueError):
    status = 403


class RateLimited(QueueError):
    status = 429


class ChannelUnavailable(QueueError):
    status = 503


class PastWindow(QueueError):
    status = 422


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
        token = self._take_quota(agent, now)
        if token is None:
            self._refused(agent, item, now, request, "hourly limit")
            raise RateLimited(
                f"{agent} has used all {self.per_agent_hour} escalations of this hour"
            )
        try:
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
                    "call": record.call,
                },
            )
        except BaseException:
            self.store.delete_record(QUOTA, token)
            raise
        return record

    def _carry_out(
        self, item: QueueItem, agent: str, now: datetime, request: EscalationRequest
    ) -> EscalationRecord:
        link = reference = contact = None
        call: CallState | None = None
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
            if isinstance(self.phone, ManualDialling):
                call = "manual"
            elif request.window_end <= now:
                raise PastWindow("the callback window is already over")
            elif request.window_start <= now:
                reference, call = self.phone.request_callback(callback), "placed"
            else:
                call = "scheduled"
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
            call=call,
            placed_at=now if call == "placed" else None,
        )

    def _take_quota(self, agent: str, now: datetime) -> str | None:
        """The key of the token this escalation took, or None when the hour's are all taken."""
        hour = now.astimezone(UTC).strftime("%Y%m%d%H")
        for n in range(self.per_agent_hour):
            key = f"{agent}:{hour}:{n}"
            if self.store.add_record(QUOTA, key, {"agent": agent, "hour": hour}):
                return key
        return None

    def callbacks(self, call: CallState | None = None) -> list[EscalationRecord]:
        """Phone escalations, oldest first; with ``call``, only those in that state."""
        where: dict[str, object] = {"channel": "phone"}
        if call is not None:
            where["call"] = call
        return [EscalationRecord.model_validate(d) for d in self.store.find_records(
            ESCALATION, where
        )]

    def place_due_callbacks(self, now: datetime | None = None) -> CallbackSweep:
        """Place every scheduled callback whose window has opened, once: a ``callback_placing``
        token inserted under the escalation's id makes one sweeper the caller even when two run
        at once; a failed attempt gives the token back and is tried again on the next sweep
        while the window lasts."""
        now = now or self.queue.clock()
        done = CallbackSweep()
        for record in self.callbacks("scheduled"):
            assert record.window_start and record.window_end and record.contact
            if record.window_start > now:
                continue
            if record.window_end <= now:
                self._save_call(record, "missed", "system", {"why": "window passed unplaced"})
                done.missed.append(record.id)
                continue
            if not self.store.add_record(PLACING, record.id, {"at": now.isoformat()}):
                continue
            callback = CallbackRequest(
                number=record.contact,
                window_start=record.window_start,
                window_end=record.window_end,
                reason=record.reason,
            )
            try:
                reference = self.phone.request_callback(callback)
            except TransientError as exc:
                self.store.delete_record(PLACING, record.id)
                self.store.put_record(ESCALATION, record.id, {
                    **record.model_dump(mode="json"), "call_error": str(exc)
                })
                done.failed[record.id] = str(exc)
                continue
            placed = record.model_copy(update={"reference": reference, "placed_at": now})
            self._save_call(placed, "placed", "system", {"reference": reference})
            done.placed.append(record.id)
        return done

    def _save_call(
        self, record: EscalationRecord, call: CallState, actor: str, detail: dict[str, object]
    ) -> None:
        saved = record.model_copy(update={"call": call, "call_error": None})
        self.store.put_record(ESCALATION, saved.id, saved.model_dump(mode="json"))
        self.store.record_audit([AuditEntry(
            at=self.queue.clock(),
            actor=actor,
            action=f"callback_{call}",
            item_id=record.item_id,
            detail={"escalation": record.id, **detail},
        )])

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

