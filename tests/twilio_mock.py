"""A Twilio stand-in on loopback that holds every request to Twilio's own published contract.

The server loads Twilio's OpenAPI description of REST API 2010-04-01
(``../shared/vendor/specs/twilio_api_v2010.json``) and validates each request with openapi-core:
the path and its parameters (an account SID is ``AC`` and 32 hex digits), the method, HTTP basic
authentication, the content type and every form field with its type. A request that breaks the
contract gets Twilio's 400 error body and is kept in ``violations``; one that meets it gets the
spec's own example answer for the operation (201 with a fresh ``sid`` for a call). The answer
itself is checked against the operation's response schema too, so the stand-in cannot drift
from what Twilio says it returns.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC = Path(__file__).resolve().parents[1] / ".." / "shared" / "vendor" / "specs" / (
    "twilio_api_v2010.json"
)
TWILIO = "https://api.twilio.com"


@cache
def twilio_document() -> dict[str, Any]:
    if not SPEC.is_file():
        raise FileNotFoundError(f"Twilio's OpenAPI description is not at {SPEC}")
    document: dict[str, Any] = json.loads(SPEC.read_text())
    return document


@cache
def twilio_contract() -> OpenAPI:
    """Twilio's description, loaded once (1.8 MB; validating the document itself is skipped:
    it is Twilio's, and we test our requests against it, not it)."""
    return OpenAPI.from_dict(twilio_document(), config=Config(spec_validator_cls=None))


def describe(exc: BaseException) -> list[str]:
    """The error and what it wraps (openapi-core nests the field-level reasons)."""
    found = [f"{type(exc).__name__}: {exc}"]
    for inner in getattr(exc, "schema_errors", None) or []:
        found.append(f"{'/'.join(map(str, inner.path)) or 'body'}: {inner.message}")
    if exc.__cause__ is not None:
        found += describe(exc.__cause__)
    return found


@dataclass
class TwilioRequest:
    """What openapi-core needs to know of one request, as Twilio's server would see it."""

    method: str  # lower case, as openapi-core looks operations up
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    host_url: str = TWILIO
    parameters: RequestParameters = field(init=False)  # openapi-core fills in the path's

    def __post_init__(self) -> None:
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(self.query)),
            header=Headers(self.headers),
            cookie=ImmutableMultiDict(),
        )

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))

    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, password


@dataclass
class TwilioResponse:
    status_code: int
    data: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class TwilioMock:
    url: str
    auth_token: str
    requests: list[TwilioRequest] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    refuse_with: int | None = None  # answer every valid request with this status instead

    def answer(self, request: TwilioRequest) -> tuple[int, dict[str, Any]]:
        self.requests.append(request)
        contract = twilio_contract()
        try:
            contract.validate_request(request)
        except OpenAPIError as exc:
            why = "; ".join(describe(exc))
            self.violations.append(f"{request.method} {request.path}: {why}")
            return 400, {"code": 21201, "message": why, "status": 400}
        auth = request.basic_auth()
        account = request.path.split("/")[3]
        if auth != (account, self.auth_token):
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        if self.refuse_with is not None:
            return self.refuse_with, {"code": 20500, "message": "refused", "status": 400}
        status, body = self._example(request)
        outgoing = TwilioResponse(status, json.dumps(body).encode())
        contract.validate_response(request, outgoing)
        return status, body

    def _example(self, request: TwilioRequest) -> tuple[int, dict[str, Any]]:
        """The spec's own example answer for the operation, with this request's values."""
        for template, item in twilio_document()["paths"].items():
            operation = item.get(request.method.lower())
            if operation and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), request.path):
                status, response = next(iter(operation["responses"].items()))
                examples = response["content"]["application/json"]["examples"]
                body = dict(next(iter(examples.values()))["value"])
                break
        else:
            raise LookupError(f"no operation for {request.method} {request.path}")
        form = request.form()
        body.update({
            "sid": "CA" + secrets.token_hex(16),
            "account_sid": request.path.split("/")[3],
            "to": form.get("To", body.get("to")),
            "from": form.get("From", body.get("from")),
        })
        return int(status), body


@pytest.fixture
def twilio() -> Iterator[TwilioMock]:
    """The validating Twilio stand-in on a free loopback port, for account tokens ``tw-token``."""
    twilio_contract()  # load before the first request, so a bad path fails here, loudly
    holder: dict[str, TwilioMock] = {}

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            parts = urlsplit(self.path)
            request = TwilioRequest(
                self.command.lower(), parts.path, parts.query,
                {k.lower(): v for k, v in self.headers.items()}, body,
            )
            status, answer = holder["mock"].answer(request)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["mock"] = TwilioMock(f"http://127.0.0.1:{server.server_address[1]}", "tw-token")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["mock"]
    server.shutdown()
    server.server_close()
