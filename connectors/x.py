"""X (Twitter) with tweepy's v2 ``Client``: recent search, or the brand account's mentions,
polled with a ``since_id`` checkpoint.

X answers a poll newest page first. The ``since_id`` checkpoint moves only once every page of a
poll is on the bus: until then each flushed page records the oldest id it delivered (``until_id``)
beside the newest id of the poll, so a poll cut short (page cap, stop, 429, 5xx, dropped
connection, crash) resumes with ``since_id`` unchanged and ``until_id`` at the last delivered page,
and no page is skipped or sent twice. Rate limits are respected to the second given in
``x-rate-limit-reset``; server errors and dropped connections back off exponentially. Agents reply
and send direct messages through the same client.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests
import tweepy

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.records import Author, Post
from pipeline.store.interface import Store

log = logging.getLogger(__name__)
# tweepy logs request headers, bearer token included, at DEBUG: never let that through.
logging.getLogger("tweepy").setLevel(logging.INFO)

TWITTER_EPOCH_MS = 1288834974657
TWEET_FIELDS = [
    "created_at",
    "lang",
    "conversation_id",
    "referenced_tweets",
    "author_id",
    "public_metrics",
]
USER_FIELDS = ["username", "name", "public_metrics", "verified"]
EXPANSIONS = ["author_id", "referenced_tweets.id"]


def snowflake_time(tweet_id: str) -> datetime:
    """Tweet ids carry their creation time: ms = (id >> 22) + the Twitter epoch."""
    return datetime.fromtimestamp(((int(tweet_id) >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)


def tweet_post(tweet: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> Post:
    """A v2 tweet object, and the users from its ``includes``, as a Post."""
    tweet_id = str(tweet["id"])
    if not tweet_id.isdigit():
        raise ValueError(f"tweet id {tweet_id!r} is not a number")
    user = users.get(str(tweet.get("author_id")), {})
    metrics = user.get("public_metrics") or {}
    author = Author(
        id=str(tweet.get("author_id") or "unknown"),
        handle=user.get("username"),
        name=user.get("name"),
        followers=int(metrics.get("followers_count", 0)),
        verified=bool(user.get("verified", False)),
    )
    replied_to = next(
        (
            str(r["id"])
            for r in tweet.get("referenced_tweets") or []
            if r.get("type") == "replied_to"
        ),
        None,
    )
    created = tweet.get("created_at")
    language = tweet.get("lang")
    return Post(
        source="x",
        native_id=tweet_id,
        author=author,
        text=tweet["text"],
        language=None if language in (None, "und", "zxx", "qme") else language,
        created_at=created or snowflake_time(tweet_id),
        url=f"https://x.com/{user.get('username') or 'i'}/status/{tweet_id}",
        in_reply_to=replied_to,
        conversation_id=tweet.get("conversation_id"),
        raw=dict(tweet),
    )


class XConnector(Connector):
    name = "x"

    def __init__(
        self,
        producer: Producer,
        client: tweepy.Client,
        query: str | None,
        store: Store,
        mentions_of: str | None = None,
        poll_interval_s: float = 15.0,
        max_results: int = 100,
        max_pages: int = 10,
        max_backoff_s: float = 900.0,
        clock: Callable[[], float] = time.time,
        **kwargs: str,
    ) -> None:
        super().__init__(producer, **kwargs)
        # Raw JSON, not tweepy's objects: tweepy raises on the whole page when one tweet is
        # malformed, and a malformed tweet must cost only itself (it goes to the dead letters).
        client.return_type = dict
        self.client = client
        if (query is None) == (mentions_of is None):
            raise ValueError("give either a search query or a user id to poll mentions of")
        self.query = query
        self.mentions_of = mentions_of
        self.store = store
        self.poll_interval_s = poll_interval_s
        self.max_results = max_results
        self.max_pages = max_pages
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.key = f"x:search:{query}" if query is not None else f"x:mentions:{mentions_of}"
        self.since_id: str | None = None
        # the newest id taken since the checkpoint, and, while a poll is unfinished, the oldest id
        # of its last delivered page: both survive a restart under ``resume_key``
        self._newest: str | None = None
        self._until: str | None = None
        self._saved_resume = ""
        self._backoff = min(1.0, self.max_backoff_s)
        # the latest waits, for operators and tests; bounded, since a connector runs for months
        self.waits: deque[float] = deque(maxlen=64)

    @property
    def resume_key(self) -> str:
        return f"{self.key}:resume"

    @property
    def poll_finished(self) -> bool:
        return self._until is None

    def setup(self) -> None:
        self.since_id = self.store.get_checkpoint(self.key)
        self._saved_resume = self.store.get_checkpoint(self.resume_key) or ""
        if self._saved_resume:
            state = json.loads(self._saved_resume)
            self._until, self._newest = state["until_id"], state["newest"]

    def checkpoint(self) -> None:
        """Called after a flush: what was sent is on the bus. A finished poll moves ``since_id``
        (before the resume state is cleared, so a crash in between only repeats an empty query);
        an unfinished one records where it stopped."""
        if self._until is None and self._newest is not None and self._newest != self.since_id:
            self.store.set_checkpoint(self.key, self._newest)
            self.since_id = self._newest
        resume = (
            json.dumps({"until_id": self._until, "newest": self._newest}) if self._until else ""
        )
        if resume != self._saved_resume:
            self.store.set_checkpoint(self.resume_key, resume)
            self._saved_resume = resume

    def pause(self, seconds: float) -> bool:
        """Wait, interrupted by stop; True if stopped. Every wait is kept for operators."""
        self.waits.append(seconds)
        return self.wait(seconds)

    def run(self) -> None:
        while self.running:
            if self.try_poll() and self.pause(self.poll_interval_s):
                return

    def try_poll(self) -> bool:
        """One poll; on a rate limit wait for X's reset, on an outage back off; False if so."""
        try:
            self.poll_once()
        except tweepy.TooManyRequests as exc:
            reset = getattr(exc, "reset_time", None)
            delay = (reset - self.clock() + 1) if reset else self._backoff
            log.warning("X rate limit reached; waiting %.0fs for the reset", delay)
            self.pause(min(max(delay, 1.0), self.max_backoff_s))
            return False
        except (tweepy.TwitterServerError, requests.ConnectionError, requests.Timeout) as exc:
            log.warning("X unavailable (%s); retrying in %.0fs", type(exc).__name__, self._backoff)
            self.pause(self._backoff)
            self._backoff = min(self._backoff * 2, self.max_backoff_s)
            return False
        self._backoff = min(1.0, self.max_backoff_s)
        return True

    def poll_once(self) -> int:
        """Up to ``max_pages`` pages newer than the checkpoint (older than ``until_id`` when an
        earlier poll was cut short), each flushed before the next is asked for."""
        sent_before = self.sent + self.rejected
        token: str | None = None
        # X wants a next_token with the query it came from: until_id stays as the poll began
        until = self._until
        for _ in range(self.max_pages):
            fields = {
                "since_id": self.since_id,
                "until_id": until,
                "max_results": self.max_results,
                "expansions": EXPANSIONS,
                "tweet_fields": TWEET_FIELDS,
                "user_fields": USER_FIELDS,
            }
            if self.query is not None:
                response = self.client.search_recent_tweets(self.query, next_token=token, **fields)
            else:
                response = self.client.get_users_mentions(
                    self.mentions_of, pagination_token=token, **fields
                )
            users = {str(u.get("id")): u for u in response.get("includes", {}).get("users", [])}
            tweets = response.get("data") or []
            for tweet in tweets:
                self._take(tweet, users)
            meta = response.get("meta") or {}
            token = meta.get("next_token")
            oldest = meta.get("oldest_id") or min(
                (str(t.get("id")) for t in tweets if str(t.get("id")).isdigit()),
                key=int,
                default=None,
            )
            # the last page finishes the poll; any other leaves where to go on from
            if not token:
                self._until = None
            elif oldest:
                self._until = str(oldest)
            self.flush()
            if not token or not self.running:
                break
        return self.sent + self.rejected - sent_before

    def _take(self, tweet: dict[str, Any], users: dict[str, Any]) -> None:
        post = self.to_post(
            lambda: tweet_post(tweet, users),
            # stdlib json: the payload came from it, and may hold integers orjson refuses
            lambda: json.dumps(tweet, default=str).encode(),
            "tweet",
            self.key,
        )
        if post is None:
            return
        self.emit(post)
        if self._newest is None or int(post.native_id) > int(self._newest):
            self._newest = post.native_id

    # ---- agents answer on the same channel

    def reply(self, in_reply_to: str, text: str) -> str:
        response = self.client.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to)
        return str(response["data"]["id"])

    def direct_message(self, participant_id: str, text: str) -> str:
        response = self.client.create_direct_message(participant_id=participant_id, text=text)
        return str(response["data"]["dm_event_id"])
