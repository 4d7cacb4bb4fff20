"""Agent profiles (skills and capacity) and customer affinity, kept in the store.

An agent's skills say which items they may take: topics and languages, where an empty list
means any. Capacity bounds how many items they hold at once. Affinity sends a repeat author back
to the agent who last helped them, while that agent is available and has room.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from pipeline.records import AwareDatetime, QueueItem, Record
from pipeline.store.interface import Store

AGENT = "agent"
AFFINITY = "affinity"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"


class AgentProfile(Record):
    name: str = Field(pattern=NAME_PATTERN)
    topics: list[str] = Field(default_factory=list, description="empty: any topic")
    languages: list[str] = Field(default_factory=list, description="empty: any language")
    capacity: int = Field(default=3, ge=1, le=100, description="items held at once")
    available: bool = True

    def may_take(self, item: QueueItem) -> bool:
        return (not self.topics or item.topic in self.topics) and (
            not self.languages or item.language in self.languages
        )


class Affinity(Record):
    author_id: str
    agent: str
    at: AwareDatetime


class Agents:
    def __init__(self, store: Store, affinity_window: timedelta = timedelta(days=30)) -> None:
        self.store = store
        self.affinity_window = affinity_window

    def put(self, profile: AgentProfile) -> AgentProfile:
        self.store.put_record(AGENT, profile.name, profile.model_dump(mode="json"))
        return profile

    def get(self, name: str) -> AgentProfile | None:
        doc = self.store.get_record(AGENT, name)
        return None if doc is None else AgentProfile.model_validate(doc)

    def all(self) -> list[AgentProfile]:
        profiles = [AgentProfile.model_validate(d) for d in self.store.find_records(AGENT)]
        return sorted(profiles, key=lambda p: p.name)

    def load(self, now: datetime) -> Counter[str]:
        """Items each agent holds under a live lease."""
        return Counter(self.store.agent_loads(now))

    def with_room(self, now: datetime) -> set[str]:
        """Agents who are available and below their capacity."""
        load = self.load(now)
        return {p.name for p in self.all() if p.available and load[p.name] < p.capacity}

    def remember(self, author_id: str, agent: str, at: datetime) -> None:
        """``agent`` helped ``author_id``: their next post goes back to them."""
        doc = Affinity(author_id=author_id, agent=agent, at=at).model_dump(mode="json")
        self.store.put_record(AFFINITY, author_id, doc)

    def helped_by(self, agent: str, now: datetime) -> list[str]:
        """The customers ``agent`` helped last, within the affinity window."""
        return [a.author_id for a in self._affinities({"agent": agent}, now)]

    def owners(self, author_ids: Sequence[str], now: datetime) -> dict[str, str]:
        """The agent who helped each of these customers last, within the affinity window."""
        if not author_ids:
            return {}
        found = self._affinities({"author_id": sorted(set(author_ids))}, now)
        return {a.author_id: a.agent for a in found}

    def _affinities(self, where: dict[str, Any], now: datetime) -> list[Affinity]:
        since = now - self.affinity_window
        found = [Affinity.model_validate(d) for d in self.store.find_records(AFFINITY, where)]
        return [a for a in found if a.at >= since]
