"""X filtered stream: rules kept in sync on the account, tweets as they are posted.

Filtered stream needs an account tier that has it. Where the account has no access (X answers
403), the connector says so once and polls recent search for the same rules instead, so a
configuration works on every tier. A stream has no ``since_id``: the connector keeps the newest
tweet id it sent as its checkpoint and, on every (re)connect after the first, catches up with
recent search from that id, every page of it (resuming where a cut-short catch-up stopped), before
streaming again, so a restart or a dropped connection leaves no gap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import tweepy

from connectors.x import EXPANSIONS, TWEET_FIELDS, USER_FIELDS, XConnector
from pipeline.bus.interface import Producer
from pipeline.store.interface import Store

log = logging.getLogger(__name__)
RULE_TAG = "social-triage"
FLUSH_EVERY_S = 1.0


class RuleStream(tweepy.StreamingClient):
    """tweepy's stream, handing each raw line to the connector (which parses it itself, so a
    malformed tweet costs only itself)."""

    def __init__(self, bearer_token: str, on_line: Callable[[bytes], None], **kwargs: Any) -> None:
        super().__init__(bearer_token, return_type=dict, **kwargs)
        self.on_line = on_line

    def on_data(self, raw_data: bytes) -> None:
        self.on_line(raw_data)

    def on_request_error(self, status_code: int) -> None:
        log.warning("X filtered stream answered HTTP %s; backing off to reconnect", status_code)

    def on_connection_error(self) -> None:
        log.warning("X filtered stream connection dropped; reconnecting with backoff")

    def on_exception(self, exception: Exception) -> None:
        log.warning("X filtered stream stopped: %s: %s", type(exception).__name__, exception)


class XStreamConnector(XConnector):
    name = "x-stream"

    def __init__(
        self,
        producer: Producer,
        client: tweepy.Client,
        stream_factory: Callable[[Callable[[bytes], None]], RuleStream],
        rules: Sequence[str],
        store: Store,
        reconnect_backoff_s: float = 5.0,
        **kwargs: Any,
    ) -> None:
        rules = sorted({r.strip() for r in rules if r.strip()})
        if not rules:
            raise ValueError("give at least one filtered-stream rule")
        super().__init__(producer, client, " OR ".join(f"({r})" for r in rules), store, **kwargs)
        self.rules = rules
        digest = hashlib.sha256("\n".join(rules).encode()).hexdigest()[:16]
        self.key = f"x:stream:{digest}"
        self.stream = stream_factory(self.on_line)
        self.reconnect_backoff_s = reconnect_backoff_s
        self.mode = "stream"
        self._last_flush = time.monotonic()

    def sync_rules(self) -> None:
        """Make the account's rules tagged for this product exactly the configured ones."""
        current = self.stream.get_rules().get("data") or []
        ours = [r for r in current if r.get("tag") == RULE_TAG]
        stale = [str(r["id"]) for r in ours if r["value"] not in self.rules]
        missing = sorted(set(self.rules) - {r["value"] for r in ours})
        if stale:
            self.stream.delete_rules(stale)
        if missing:
            answer = self.stream.add_rules([tweepy.StreamRule(v, tag=RULE_TAG) for v in missing])
            refused = [f"{e.get('value')}: {e.get('title')}" for e in answer.get("errors") or []]
            if refused:
                raise ValueError("X refused filtered-stream rules: " + "; ".join(refused))

    def run(self) -> None:
        try:
            self.sync_rules()
        except tweepy.Forbidden as exc:
            self.mode = "polling"
            log.warning(
                "this X account has no filtered-stream access (%s); polling recent search "
                "for the same rules instead",
                "; ".join(exc.api_messages) or exc.response.status_code,
            )
            super().run()
            return
        while self.running:
            caught_up = self.since_id is None and self.poll_finished
            if not caught_up and (not self.try_poll() or not self.poll_finished):
                continue  # catch up on what was said while away before streaming again
            self.stream.filter(
                expansions=EXPANSIONS, tweet_fields=TWEET_FIELDS, user_fields=USER_FIELDS
            )
            if self.running and self.pause(self.reconnect_backoff_s):
                return

    def stop(self) -> None:
        super().stop()
        self.stream.disconnect()

    def on_line(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
            tweet = message.get("data")
        except (ValueError, AttributeError) as exc:
            self.reject(raw, f"malformed stream line: {exc}", where=self.key)
            return
        if tweet is None:
            log.warning("X filtered stream: %s", message.get("errors") or message)
            return
        users = {
            str(u.get("id")): u for u in (message.get("includes") or {}).get("users", [])
        }
        self._take(tweet, users)
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self.flush()
            self._last_flush = time.monotonic()
