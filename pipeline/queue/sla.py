"""Service-level targets: when an item must first be answered and when resolved.

Targets are per priority band (``Settings.sla_first_response_minutes`` /
``sla_resolution_minutes``) and run from the post's creation, so neither a claim nor an expired
lease resets them. An item keeps the targets of the band it was triaged into (``sla_band``):
re-scoring moves its place in the queue, not its deadlines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.errors import ConfigError
from pipeline.records import QueueItem

if TYPE_CHECKING:
    from pipeline.settings import Settings

BANDS = ("P1", "P2", "P3", "P4")
FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


def _minutes(targets: dict[str, float], what: str) -> dict[str, timedelta]:
    missing = [b for b in BANDS if b not in targets]
    if missing:
        raise ConfigError(f"{what} targets lack bands {', '.join(missing)}")
    bad = [b for b in BANDS if targets[b] <= 0]
    if bad:
        raise ConfigError(f"{what} targets must be positive minutes (band {bad[0]})")
    return {b: timedelta(minutes=targets[b]) for b in BANDS}


@dataclass(frozen=True)
class SlaPolicy:
    first_response: dict[str, timedelta] = field(
        default_factory=lambda: _minutes({"P1": 15, "P2": 60, "P3": 240, "P4": 1440}, "first")
    )
    resolution: dict[str, timedelta] = field(
        default_factory=lambda: _minutes({"P1": 240, "P2": 480, "P3": 1440, "P4": 4320}, "res")
    )
    warn_fraction: float = 0.8

    @classmethod
    def from_settings(cls, settings: Settings) -> SlaPolicy:
        return cls(
            first_response=_minutes(settings.sla_first_response_minutes, "first-response SLA"),
            resolution=_minutes(settings.sla_resolution_minutes, "resolution SLA"),
            warn_fraction=settings.sla_warn_fraction,
        )

    def window(self, item: QueueItem, kind: str) -> timedelta:
        band = item.sla_band or item.band
        return (self.first_response if kind == FIRST_RESPONSE else self.resolution)[band]

    def due(self, item: QueueItem, kind: str) -> datetime:
        return item.post_created_at + self.window(item, kind)

    def warn_at(self, item: QueueItem, kind: str) -> datetime:
        return item.post_created_at + self.window(item, kind) * self.warn_fraction

    def met(self, item: QueueItem, kind: str) -> bool | None:
        """True/False once decided (answered, or the deadline passed unanswered), else None."""
        done = item.first_response_at if kind == FIRST_RESPONSE else _resolved_at(item)
        if done is not None:
            return done <= self.due(item, kind)
        return False if kind in item.sla_breaches else None

    def pending(self, item: QueueItem) -> list[str]:
        """The targets this item still has to meet."""
        kinds = []
        if item.first_response_at is None and item.status != "resolved":
            kinds.append(FIRST_RESPONSE)
        if item.status != "resolved":
            kinds.append(RESOLUTION)
        return kinds


def _resolved_at(item: QueueItem) -> datetime | None:
    return item.resolution.at if item.resolution is not None else None
