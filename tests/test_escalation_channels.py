"""The escalation channels against real servers on loopback: SMTP (aiosmtpd, STARTTLS and
login), and HTTP servers that record what a Twilio- or Zoom-compatible client sent."""

from __future__ import annotations

import base64
import ssl
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from pipeline.errors import TransientError
from pipeline.outbound.channels import (
    CallbackRequest,
    JitsiRooms,
    SmtpMailer,
    TwilioPhone,
    ZoomMeetings,
    mailer_from_settings,
)
from pipeline.settings import Settings
from tests.servers import SMTP_PASSWORD, SMTP_USER, Inbox, Recorder


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


def test_twilio_callback_request_is_sent_as_twilio_expects(
    provider: Recorder,
) -> None:
    provider.answers["/2010-04-01/Accounts/AC123/Calls.json"] = (201, {"sid": "CA999"})
    phone = TwilioPhone("AC123", SecretStr("tok"), "+15550000001", "+15550000002", provider.url)
    request = CallbackRequest(
        number="+447700900123",
        window_start=datetime(2026, 11, 2, 14, tzinfo=UTC),
        window_end=datetime(2026, 11, 2, 15, tzinfo=UTC),
        reason="Your refund <order 42>",
    )
    assert phone.request_callback(request) == "CA999"
    [call] = provider.requests
    assert call.path == "/2010-04-01/Accounts/AC123/Calls.json"
    assert call.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
    form = call.form()
    assert form["To"] == "+447700900123" and form["From"] == "+15550000001"
    assert form["Twiml"] == (
        "<Response><Say>Your refund &lt;order 42&gt;</Say><Dial>+15550000002</Dial></Response>"
    )


def test_a_refused_callback_is_a_clear_error(provider: Recorder) -> None:
    provider.answers["/2010-04-01"] = (401, {"message": "Authenticate"})
    phone = TwilioPhone("AC123", SecretStr("bad"), "+15550000001", "+15550000002", provider.url)
    request = CallbackRequest(
        number="+447700900123",
        window_start=datetime(2026, 11, 2, 14, tzinfo=UTC),
        window_end=datetime(2026, 11, 2, 15, tzinfo=UTC),
        reason="r",
    )
    with pytest.raises(TransientError, match="401"):
        phone.request_callback(request)


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
