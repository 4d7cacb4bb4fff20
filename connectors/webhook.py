"""Posts pushed by other systems over HTTP, authenticated by an HMAC signature.

The sender signs ``"<timestamp>.<body>"`` with the shared secret (HMAC-SHA256) and sends
``X-Triage-Timestamp`` and ``X-Triage-Signature: sha256=<hex>``. A request is refused with 401
if the signature is missing or wrong, or if the time stamp is outside the replay window; with 413
if the body is too large; with 422, naming the field, if a post does not validate (a signed but
invalid body also goes to the dead-letter topic). A 202 means the posts are on the bus: the
producer is flushed before the answer. Each client address may make ``rate_limit`` requests
(``limits`` notation, e.g. ``"20/second"``); past that it gets 429 with ``Retry-After``, before
any work is done for it, so a flood costs the connector almost nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, TypeAdapter, ValidationError

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.records import Post, validation_reason

MAX_BODY_BYTES = 1024 * 1024
WINDOW_S = 300
RATE_LIMIT = "20/second"
POSTS = TypeAdapter(list[Post])


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Accepted(BaseModel):
    accepted: int


class WebhookConnector(Connector):
    name = "webhook"

    def __init__(
        self,
        producer: Producer,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        clock: Callable[[], float] = time.time,
        rate_limit: str = RATE_LIMIT,
        **kwargs: str,
    ) -> None:
        super().__init__(producer, **kwargs)
        if len(secret) < 16:
            raise ValueError("the webhook secret must be at least 16 characters")
        try:
            self._rate = parse(rate_limit)
        except ValueError as exc:
            raise ValueError(f"rate limit {rate_limit!r}: {exc}") from exc
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._secret = secret
        self.host = host
        self.port = port
        self.clock = clock
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None

    def throttle(self, client: str) -> None:
        """429 with Retry-After once a client address has used up its requests."""
        if self._limiter.hit(self._rate, client):
            return
        reset_at = self._limiter.get_window_stats(self._rate, client).reset_time
        wait = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(
            429, f"over {self._rate} requests; retry in {wait}s", {"Retry-After": str(wait)}
        )

    def verify(self, body: bytes, timestamp: str | None, signature: str | None) -> None:
        if not timestamp or not signature:
            raise HTTPException(401, "missing X-Triage-Timestamp or X-Triage-Signature")
        if not hmac.compare_digest(sign(self._secret, timestamp, body), signature):
            raise HTTPException(401, "bad signature")
        try:
            age = abs(self.clock() - int(timestamp))
        except ValueError as exc:
            raise HTTPException(401, "X-Triage-Timestamp must be Unix seconds") from exc
        if age > WINDOW_S:
            raise HTTPException(401, f"timestamp outside the {WINDOW_S // 60}-minute window")

    def accept(self, body: bytes) -> int:
        try:
            parsed: Any = orjson.loads(body)
            posts = POSTS.validate_python(parsed if isinstance(parsed, list) else [parsed])
        except orjson.JSONDecodeError as exc:
            self.reject(body, f"not JSON: {exc}", where="webhook")
            self.producer.flush()
            raise HTTPException(422, "body is not JSON") from exc
        except ValidationError as exc:
            reason = validation_reason(exc)
            self.reject(body, reason, where="webhook")
            self.producer.flush()
            raise HTTPException(422, reason) from exc
        with self._lock:
            for post in posts:
                self.emit(post)
            self.producer.flush()
        return len(posts)

    def app(self) -> FastAPI:
        app = FastAPI(title="social-triage webhook", version="1")

        @app.post("/webhook/posts", status_code=202)
        async def receive(
            request: Request,
            x_triage_timestamp: Annotated[str | None, Header()] = None,
            x_triage_signature: Annotated[str | None, Header()] = None,
        ) -> Accepted:
            self.throttle(request.client.host if request.client else "unknown")
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise HTTPException(413, f"body over {MAX_BODY_BYTES} bytes")
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                raise HTTPException(413, f"body over {MAX_BODY_BYTES} bytes")
            self.verify(body, x_triage_timestamp, x_triage_signature)
            return Accepted(accepted=self.accept(body))

        return app

    def run(self) -> None:
        self._server = uvicorn.Server(
            uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="warning")
        )
        self._server.run()

    def stop(self) -> None:
        super().stop()
        if self._server is not None:
            self._server.should_exit = True
