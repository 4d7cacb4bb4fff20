"""Reddit with praw: new submissions and comments of configured subreddits, optionally filtered
by keywords, with a checkpoint per stream in the store.

Reddit ids are base-36 counters, so "newer than the checkpoint" is a comparison. The checkpoint
(the newest fullname emitted) moves only after the producer flushed, and praw resumes after it
(``continue_after_id``), so a restart neither skips nor repeats. Agents reply through the same
client.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import praw
import prawcore
from pydantic import ValidationError

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.errors import TransientError
from pipeline.records import Author, Post, validation_reason
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
        self.checkpoints: dict[str, str | None] = {}
        self._newest: dict[str, str] = {}
        # the latest waits, for operators and tests; bounded, since a connector runs for months
        self.waits: deque[float] = deque(maxlen=64)

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

    def run(self) -> None:
        backoff = 1.0
        streams = self.streams()
        while self.running:
            try:
                self.poll_round(streams)
                backoff = 1.0
            except (
                prawcore.exceptions.ServerError,
                prawcore.exceptions.RequestException,
                prawcore.exceptions.TooManyRequests,
            ) as exc:
                self.flush()
                log.warning(
                    "Reddit unavailable (%s); retrying in %.0fs", type(exc).__name__, backoff
                )
                self.waits.append(backoff)
                if self.wait(backoff):
                    return
                backoff = min(backoff * 2, self.max_backoff_s)
                streams = self.streams()  # a failed generator is finished: start again

    def _take(self, kind: str, thing: Any) -> None:
        fullname = str(getattr(thing, "fullname", ""))
        last = self.checkpoints.get(kind)
        if last is not None and fullname and base36(fullname) <= base36(last):
            return  # already sent before the restart
        try:
            post = thing_post(thing)
        except ValidationError as exc:
            self.reject(self._original(thing), validation_reason(exc), where=f"reddit:{kind}")
            return
        except (AttributeError, TypeError, ValueError, OverflowError, OSError) as exc:
            reason = f"malformed {kind[:-1]}: {type(exc).__name__} {exc}"
            self.reject(self._original(thing), reason, where=f"reddit:{kind}")
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
