"""The channels a conversation can move to: e-mail (SMTP), a phone callback, a video meeting.

E-mail is real SMTP through smtplib (STARTTLS or implicit TLS, optional login). Phone and video
are provider interfaces, each with a REST implementation compatible with the service most teams
use (Twilio's Calls API, Zoom's meetings API) and a default that needs no account: a ``tel:``
link for manual dialling, and a Jitsi-style room URL.
"""

from __future__ import annotations

import re
import secrets
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING, Protocol
from xml.sax.saxutils import escape

import httpx
from pydantic import Field, SecretStr

from pipeline.errors import ConfigError, TransientError
from pipeline.records import AwareDatetime, Record

if TYPE_CHECKING:
    from pipeline.settings import Settings

E164 = r"^\+[1-9][0-9]{6,14}$"
TWILIO_ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"  # as Twilio's OpenAPI description has it
HTTP_TIMEOUT_S = 10.0


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> str:
        """Deliver one message; its Message-ID."""


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int = 587,
        sender: str = "support@example.com",
        username: str | None = None,
        password: SecretStr | None = None,
        starttls: bool = True,
        implicit_tls: bool = False,
        tls_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.starttls, self.implicit_tls = starttls, implicit_tls
        self.tls_context = tls_context or ssl.create_default_context()
        self.timeout_s = timeout_s

    def send(self, to: str, subject: str, body: str) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(body)
        try:
            smtp: smtplib.SMTP
            if self.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=self.tls_context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.starttls and not self.implicit_tls:
                    smtp.starttls(context=self.tls_context)
                if self.username:
                    password = self.password.get_secret_value() if self.password else ""
                    smtp.login(self.username, password)
                smtp.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP {self.host}:{self.port} failed: {exc}") from exc
        return str(message["Message-ID"])


class CallbackRequest(Record):
    number: str = Field(pattern=E164, description="E.164, e.g. +442071838750")
    window_start: AwareDatetime
    window_end: AwareDatetime
    reason: str = Field(min_length=1, max_length=500)


class PhoneProvider(Protocol):
    def request_callback(self, request: CallbackRequest) -> str | None:
        """Ask for the call; the provider's reference, or None for manual dialling."""


def tel_link(number: str) -> str:
    return f"tel:{number}"


class ManualDialling:
    """No telephony account: the agent dials the ``tel:`` link in the window."""

    def request_callback(self, request: CallbackRequest) -> str | None:
        return None


class TwilioPhone:
    """Twilio's Calls API (or any service that speaks it): a call to the customer that, once
    answered, says why and connects to the agents' line. Every request it makes is checked
    against Twilio's published OpenAPI description in tests/twilio_mock.py. The Calls API
    places a call at once, so the window is kept by whoever calls this (the escalation
    schedules it; the SLA watchdog places it when the window opens)."""

    def __init__(
        self,
        account_sid: str,
        auth_token: SecretStr,
        from_number: str,
        agent_number: str,
        base_url: str = "https://api.twilio.com",
    ) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.from_number, self.agent_number = from_number, agent_number
        self.base_url = base_url.rstrip("/")

    def request_callback(self, request: CallbackRequest) -> str | None:
        twiml = (
            f"<Response><Say>{escape(request.reason)}</Say>"
            f"<Dial>{escape(self.agent_number)}</Dial></Response>"
        )
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Calls.json"
        try:
            response = httpx.post(
                url,
                data={"To": request.number, "From": self.from_number, "Twiml": twiml},
                auth=(self.account_sid, self.auth_token.get_secret_value()),
                timeout=HTTP_TIMEOUT_S,
            )
            response.raise_for_status()
            return str(response.json()["sid"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise TransientError(f"phone provider refused the callback: {exc}") from exc


class VideoProvider(Protocol):
    def create_meeting(self, topic: str, start: datetime | None) -> str:
        """A join URL."""


class JitsiRooms:
    """A hard-to-guess room on a Jitsi server: needs no account or API call."""

    def __init__(self, base_url: str = "https://meet.jit.si", prefix: str = "support") -> None:
        self.base_url, self.prefix = base_url.rstrip("/"), prefix

    def create_meeting(self, topic: str, start: datetime | None) -> str:
        return f"{self.base_url}/{self.prefix}-{secrets.token_urlsafe(16)}"


class ZoomMeetings:
    """Zoom's REST API with server-to-server OAuth: a token, then a scheduled meeting."""

    def __init__(
        self,
        account_id: str,
        client_id: str,
        client_secret: SecretStr,
        base_url: str = "https://api.zoom.us",
        oauth_url: str = "https://zoom.us/oauth/token",
    ) -> None:
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.base_url, self.oauth_url = base_url.rstrip("/"), oauth_url

    def create_meeting(self, topic: str, start: datetime | None) -> str:
        try:
            token = httpx.post(
                self.oauth_url,
                params={"grant_type": "account_credentials", "account_id": self.account_id},
                auth=(self.client_id, self.client_secret.get_secret_value()),
                timeout=HTTP_TIMEOUT_S,
            )
            token.raise_for_status()
            body: dict[str, object] = {"topic": topic[:200], "type": 2 if start else 1}
            if start is not None:
                body["start_time"] = start.strftime("%Y-%m-%dT%H:%M:%SZ")
            meeting = httpx.post(
                f"{self.base_url}/v2/users/me/meetings",
                json=body,
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                timeout=HTTP_TIMEOUT_S,
            )
            meeting.raise_for_status()
            return str(meeting.json()["join_url"])
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise TransientError(f"video provider refused the meeting: {exc}") from exc


def mailer_from_settings(settings: Settings) -> Mailer | None:
    if settings.smtp_host is None:
        return None
    cafile = str(settings.smtp_ca_file) if settings.smtp_ca_file else None
    return SmtpMailer(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_from,
        settings.smtp_username,
        settings.smtp_password,
        starttls=settings.smtp_starttls,
        implicit_tls=settings.smtp_ssl,
        tls_context=ssl.create_default_context(cafile=cafile),
    )


def phone_from_settings(settings: Settings) -> PhoneProvider:
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token
    if sid is None or token is None:
        return ManualDialling()
    if settings.twilio_from_number is None or settings.twilio_agent_number is None:
        raise ConfigError("TRIAGE_TWILIO_FROM_NUMBER and _AGENT_NUMBER are needed with Twilio")
    if re.fullmatch(TWILIO_ACCOUNT_SID, sid) is None:
        raise ConfigError("TRIAGE_TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits")
    return TwilioPhone(
        sid, token, settings.twilio_from_number, settings.twilio_agent_number,
        settings.twilio_base_url,
    )


def video_from_settings(settings: Settings) -> VideoProvider:
    if settings.video_provider == "jitsi":
        return JitsiRooms(settings.jitsi_base_url)
    if not (settings.zoom_account_id and settings.zoom_client_id and settings.zoom_client_secret):
        raise ConfigError("Zoom needs TRIAGE_ZOOM_ACCOUNT_ID, _CLIENT_ID and _CLIENT_SECRET")
    return ZoomMeetings(
        settings.zoom_account_id,
        settings.zoom_client_id,
        settings.zoom_client_secret,
        settings.zoom_base_url,
        settings.zoom_oauth_url,
    )
