"""Replay posts from files: JSONL in the ``Post`` layout, or CSV in the Customer Support on
Twitter (``twcs.csv``) layout, as fast as possible or at the pace they were written.

For demos, backfills and benchmarks. Lines that do not parse go to the dead-letter topic with the
file name and line number. Given a store, the number of records consumed is checkpointed after
each flush, so a stopped or crashed replay resumes where it left off.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import orjson
from pydantic import ValidationError

from connectors.base import Connector
from pipeline.bus.interface import Producer
from pipeline.errors import ConfigError
from pipeline.records import Author, Post, validation_reason
from pipeline.store.interface import Store

TWCS_COLUMNS = {"tweet_id", "author_id", "inbound", "created_at", "text"}


def parse_twcs_time(value: str) -> datetime:
    """twcs.csv writes times like 'Tue Oct 31 22:10:47 +0000 2017'."""
    try:
        return datetime.strptime(value, "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return parsedate_to_datetime(value)


def twcs_post(row: dict[str, str]) -> Post:
    return Post(
        source="twitter",
        native_id=row["tweet_id"],
        author=Author(id=row["author_id"], handle=row["author_id"]),
        text=row["text"],
        created_at=parse_twcs_time(row["created_at"]),
        in_reply_to=row.get("in_response_to_tweet_id") or None,
        raw={"inbound": row.get("inbound"), "response_tweet_id": row.get("response_tweet_id")},
    )


class ReplayConnector(Connector):
    name = "replay"

    def __init__(
        self,
        producer: Producer,
        path: Path,
        speed: float = 0.0,
        limit: int | None = None,
        inbound_only: bool = True,
        rebase_start: datetime | None = None,
        shift_to_now: bool = False,
        store: Store | None = None,
        checkpoint_every: int = 5000,
        **kwargs: str,
    ) -> None:
        super().__init__(producer, **kwargs)
        self.store = store
        self.checkpoint_every = checkpoint_every
        self.key = f"replay:{Path(path).resolve()}"
        self.done = 0  # records of the file consumed, across runs
        self.path = Path(path)
        self.speed = speed
        self.limit = limit
        self.inbound_only = inbound_only
        self.rebase_start = rebase_start
        self.shift_to_now = shift_to_now

    def setup(self) -> None:
        if not self.path.is_file():
            raise ConfigError(f"replay file {self.path} does not exist")
        if self.speed < 0:
            raise ConfigError("replay speed must be 0 (as fast as possible) or positive")
        if self.store is not None:
            self.done = int(self.store.get_checkpoint(self.key) or 0)
        if self.shift_to_now:
            self.rebase_start = self._start_for_now()

    def _start_for_now(self) -> datetime:
        """Where the first post goes so that the newest lands now, spacing kept: a sample file's
        posts then arrive recent, as live ones would, instead of already past every SLA."""
        times = [post.created_at for _, post, _ in self.records() if post is not None]
        now = datetime.now(UTC)
        return now - (max(times) - times[0]) if times else now

    def checkpoint(self) -> None:
        if self.store is not None:
            self.store.set_checkpoint(self.key, str(self.done))

    def records(self) -> Iterator[tuple[bytes, Post | None, str]]:
        """(original bytes, the post or None, the reason it did not parse)."""
        if self.path.suffix.lower() == ".csv":
            yield from self._csv()
        else:
            yield from self._jsonl()

    def _jsonl(self) -> Iterator[tuple[bytes, Post | None, str]]:
        with self.path.open("rb") as f:
            for number, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    yield line, Post.model_validate_json(line), ""
                except ValidationError as exc:
                    yield line, None, f"{self.path.name}:{number}: {validation_reason(exc)}"

    def _csv(self) -> Iterator[tuple[bytes, Post | None, str]]:
        with self.path.open(newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            missing = TWCS_COLUMNS - set(reader.fieldnames or ())
            if missing:
                raise ConfigError(f"{self.path.name} lacks the columns {sorted(missing)}")
            for number, row in enumerate(reader, 2):
                if self.inbound_only and str(row.get("inbound", "")).lower() != "true":
                    continue
                original = orjson.dumps(row)
                try:
                    yield original, twcs_post(row), ""
                except (ValidationError, ValueError) as exc:
                    reason = (
                        validation_reason(exc)
                        if isinstance(exc, ValidationError)
                        else f"bad value: {exc}"
                    )
                    yield original, None, f"{self.path.name}:{number}: {reason}"

    def run(self) -> None:
        first: datetime | None = None
        started = time.monotonic()
        resume_at = self.done
        for index, (original, post, reason) in enumerate(self.records()):
            if index < resume_at:
                continue  # sent by an earlier run of this file
            if not self.running or (self.limit is not None and index - resume_at >= self.limit):
                return
            if post is None:
                self.reject(original, reason, where=str(self.path))
                self._consumed(index)
                continue
            first = first or post.created_at
            if self.rebase_start is not None:
                # Demos replay old files as if they were happening now.
                post = post.model_copy(
                    update={"created_at": self.rebase_start + (post.created_at - first)}
                )
            if self.speed > 0:
                due = (post.created_at - (self.rebase_start or first)).total_seconds() / self.speed
                if (ahead := due - (time.monotonic() - started)) > 0 and self.wait(ahead):
                    return  # stopped before this post was sent: it is not counted as done
            self.emit(post)
            self._consumed(index)

    def _consumed(self, index: int) -> None:
        """Count a record as done only once it is sent; flush and checkpoint now and then."""
        self.done = index + 1
        if self.done % self.checkpoint_every == 0:
            self.flush()
