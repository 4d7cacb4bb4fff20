"""The escalation channels against real servers on loopback: SMTP (aiosmtpd, STARTTLS and
login), a Twilio stand-in that validates every request against Twilio's published OpenAPI
description (tests/twilio_mock.py), and an HTTP server that records what a Zoom-compatible
client sent."""

from __future__ import annotations

import base64
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pipeline.errors import ConfigError, TransientError
from pipeline.outbound.channels import (
    CallbackRequest,
    JitsiRooms,
    ManualDialling,
    SmtpMailer,
    TwilioPhone,
    ZoomMeetings,
    mailer_from_settings,
    phone_from_settings,
)
from pipeline.settings import Settings
from tests.servers import SMTP_PASSWORD, SMTP_USER, Inbox, Recorder
from tests.twilio_mock import TwilioMock


def mailer_for(box: Inbox, password: str = SMTP_PASSWORD) -> SmtpMailer:
    return SmtpMailer(
        box.host,
        box.port,
        sender="care@acme.example",
        username=SMTP_USER,
        password=SecretStr(password),
        tls_context=ssl.create_default_context(cafile=str(box.ca_file)),
    )


def test_mail_goes_through_starttls_and_login(inbox: Inbox) -> None:
    message_id = mailer_for(inbox).send("kim@example.org", "Following up", "Hello Kim,\nbody")
    [message] = inbox.messages
    assert inbox.recipients == [["kim@example.org"]]
    assert message["Subject"] == "Following up" and message["From"] == "care@acme.example"
    assert message["Message-ID"] == message_id
    assert "Hello Kim," in message.get_payload()


def test_mail_settings_build_the_same_client(inbox: Inbox) -> None:
    settings = Settings(
        smtp_host=inbox.host,
        smtp_port=inbox.port,
        smtp_username=SMTP_USER,
        smtp_password=SecretStr(SMTP_PASSWORD),
        smtp_ca_file=inbox.ca_file,
        smtp_from="care@acme.example",
    )
    mailer = mailer_from_settings(settings)
    assert mailer is not None
    mailer.send("kim@example.org", "Hi", "text")
    assert len(inbox.messages) == 1
    assert mailer_from_settings(Settings()) is None


def test_wrong_smtp_password_or_untrusted_server_is_a_clear_error(
    inbox: Inbox,
) -> None:
    with pytest.raises(TransientError, match=r"SMTP 127\.0\.0\.1:\d+ failed"):
        mailer_for(inbox, "wrong").send("kim@example.org", "s", "b")
    untrusted = SmtpMailer(inbox.host, inbox.port, username=SMTP_USER,
                           password=SecretStr(SMTP_PASSWORD))
    with pytest.raises(TransientError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.send("kim@example.org", "s", "b")
    assert inbox.messages == []


ACCOUNT = "AC" + "0123456789abcdef" * 2


def window(hours_from_now: float = 0.0, length_h: float = 1.0) -> tuple[datetime, datetime]:
    start = datetime.now(UTC) + timedelta(hours=hours_from_now)
    return start, start + timedelta(hours=length_h)


def test_twilio_callback_request_meets_twilios_published_contract(twilio: TwilioMock) -> None:
    phone = TwilioPhone(ACCOUNT, SecretStr("tw-token"), "+15550000001", "+15550000002", twilio.url)
    start, end = window()
    request = CallbackRequest(
        number="+447700900123", window_start=start, window_end=end, reason="Your refund <order 42>"
    )
    reference = phone.request_callback(request)
    assert twilio.violations == []
    [call] = twilio.requests
    assert reference is not None and reference.startswith("CA") and len(reference) == 34
    assert call.method == "post" and call.path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert call.basic_auth() == (ACCOUNT, "tw-token")
    form = call.form()
    assert form["To"] == "+447700900123" and form["From"] == "+15550000001"
    assert form["Twiml"] == (
        "<Response><Say>Your refund &lt;order 42&gt;</Say><Dial>+15550000002</Dial></Response>"
    )


def test_the_twilio_stand_in_refuses_what_twilio_would(twilio: TwilioMock) -> None:
    """The contract check can fail: a malformed account SID, a missing field, a wrong type."""
    short_sid = TwilioPhone("AC123", SecretStr("tw-token"), "+15550000001", "+1555", twilio.url)
    start, end = window()
    request = CallbackRequest(number="+447700900123", window_start=start, window_end=end,
                              reason="r")
    with pytest.raises(TransientError, match="400"):
        short_sid.request_callback(request)
    url = f"{twilio.url}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    no_from = httpx.post(url, data={"To": "+447700900123"}, auth=(ACCOUNT, "tw-token"))
    bad_timeout = httpx.post(
        url, data={"To": "+447700900123", "From": "+15550000001", "Timeout": "soon"},
        auth=(ACCOUNT, "tw-token"),
    )
    assert (no_from.status_code, bad_timeout.status_code) == (400, 400)
    assert len(twilio.violations) == 3
    assert "AccountSid" in twilio.violations[0] and "From" in twilio.violations[1]


def test_a_refused_callback_is_a_clear_error(twilio: TwilioMock) -> None:
    phone = TwilioPhone(ACCOUNT, SecretStr("bad"), "+15550000001", "+15550000002", twilio.url)
    start, end = window()
    request = CallbackRequest(number="+447700900123", window_start=start, window_end=end,
                              reason="r")
    with pytest.raises(TransientError, match="401"):
        phone.request_callback(request)
    assert twilio.violations == []


def test_zoom_meeting_with_server_to_server_oauth(provider: Recorder) -> None:
    provider.answers["/oauth/token"] = (200, {"access_token": "zt-1", "expires_in": 3599})
    provider.answers["/v2/users/me/meetings"] = (
        201, {"id": 8512345, "join_url": "https://zoom.example/j/8512345?pwd=x"}
    )
    zoom = ZoomMeetings("acct", "cid", SecretStr("csecret"), provider.url,
                        f"{provider.url}/oauth/token")
    start = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    assert zoom.create_meeting("Support for x:1", start) == "https://zoom.example/j/8512345?pwd=x"
    token, meeting = provider.requests
    assert token.path == "/oauth/token?grant_type=account_credentials&account_id=acct"
    assert token.headers["authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert meeting.headers["authorization"] == "Bearer zt-1"
    assert meeting.json() == {
        "topic": "Support for x:1", "type": 2, "start_time": "2026-11-02T14:30:00Z"
    }


def test_jitsi_rooms_are_unguessable_and_distinct() -> None:
    rooms = JitsiRooms("https://meet.example.org/")
    a, b = rooms.create_meeting("t", None), rooms.create_meeting("t", None)
    assert a != b and a.startswith("https://meet.example.org/support-")
    assert len(a.removeprefix("https://meet.example.org/support-")) >= 16


def test_twilio_settings_are_checked_before_any_call() -> None:
    base: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT, "twilio_auth_token": SecretStr("t"),
        "twilio_from_number": "+15550000001", "twilio_agent_number": "+15550000002",
    }
    assert isinstance(phone_from_settings(Settings(**base)), TwilioPhone)
    assert isinstance(phone_from_settings(Settings()), ManualDialling)
    with pytest.raises(ConfigError, match="AC followed by 32 hex digits"):
        phone_from_settings(Settings(**{**base, "twilio_account_sid": "AC123"}))
    with pytest.raises(ConfigError, match="_AGENT_NUMBER"):
        phone_from_settings(Settings(**{**base, "twilio_agent_number": None}))
