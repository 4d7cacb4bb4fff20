"""Mastodon with Mastodon.py: hashtag and public timelines (local or federated) and the account's
mentions, with a checkpoint per timeline in the store.

Each timeline is read forward from its checkpoint with ``min_id`` (the page right after the
checkpoint, however much was said meanwhile), page after page until it is empty; the checkpoint
moves after each flushed page, so a restart neither skips nor repeats. Where the server's
streaming API is healthy (it needs a token since Mastodon 4.2) the connector streams instead and,
on every (re)connect, first catches up by polling from the checkpoints; elsewhere it polls.
Statuses are HTML: the text is stripped to what a reader sees. Agents reply with a status in
reply, with the original's visibility.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlsplit

from mastodon import Mastodon, MastodonError, MastodonNetworkError, StreamListener

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.records import Author, Post
from pipeline.store.interface import Store

log = logging.getLogger(__name__)
PAGE = 40  # Mastodon's largest page


class _Text(HTMLParser):
    """Mastodon's status HTML as plain text: paragraphs and line breaks kept as newlines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


def status_post(status: Mapping[str, Any], host: str) -> Post:
    """A Mastodon status (as this server numbers it) as a Post; the native id is
    ``<server>/<status id>``, since ids are per server (a port's colon percent-encoded)."""
    host = quote(host, safe="")
    account = status["account"]
    created = status["created_at"]
    text = html_text(str(status["content"]))
    if status.get("spoiler_text"):
        text = f"{status['spoiler_text']}\n\n{text}".strip()
    reply_to = status.get("in_reply_to_id")
    return Post(
        source="mastodon",
        native_id=f"{host}/{status['id']}",
        author=Author(
            id=str(account["id"]),
            handle=account.get("acct"),
            name=account.get("display_name") or None,
            followers=int(account.get("followers_count") or 0),
        ),
        text=text,
        language=status.get("language"),
        created_at=created
        if isinstance(created, datetime)
        else datetime.fromisoformat(str(created).replace("Z", "+00:00")),
        url=status.get("url") or status.get("uri"),
        in_reply_to=f"{host}/{reply_to}" if reply_to else None,
        raw={"visibility": status.get("visibility"), "uri": status.get("uri")},
    )


class MastodonConnector(Connector):
    name = "mastodon"

    def __init__(
        self,
        producer: Producer,
        client: Mastodon,
        store: Store,
        hashtags: Sequence[str] = (),
        public: str | None = None,
        mentions: bool = False,
        poll_interval_s: float = 30.0,
        max_backoff_s: float = 300.0,
        stream: bool = True,
        **kwargs: str,
    ) -> None:
        super().__init__(producer, **kwargs)
        if public not in (None, "local", "federated"):
            raise ValueError("the public timeline is 'local' or 'federated'")
        self.client = client
        self.store = store
        base = str(client.api_base_url)
        self.host = urlsplit(base).netloc or base
        self.timelines = [f"tag:{t.lstrip('#').lower()}" for t in hashtags if t.strip()]
        if public:
            self.timelines.append(f"public:{public}")
        if mentions:
            self.timelines.append("mentions")
        if not self.timelines:
            raise ValueError("give hashtags, a public timeline or mentions to listen to")
        self.poll_interval_s = poll_interval_s
        self.max_backoff_s = max_backoff_s
        self.use_stream = stream
        self.mode = "polling"
        self.checkpoints: dict[str, str | None] = {}
        self._newest: dict[str, str] = {}
        self._handle: Any = None
        self.waits: deque[float] = deque(maxlen=64)

    def key(self, timeline: str) -> str:
        return f"mastodon:{self.host}:{timeline}"

    def setup(self) -> None:
        self.checkpoints = {t: self.store.get_checkpoint(self.key(t)) for t in self.timelines}

    def checkpoint(self) -> None:
        for timeline, newest in self._newest.items():
            if newest != self.checkpoints.get(timeline):
                self.store.set_checkpoint(self.key(timeline), newest)
                self.checkpoints[timeline] = newest

    def fetch(self, timeline: str, min_id: str | None) -> list[Any]:
        """One page of a timeline right after ``min_id``, newest first as Mastodon sends it."""
        kind, _, arg = timeline.partition(":")
        if kind == "tag":
            return list(self.client.timeline_hashtag(arg, min_id=min_id, limit=PAGE))
        if kind == "public":
            return list(
                self.client.timeline_public(local=arg == "local", min_id=min_id, limit=PAGE)
            )
        return list(self.client.notifications(types=["mention"], min_id=min_id, limit=PAGE))

    def poll_timeline(self, timeline: str) -> None:
        """Every page after the checkpoint, oldest page first, each flushed and checkpointed."""
        while self.running:
            last = self.checkpoints.get(timeline)
            page = self.fetch(timeline, last)
            fresh = [i for i in page if last is None or int(i["id"]) > int(last)]
            if not fresh:
                return
            for item in sorted(fresh, key=lambda i: int(i["id"])):
                self.take(timeline, item)
            self.flush()

    def poll_all(self) -> None:
        for timeline in self.timelines:
            self.poll_timeline(timeline)

    def run(self) -> None:
        backoff = 1.0
        while self.running:
            try:
                self.poll_all()  # catch up (or, without streaming, the poll itself)
                backoff = 1.0
                if self.use_stream and self.stream_once():
                    continue
            except (MastodonNetworkError, MastodonError) as exc:
                self.flush()
                log.warning("Mastodon unavailable (%s); retrying in %.0fs", exc, backoff)
                self.waits.append(backoff)
                if self.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self.waits.append(self.poll_interval_s)
            if self.wait(self.poll_interval_s):
                return

    def stream_once(self) -> bool:
        """Stream the timelines until the connection ends; False where the server's streaming
        API is unhealthy or refuses (then the connector polls)."""
        try:
            if not self.client.stream_healthy():
                raise MastodonError("streaming API unhealthy")
        except MastodonError as exc:
            if self.mode != "polling":
                log.warning("Mastodon streaming unavailable (%s); polling instead", exc)
            self.mode = "polling"
            self.use_stream = False
            return False
        self.mode = "stream"
        listener = _Listener(self)
        handles = []
        for timeline in self.timelines:
            kind, _, arg = timeline.partition(":")
            if kind == "tag":
                handles.append(self.client.stream_hashtag(arg, listener, run_async=True))
            elif kind == "public":
                handles.append(
                    self.client.stream_public(listener, local=arg == "local", run_async=True)
                )
            else:
                handles.append(self.client.stream_user(listener, run_async=True))
        try:
            while self.running and all(h.is_alive() for h in handles):
                if self.wait(1.0):
                    break
                self.flush()
        finally:
            for h in handles:
                h.close()
        return True

    def take(self, timeline: str, item: Any) -> None:
        item_id = str(item["id"])
        last = self.checkpoints.get(timeline)
        if last is not None and int(item_id) <= int(last):
            return  # already sent
        status = item.get("status") if timeline == "mentions" else item
        def build() -> Post:
            if status is None:
                raise ValueError("a mention without its status")
            return status_post(status, self.host)

        post = self.to_post(build, lambda: _original(item), "status", self.key(timeline))
        if post is not None:
            self.emit(post)
        if timeline not in self._newest or int(item_id) > int(self._newest[timeline]):
            self._newest[timeline] = item_id

    def reply(self, native: str, text: str) -> str:
        """Answer a status with a status in reply, mentioning its author, with its visibility."""
        original = self.client.status(native.rsplit("/", 1)[-1])
        created = self.client.status_reply(original, text, visibility=original["visibility"])
        return f"{quote(self.host, safe='')}/{created['id']}"


class _Listener(StreamListener):
    """Streamed statuses and mention notifications, handed to the connector."""

    def __init__(self, connector: MastodonConnector) -> None:
        super().__init__()
        self.connector = connector

    def on_update(self, status: Any) -> None:
        for timeline in self.connector.timelines:
            kind, _, arg = timeline.partition(":")
            tags = {str(t.get("name", "")).lower() for t in status.get("tags") or []}
            if kind == "public" or (kind == "tag" and arg in tags):
                self.connector.take(timeline, status)
                return

    def on_notification(self, notification: Any) -> None:
        if notification.get("type") == "mention" and "mentions" in self.connector.timelines:
            self.connector.take("mentions", notification)


def _original(item: Any) -> bytes:
    return json.dumps(item, default=str).encode()

