"""Bluesky through Jetstream: the public, free JSON firehose of every post, over a websocket.

The connector subscribes to ``app.bsky.feed.post`` (``wantedCollections``), keeps the creates that
mention the brand (keywords in the text, handles, or mentioned DIDs in the facets) and emits them
as ``Post``. Its checkpoint is Jetstream's cursor (the ``time_us`` of the latest event handled) and
the ids handled in the last few seconds: Jetstream's events are only roughly ordered, so a
reconnect asks for a cursor a few seconds back, as Jetstream's README advises, and the ids
skip what was already sent. The checkpoint moves only after a flush, so a stop, a dropped
connection or a restart emits every post exactly once. Reconnects back off exponentially.

Jetstream compresses its events with zstd when asked (``compress=true``), against a dictionary
it publishes; given that dictionary, the connector asks for and decompresses them, each binary
frame on its own.

AT URIs carry colons, which a ``Post``'s native id may not: the native id is the URI without its
``at://`` scheme and with its colons and slashes percent-encoded (``native_uri`` undoes it).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

import zstandard
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.errors import ConfigError, TransientError, TriageError
from pipeline.records import Author, Post
from pipeline.store.interface import Store

log = logging.getLogger(__name__)
POST = "app.bsky.feed.post"
MENTION = "app.bsky.richtext.facet#mention"
DEFAULT_INSTANCE = "wss://jetstream2.us-east.bsky.network/subscribe"
DEFAULT_PDS = "https://bsky.social"
FLUSH_EVERY_S = 1.0
HANDLES_KEPT = 10_000
MAX_EVENT_BYTES = 1 << 20  # a post event is a few KB; Jetstream's records are capped far below


def open_jetstream(url: str, close_timeout: float = 2.0) -> ClientConnection:
    """A Jetstream connection. Unread events left when the connector stops hold back the
    server's close frame, so the close handshake is not waited on for long."""
    return connect(url, close_timeout=close_timeout)


def native_id(at_uri: str) -> str:
    """An AT URI as a ``Post`` native id: no scheme, colons and slashes percent-encoded, so the
    item id is one segment of a URL path (``/api/v1/items/{id}/resolve``)."""
    return quote(at_uri.removeprefix("at://"), safe="")


def native_uri(native: str) -> str:
    """The AT URI a native id was made from."""
    return "at://" + unquote(native)


def web_url(did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def mentioned_dids(record: Mapping[str, Any]) -> set[str]:
    return {
        str(feature.get("did"))
        for facet in record.get("facets") or []
        for feature in facet.get("features") or []
        if feature.get("$type") == MENTION
    }


def readable_text(record: Mapping[str, Any]) -> str:
    """The post's text; for a post that is only a link card or pictures, what a reader sees of
    them (the card's title and description, the pictures' alt texts)."""
    text = str(record.get("text") or "").strip()
    if text:
        return text
    embed = record.get("embed") or {}
    external = embed.get("external") or {}
    parts = [external.get("title"), external.get("description")]
    parts += [image.get("alt") for image in embed.get("images") or []]
    return "\n\n".join(str(p).strip() for p in parts if p and str(p).strip())


def event_post(event: Mapping[str, Any], handle: str | None = None) -> Post:
    """A Jetstream commit event creating an ``app.bsky.feed.post`` as a Post."""
    did, commit = str(event["did"]), event["commit"]
    record, rkey = commit["record"], str(commit["rkey"])
    uri = f"at://{did}/{POST}/{rkey}"
    reply = record.get("reply") or {}
    parent = (reply.get("parent") or {}).get("uri")
    root = (reply.get("root") or {}).get("uri")
    langs = record.get("langs") or []
    return Post(
        source="bluesky",
        native_id=native_id(uri),
        author=Author(id=did, handle=handle),
        text=readable_text(record),
        language=str(langs[0]) if langs else None,
        created_at=datetime.fromisoformat(str(record["createdAt"]).replace("Z", "+00:00")),
        url=web_url(did, rkey),
        in_reply_to=native_id(parent) if parent else None,
        conversation_id=native_id(root) if root else None,
        raw={"uri": uri, "cid": commit.get("cid"), "langs": langs, "time_us": event["time_us"]},
    )


class BlueskyConnector(Connector):
    name = "bluesky"

    def __init__(
        self,
        producer: Producer,
        store: Store,
        instance: str = DEFAULT_INSTANCE,
        keywords: Sequence[str] = (),
        handles: Sequence[str] = (),
        dids: Sequence[str] = (),
        rewind_s: float = 5.0,
        max_backoff_s: float = 300.0,
        open_socket: Callable[[str], ClientConnection] = open_jetstream,
        zstd_dictionary: bytes | None = None,
        **kwargs: str,
    ) -> None:
        super().__init__(producer, **kwargs)
        self.store = store
        self.instance = instance
        self.keywords = [k.lower() for k in keywords if k.strip()]
        self.handles = [h.lower().lstrip("@") for h in handles if h.strip()]
        self.dids = set(dids)
        self.rewind_us = int(rewind_s * 1_000_000)
        self.max_backoff_s = max_backoff_s
        self.open_socket = open_socket
        self.unzstd = (
            zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(zstd_dictionary))
            if zstd_dictionary
            else None
        )
        self.key = "bluesky:jetstream"
        self.cursor: int | None = None  # time_us of the newest event handled and flushed
        self._latest: int | None = None  # ... handled, flushed or not
        self._recent: dict[str, int] = {}  # uri -> time_us, within the rewind window
        self._handle_of: OrderedDict[str, str] = OrderedDict()
        self._last_flush = time.monotonic()
        self.connections = 0
        self.waits: list[float] = []

    def setup(self) -> None:
        saved = self.store.get_checkpoint(self.key)
        if saved:
            state = json.loads(saved)
            self.cursor = self._latest = int(state["cursor"])
            self._recent = {str(k): int(v) for k, v in state["recent"].items()}

    def checkpoint(self) -> None:
        if self._latest is None or self._latest == self.cursor:
            return
        horizon = self._latest - self.rewind_us
        self._recent = {uri: t for uri, t in self._recent.items() if t >= horizon}
        state = {"cursor": self._latest, "recent": self._recent}
        self.store.set_checkpoint(self.key, json.dumps(state))
        self.cursor = self._latest

    def url(self) -> str:
        query: list[tuple[str, str]] = [("wantedCollections", POST)]
        if self.unzstd is not None:
            query.append(("compress", "true"))
        if self._latest is not None:
            query.append(("cursor", str(max(self._latest - self.rewind_us, 0))))
        return f"{self.instance}?{urlencode(query)}"

    def run(self) -> None:
        backoff = 1.0
        while self.running:
            try:
                self.session()
                backoff = 1.0
            except (ConnectionClosed, InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
                log.warning("Jetstream unavailable (%s); reconnecting in %.0fs", exc, backoff)
            self.flush()
            if not self.running:
                return
            self.waits.append(backoff)
            if self.wait(backoff):
                return
            backoff = min(backoff * 2, self.max_backoff_s)

    def session(self) -> None:
        """One connection, from the cursor, until it closes or the connector stops."""
        with self.open_socket(self.url()) as socket:
            self.connections += 1
            # a stop is seen within FLUSH_EVERY_S: recv waits no longer
            while self.running:
                try:
                    message = socket.recv(timeout=FLUSH_EVERY_S)
                except TimeoutError:
                    message = None
                if message is not None:
                    self.on_message(message)
                if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
                    self.flush()
                    self._last_flush = time.monotonic()

    def on_message(self, message: str | bytes) -> None:
        raw = message.encode() if isinstance(message, str) else message
        if self.unzstd is not None and isinstance(message, bytes):
            try:
                raw = self.inflate(message)
            except zstandard.ZstdError as exc:
                self.reject(message, f"undecodable zstd frame: {exc}")
                return
            if len(raw) > MAX_EVENT_BYTES:
                self.reject(message, f"oversized event: over {MAX_EVENT_BYTES} bytes unpacked")
                return
        try:
            event = json.loads(raw)
            time_us = int(event["time_us"])
            kind = event["kind"]
        except (ValueError, KeyError, TypeError) as exc:
            self.reject(raw, f"malformed Jetstream event: {type(exc).__name__} {exc}")
            return
        if kind == "identity":
            self._remember_handle(event.get("identity") or {})
        elif kind == "commit":
            self._take(event, raw)
        if self._latest is None or time_us > self._latest:
            self._latest = time_us

    def inflate(self, frame: bytes) -> bytes:
        """One compressed event, read no further than one byte past the size cap, so a frame
        that unpacks to gigabytes costs a megabyte (its header's size is not trusted)."""
        assert self.unzstd is not None
        out = bytearray()
        with self.unzstd.stream_reader(frame) as reader:
            while len(out) <= MAX_EVENT_BYTES and (chunk := reader.read(65_536)):
                out += chunk
        return bytes(out)

    def _remember_handle(self, identity: Mapping[str, Any]) -> None:
        if identity.get("did") and identity.get("handle"):
            self._handle_of[str(identity["did"])] = str(identity["handle"])
            self._handle_of.move_to_end(str(identity["did"]))
            while len(self._handle_of) > HANDLES_KEPT:
                self._handle_of.popitem(last=False)

    def _take(self, event: dict[str, Any], raw: bytes) -> None:
        commit = event.get("commit") or {}
        if commit.get("collection") != POST or commit.get("operation") != "create":
            return  # likes, reposts, edits and deletes are not something said about the brand
        uri = f"at://{event.get('did')}/{POST}/{commit.get('rkey')}"
        if uri in self._recent:
            return  # sent before the rewound cursor
        self._recent[uri] = int(event["time_us"])
        handle = self._handle_of.get(str(event.get("did")))

        def build() -> Post | None:
            if not readable_text(commit["record"]):
                return None  # nothing a reader could see: no text, card or alt text
            return event_post(event, handle)

        post = self.to_post(build, lambda: raw, "post", self.key)
        if post is not None and self.matches(post, commit["record"]):
            self.emit(post)

    def matches(self, post: Post, record: Mapping[str, Any]) -> bool:
        """The brand's keywords, one of its handles, or a mention of one of its DIDs; with no
        filter configured every post matches (for a firehose sample or a test)."""
        if not (self.keywords or self.handles or self.dids):
            return True
        text = post.text.lower()
        return (
            any(k in text for k in self.keywords)
            or any(f"@{h}" in text for h in self.handles)
            or bool(self.dids & mentioned_dids(record))
        )


class BlueskyReplier:
    """Answers Bluesky posts as the brand's account over the AT Protocol (the ``atproto``
    client) on the brand's PDS (``service``, bsky.social unless the account lives elsewhere),
    logged in with an app password on first use. A reply names its parent and its thread's
    root by URI and CID, so the parent's record is read first.

    Only ``com.atproto`` calls are made: the login skips the Bluesky profile lookup (an AppView
    read that a PDS may not serve, and that the reply does not need), so the new record's repo
    is the DID the session names. Failures are one line: an unreachable or busy service is a
    ``TransientError`` (retry), refused credentials a ``ConfigError``, a post that cannot be
    answered (deleted, or a reply Bluesky finds invalid, such as one over 300 characters) a
    ``TriageError``.
    """

    def __init__(self, handle: str, app_password: str, service: str = DEFAULT_PDS) -> None:
        self.handle = handle
        self.app_password = app_password
        self.service = service
        self._client: Any = None
        self._did = ""

    def reply(self, native: str, text: str) -> str:
        from atproto import models
        from atproto.exceptions import AtProtocolError

        parts = native_uri(native).removeprefix("at://").split("/")
        if len(parts) != 3 or not parts[0].startswith("did:") or parts[1] != POST:
            raise TriageError(f"{native!r} is not the id of a Bluesky post")
        did, _, rkey = parts
        try:
            client = self._logged_in()
            parent = client.get_post(rkey, profile_identify=did)
            parent_ref = models.create_strong_ref(parent)
            thread = getattr(parent.value, "reply", None)
            root = thread.root if thread is not None else parent_ref
            created = client.send_post(
                text,
                profile_identify=self._did,
                reply_to=models.AppBskyFeedPost.ReplyRef(parent=parent_ref, root=root),
            )
        except AtProtocolError as exc:
            raise self._failure(exc, native) from exc
        return native_id(str(created.uri))

    def _logged_in(self) -> Any:
        from atproto import Client
        from atproto.exceptions import UnauthorizedError

        if self._client is None:
            client = Client(base_url=self.service)
            try:
                client.login(self.handle, self.app_password, fetch_bsky_profile=False)
            except UnauthorizedError as exc:
                raise ConfigError(
                    f"Bluesky at {self.service} refused the app password of {self.handle}"
                    f" ({exc}): check TRIAGE_BLUESKY_HANDLE and TRIAGE_BLUESKY_APP_PASSWORD"
                ) from exc
            self._did = client.com.atproto.server.get_session().did
            self._client = client
        return self._client

    def _failure(self, exc: Exception, native: str) -> TriageError:
        from atproto.exceptions import (
            BadRequestError,
            NetworkError,
            RateLimitExceededError,
            RequestErrorBase,
        )

        why = str(exc) or str(exc.__cause__ or "") or type(exc).__name__
        if isinstance(exc, (NetworkError, RateLimitExceededError)) or (
            isinstance(exc, RequestErrorBase)
            and exc.response is not None
            and exc.response.status_code >= 500
        ):
            return TransientError(f"Bluesky at {self.service} did not take the reply ({why})")
        if isinstance(exc, BadRequestError):
            return TriageError(f"Bluesky refused the reply to {native_uri(native)} ({why})")
        return TriageError(f"Bluesky reply to {native_uri(native)} failed ({why})")
