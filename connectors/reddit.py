"""Reddit with praw: new submissions and comments of configured subreddits, optionally filtered
by keywords, with a checkpoint per stream in the store.

Reddit ids are base-36 counters, so "newer than the checkpoint" is a comparison. The checkpoint
(the newest fullname emitted) moves only after the producer flushed, and praw resumes after it
(``continue_after_id``), so a restart neither skips nor repeats. Agents reply through the same
client.

Reddit grants each OAuth client a request allowance per window and says where it stands in every
answer (``x-ratelimit-remaining``, ``-used``, ``-reset``). ``RedditBudget`` keeps the latest of
these in the store, so the connector and the agents' replies (other processes, same credentials)
spend one budget: the connector pauses between rounds, spreads its requests over what is left of
the window, leaves a reserve for replies, and when Reddit answers 429 waits for the reset it gives;
5xx and dropped connections back off exponentially. A wait never loses a post: the streams resume
after the checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import praw
import prawcore

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.errors import TransientError
from pipeline.records import Author, Post
from pipeline.store.interface import Store

log = logging.getLogger(__name__)
KINDS = ("submissions", "comments")


def base36(fullname: str) -> int:
    """The id's number, for ordering; -1 for a name that is not ``<kind>_<base 36>``."""
    try:
        return int(fullname.split("_", 1)[-1], 36)
    except ValueError:
        return -1


def thing_post(thing: Any) -> Post:
    """A praw Submission or Comment as a Post."""
    fullname = str(thing.fullname)
    is_submission = fullname.startswith("t3_")
    if is_submission:
        text = "\n\n".join(part for part in (thing.title, thing.selftext) if part)
        conversation, parent = fullname, None
    else:
        text = thing.body
        conversation, parent = thing.link_id, thing.parent_id
    author = getattr(thing, "author", None)
    name = str(author) if author is not None else "[deleted]"
    return Post(
        source="reddit",
        native_id=fullname,
        author=Author(id=name, handle=name),
        text=text,
        created_at=datetime.fromtimestamp(float(thing.created_utc), UTC),
        url=f"https://www.reddit.com{thing.permalink}",
        in_reply_to=parent,
        conversation_id=conversation,
        raw={"subreddit": str(thing.subreddit), "score": getattr(thing, "score", None)},
    )


def http_session(reddit: praw.Reddit) -> Any:
    """The requests session under praw, which every request of the client goes through."""
    return reddit._core._authorizer._authenticator._requestor._http  # type: ignore[attr-defined]


class RedditBudget:
    """The OAuth client's request allowance, as Reddit's latest answer (to any process using the
    same credentials) reported it, shared through the store."""

    def __init__(
        self,
        store: Store,
        client_key: str,
        reserve: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.key = f"reddit:budget:{client_key}"
        self.reserve = reserve
        self.clock = clock

    def watch(self, reddit: praw.Reddit) -> None:
        """Record the allowance from every answer the client gets."""
        http_session(reddit).hooks["response"].append(self._on_response)

    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        headers = response.headers
        if "x-ratelimit-remaining" not in headers or "x-ratelimit-reset" not in headers:
            return
        try:
            state = {
                "remaining": float(headers["x-ratelimit-remaining"]),
                "used": int(float(headers.get("x-ratelimit-used", 0))),
                "reset_at": self.clock() + float(headers["x-ratelimit-reset"]),
            }
        except ValueError:
            return
        self.store.set_checkpoint(self.key, json.dumps(state))

    def state(self) -> dict[str, float] | None:
        saved = self.store.get_checkpoint(self.key)
        if not saved:
            return None
        state: dict[str, float] = json.loads(saved)
        return state if state["reset_at"] > self.clock() else None  # a new window began

    def pace(self, requests: int) -> float:
        """Seconds to wait before ``requests`` more listing requests: none while the window has
        room to spare, until the reset once only the replies' reserve is left, else the requests'
        share of the window left."""
        state = self.state()
        if state is None:
            return 0.0
        left = state["reset_at"] - self.clock()
        spare = state["remaining"] - self.reserve
        if spare < max(requests, 1):
            return left
        return left * requests / spare

    def exhausted_for(self) -> float:
        """Seconds until a reply may be sent; 0 unless nothing at all is left."""
        state = self.state()
        return 0.0 if state is None or state["remaining"] >= 1 else state["reset_at"] - self.clock()


def retry_after(exc: prawcore.exceptions.TooManyRequests) -> float | None:
    """The seconds a 429 says to wait (``x-ratelimit-reset`` or ``retry-after``)."""
    headers = getattr(exc.response, "headers", {}) or {}
    for name in ("x-ratelimit-reset", "retry-after"):
        try:
            return float(headers[name])
        except (KeyError, ValueError):
            continue
    return None


class RedditConnector(Connector):
    name = "reddit"

    def __init__(
        self,
        producer: Producer,
        reddit: praw.Reddit,
        subreddits: Sequence[str],
        store: Store,
        keywords: Sequence[str] = (),
        kinds: Sequence[str] = KINDS,
        max_backoff_s: float = 300.0,
        round_interval_s: float = 30.0,
        budget: RedditBudget | None = None,
        **kwargs: str,
    ) -> None:
        super().__init__(producer, **kwargs)
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be some of {KINDS}, not {sorted(unknown)}")
        self.reddit = reddit
        self.subreddits = list(subreddits)
        self.store = store
        self.keywords = [k.lower() for k in keywords]
        self.kinds = list(kinds)
        self.max_backoff_s = max_backoff_s
        self.round_interval_s = round_interval_s
        self.budget = budget or RedditBudget(store, str(reddit.config.client_id))
        self.budget.watch(reddit)
        self.requests = 0  # listing requests sent, counted by the response hook
        http_session(reddit).hooks["response"].append(self._count)
        self.checkpoints: dict[str, str | None] = {}
        self._newest: dict[str, str] = {}
        # the latest waits, for operators and tests; bounded, since a connector runs for months
        self.waits: deque[float] = deque(maxlen=64)

    def _count(self, response: Any, *args: Any, **kwargs: Any) -> None:
        if response.request.method == "GET":
            self.requests += 1

    def key(self, kind: str) -> str:
        return f"reddit:{kind}:{'+'.join(sorted(self.subreddits))}"

    def setup(self) -> None:
        self.checkpoints = {kind: self.store.get_checkpoint(self.key(kind)) for kind in self.kinds}

    def checkpoint(self) -> None:
        for kind, fullname in self._newest.items():
            if fullname != self.checkpoints.get(kind):
                self.store.set_checkpoint(self.key(kind), fullname)
                self.checkpoints[kind] = fullname

    def streams(self) -> dict[str, Iterator[Any]]:
        subreddit = self.reddit.subreddit("+".join(self.subreddits))
        return {
            kind: getattr(subreddit.stream, kind)(
                pause_after=-1, continue_after_id=self.checkpoints.get(kind)
            )
            for kind in self.kinds
        }

    def poll_round(self, streams: dict[str, Iterator[Any]]) -> None:
        """Everything new on each stream, then flush and checkpoint."""
        for kind, stream in streams.items():
            for thing in stream:
                if thing is None or not self.running:
                    break  # this stream has nothing new right now
                self._take(kind, thing)
        self.flush()

    def pause(self, seconds: float) -> bool:
        """Wait, interrupted by stop; True if stopped. Every wait is kept for operators."""
        self.waits.append(seconds)
        return self.wait(seconds)

    def run(self) -> None:
        backoff = 1.0
        streams = self.streams()
        while self.running:
            before = self.requests
            try:
                self.poll_round(streams)
                backoff = 1.0
            except prawcore.exceptions.TooManyRequests as exc:
                self.flush()
                told = retry_after(exc)
                delay = told + 1 if told is not None else backoff
                log.warning("Reddit rate limit reached; waiting %.0fs for the reset", delay)
                if self.pause(min(delay, self.max_backoff_s)):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                streams = self.streams()  # a failed generator is finished: start again
                continue
            except (prawcore.exceptions.ServerError, prawcore.exceptions.RequestException) as exc:
                self.flush()
                log.warning(
                    "Reddit unavailable (%s); retrying in %.0fs", type(exc).__name__, backoff
                )
                if self.pause(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                streams = self.streams()
                continue
            # the next round will cost about what this one did
            spent = max(self.requests - before, len(self.kinds))
            if self.pause(max(self.round_interval_s, self.budget.pace(spent))):
                return

    def _take(self, kind: str, thing: Any) -> None:
        fullname = str(getattr(thing, "fullname", ""))
        last = self.checkpoints.get(kind)
        if last is not None and fullname and base36(fullname) <= base36(last):
            return  # already sent before the restart
        post = self.to_post(
            lambda: thing_post(thing),
            lambda: self._original(thing),
            kind[:-1],
            f"reddit:{kind}",
            also=(OverflowError, OSError),
        )
        if post is None:
            return
        if fullname and (kind not in self._newest or base36(fullname) > base36(self._newest[kind])):
            self._newest[kind] = fullname
        if self.keywords and not any(k in post.text.lower() for k in self.keywords):
            return
        self.emit(post)

    @staticmethod
    def _original(thing: Any) -> bytes:
        fields = {k: v for k, v in vars(thing).items() if not k.startswith("_")}
        return json.dumps(fields, default=str).encode()  # stdlib: any integer size

    def reply(self, fullname: str, text: str) -> str:
        """Answer a submission (t3_) or comment (t1_) on Reddit; the new comment's fullname."""
        wait = self.budget.exhausted_for()
        if wait > 0:
            raise TransientError(f"Reddit's request allowance is spent for {wait:.0f}s more")
        thing_id = fullname.split("_", 1)[-1]
        parent = (
            self.reddit.submission(thing_id)
            if fullname.startswith("t3_")
            else self.reddit.comment(thing_id)
        )
        created = parent.reply(text)
        if created is None:
            raise TransientError(f"Reddit did not create the reply to {fullname}")
        return str(created.fullname)
