"""Routing, re-scoring, the SLA watchdog, customer context and KPIs, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from classifiers.triager import Triager
from pipeline.queue import agent_queue
from pipeline.queue.agent_queue import AgentBusy, AgentQueue, UnknownAgent
from pipeline.queue.agents import AgentProfile
from pipeline.queue.customers import Customers
from pipeline.queue.escalation import EscalationRequest, Escalations
from pipeline.queue.kpis import compute
from pipeline.queue.sla import SlaPolicy
from pipeline.records import Author, Post
from pipeline.store.interface import Store
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def fresh(i: int, minutes_ago: float = 1.0, **kw: object) -> Post:
    """A post created shortly before NOW, so SLA clocks have not run out."""
    post = make_post(i, **kw)  # type: ignore[arg-type]
    return post.model_copy(update={"created_at": NOW - timedelta(minutes=minutes_ago)})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(store: Store, clock: Clock) -> AgentQueue:
    q = AgentQueue(store, lease=timedelta(minutes=10), clock=clock)
    q.agents.put(AgentProfile(name="ann", capacity=2))
    q.agents.put(AgentProfile(name="bob", languages=["zh"], capacity=5))
    return q


def test_side_records_contract(store: Store) -> None:
    assert store.add_record("k", "a", {"n": 1, "who": "x", "flag": True})
    assert not store.add_record("k", "a", {"n": 2, "who": "y", "flag": False})
    store.put_record("k", "b", {"n": 3, "who": "y", "flag": False})
    store.put_record("k", "b", {"n": 4, "who": "y", "flag": False})
    assert store.get_record("k", "a") == {"n": 1, "who": "x", "flag": True}
    assert store.get_record("k", "b") == {"n": 4, "who": "y", "flag": False}
    assert store.get_record("k", "c") is None and store.get_record("other", "a") is None
    assert [d["n"] for d in store.find_records("k")] == [1, 4]
    assert [d["n"] for d in store.find_records("k", {"who": "y"})] == [4]
    assert [d["n"] for d in store.find_records("k", {"who": ["x", "y"]})] == [1, 4]
    assert [d["n"] for d in store.find_records("k", {"flag": True})] == [1]
    assert store.find_records("k", {"who": []}) == []
    with pytest.raises(ValueError):
        store.find_records("k", {"a') OR 1=1 --": 1})


def test_skills_capacity_and_unknown_agents(
    queue: AgentQueue, store: Store, triager: Triager
) -> None:
    store.write_batch(triager.triage([fresh(i) for i in range(16)], NOW))
    zh = queue.next_for("bob")
    assert zh is not None and zh.language == "zh" and zh.agent == "bob"
    first, second = queue.next_for("ann"), queue.next_for("ann")
    assert first is not None and second is not None and first.priority >= second.priority
    with pytest.raises(AgentBusy, match="holds 2 of 2"):
        queue.next_for("ann")
    with pytest.raises(UnknownAgent):
        queue.next_for("zed")
    queue.agents.put(AgentProfile(name="cy", available=False))
    with pytest.raises(AgentBusy, match="unavailable"):
        queue.next_for("cy")
    while (item := queue.next_for("bob")) is not None:
        assert item.language == "zh"


def test_affinity_sends_a_repeat_author_back_while_the_agent_has_room(
    queue: AgentQueue, store: Store, triager: Triager, clock: Clock
) -> None:
    author = Author(id="loyal", handle="loyal")
    low = "How do I change the email on my account?"
    first = fresh(1, text=low).model_copy(update={"author": author})
    store.write_batch(triager.triage([first], NOW))
    queue.agents.put(AgentProfile(name="cy", capacity=3))
    item = queue.next_for("cy")
    assert item is not None and item.id == first.id
    queue.resolve(item.id, "cy", "Settings > Account > Email.")
    # The same author writes again, with an urgent post among others more urgent still.
    again = fresh(2, text=low).model_copy(update={"author": author})
    store.write_batch(triager.triage([again, *(fresh(i) for i in range(10, 14))], NOW))
    taken = [queue.next_for("ann"), queue.next_for("ann")]
    assert again.id not in {t.id for t in taken if t}  # left for cy, who has room
    back = queue.next_for("cy")
    assert back is not None and back.id == again.id
    # cy unavailable: the affinity no longer holds the author's next post back.
    queue.release(back.id, "cy", "off shift")
    queue.agents.put(AgentProfile(name="cy", capacity=3, available=False))
    queue.agents.put(AgentProfile(name="ann", capacity=9))
    got = set()
    while (next_item := queue.next_for("ann")) is not None:
        got.add(next_item.id)
    assert again.id in got


def test_affinity_looks_beyond_the_first_customers_when_all_are_someone_elses(
    queue: AgentQueue, store: Store, triager: Triager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim looks up only the customers of the first few items it could take; when every
    one of them waits for another agent, it looks further rather than give up."""
    monkeypatch.setattr(agent_queue, "LOOKAHEAD", 2)
    queue.agents.put(AgentProfile(name="cy", capacity=9))
    posts = [fresh(i) for i in range(10, 16)]
    triaged = triager.triage(posts, NOW)
    ranked = sorted((t for t in triaged if not t.is_spam), key=lambda t: -t.priority.score)
    assert len(ranked) >= 4
    helped = {f"{t.post.source}:{t.post.author.id}" for t in ranked[:3]}
    for author in helped:  # cy helped the authors of the three most urgent posts last
        queue.agents.remember(author, "cy", NOW)
    store.write_batch(triaged)
    got = queue.next_for("ann")
    assert got is not None and got.author_id not in helped
    mine = queue.next_for("cy")
    assert mine is not None and mine.author_id in helped


def test_reassign_moves_the_lease_to_a_skilled_agent(
    queue: AgentQueue, store: Store, triager: Triager
) -> None:
    store.write_batch(triager.triage([fresh(i) for i in range(8)], NOW))
    item = queue.next_for("ann")
    assert item is not None
    if item.language != "zh":
        with pytest.raises(AgentBusy, match="lacks the skills"):
            queue.reassign(item.id, "ann", "bob")
    queue.agents.put(AgentProfile(name="dee"))
    moved = queue.reassign(item.id, "ann", "dee", "billing specialist")
    assert moved.agent == "dee" and moved.status == "claimed"
    assert queue.resolve(item.id, "dee", "Refunded.").status == "resolved"


def test_rescore_climbs_as_sla_runs_out_with_tier_and_spike(
    queue: AgentQueue, store: Store, triager: Triager, clock: Clock
) -> None:
    store.write_batch(triager.triage([fresh(7, minutes_ago=0)], NOW))
    [before] = store.list_queue("open")
    [scored] = queue.rescore(NOW)
    assert scored.model_versions["priority"] == "queue-priority-1"
    assert any(r.startswith("urgency") for r in scored.reasons)
    queue.set_tier(before.author_id, "platinum", by="admin")
    later = NOW + SlaPolicy().window(before, "first_response") * 0.9
    [richer] = queue.rescore(later, spikes={before.topic})
    assert richer.priority > scored.priority
    assert "customer tier platinum" in richer.reasons
    assert "part of a spike" in richer.reasons
    assert any("min left" in r for r in richer.reasons)
    assert queue.rescore(later, spikes={before.topic}) == []  # unchanged: nothing written


def test_sla_sweep_releases_warns_and_records_breaches_once(
    queue: AgentQueue, store: Store, triager: Triager, clock: Clock
) -> None:
    store.write_batch(triager.triage([fresh(i, minutes_ago=0) for i in range(4)], NOW))
    held = queue.next_for("ann")
    assert held is not None
    policy = SlaPolicy()
    window = policy.window(held, "first_response")
    clock.now = NOW + window * 0.85
    report = queue.sla_sweep(clock.now)
    assert held.id in report.released  # lease of 10 min long gone
    back = store.get_item(held.id)
    assert back is not None and back.status == "open"
    assert back.post_created_at == held.post_created_at  # the SLA clock is intact
    assert (held.id, "first_response") in report.warnings
    assert not report.breaches
    clock.now = NOW + window + timedelta(minutes=1)
    report = queue.sla_sweep(clock.now)
    assert (held.id, "first_response") in report.breaches
    again = queue.sla_sweep(clock.now)
    assert not [b for b in again.breaches if b[0] == held.id]
    events = store.find_records("sla_event", {"item_id": held.id})
    assert [(e["event"], e["kind"]) for e in events] == [
        ("warning", "first_response"),
        ("breach", "first_response"),
    ]
    breached = store.get_item(held.id)
    assert breached is not None and breached.sla_breaches == ["first_response"]


def test_customer_context_across_sources_and_kpis(
    queue: AgentQueue, store: Store, triager: Triager, clock: Clock
) -> None:
    on_x = fresh(1, source="x").model_copy(update={"author": Author(id="42", handle="kim")})
    on_reddit = fresh(2, source="reddit").model_copy(
        update={"author": Author(id="kim_r", handle="kim_r")}
    )
    store.write_batch(triager.triage([on_x, on_reddit, fresh(3)], NOW))
    queue.repliers.by_source["x"] = queue.repliers.by_source["test"]
    queue.repliers.by_source["reddit"] = queue.repliers.by_source["test"]
    customers = Customers(queue, Escalations(queue))
    assert customers.link("x:42", "reddit:kim_r", by="admin") == ["reddit:kim_r", "x:42"]
    queue.agents.remember("x:42", "ann", NOW - timedelta(days=1))  # ann helped kim before
    claimed = queue.next_for("ann")
    assert claimed is not None and claimed.id == on_x.id
    holder = "ann"
    clock.now = NOW + timedelta(minutes=5)
    Escalations(queue).escalate(
        on_x.id, holder, EscalationRequest(channel="video", reason="walk through the setup")
    )
    queue.resolve(on_x.id, holder, "Glad we could sort it out on the call.")
    context = customers.context("reddit:kim_r")
    assert context.authors == ["reddit:kim_r", "x:42"]
    assert {p.id for p in context.posts} == {on_x.id, on_reddit.id}
    assert all(p.topic and p.reasons and p.model_versions for p in context.posts)
    assert [r.purpose for r in context.replies] == ["escalation:video", "resolve"]
    assert [e.channel for e in context.open_escalations] == ["video"]
    kpis = compute(queue, clock.now)
    assert kpis.first_response.count == 1 and kpis.resolution.count == 1
    assert kpis.first_response.median_s == pytest.approx(6 * 60)
    assert kpis.sla_attainment["first_response"] == 1.0
    assert kpis.escalations_by_channel == {"email": 0, "phone": 0, "video": 1}
    assert sum(kpis.backlog_by_band.values()) == 2
    assert {a.agent: a.resolved for a in kpis.agents}[holder] == 1
