"""Agent assist on both stores: similar cases from the resolved history, suggested replies,
knowledge, and automation that never answers what it should not."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from classifiers.similar import SimilarIndex
from classifiers.triager import Triager
from connectors.x import XConnector
from pipeline.assist.assistant import Assistant, SimilarCases, tone_cue
from pipeline.assist.automation import AGENT, Automation
from pipeline.assist_records import (
    AutomationRule,
    AutomationSettings,
    KnowledgeArticle,
    OutboundReply,
    ReplyTemplate,
)
from pipeline.bus.memory import InProcessBus
from pipeline.outbound.replies import ConnectorReplier, Repliers
from pipeline.queue.agent_queue import AgentQueue, QueueError
from pipeline.records import Author, Post, QueueItem
from pipeline.store.interface import Store
from pipeline.worker import Worker
from tests import cassettes
from tests.helpers import embedded_settings
from tests.test_connector_x import client

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DELIVERY = (
    "My order #{n} is {d} days late and tracking hasn't moved",
    "Where is my parcel? Order {n} still not delivered after {d} days",
    "Package for order #{n} never arrived, it's been {d} days",
)
BILLING = (
    "You charged my card twice for order {n}, please refund",
    "Double charge on my card for order #{n}, I want my money back",
)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def post(i: int, text: str, author: str | None = None, source: str = "test") -> Post:
    return Post(
        source=source,
        native_id=str(i),
        author=Author(id=author or f"a{i}", handle=f"user{i}"),
        text=text,
        created_at=START + timedelta(seconds=i % 86_400),
    )


def resolve_all(store: Store, queue: AgentQueue, reply_for: dict[str, str]) -> None:
    """An agent works through the queue, answering each item with the reply for its topic."""
    while (item := queue.claim_next("ann")) is not None:
        queue.resolve(item.id, "ann", reply_for.get(item.topic, "Thanks, sorted."))


def history(store: Store, triager: Triager) -> list[str]:
    posts = [
        post(i, DELIVERY[i % 3].format(n=4839200 + i, d=3 + i % 5)) for i in range(9)
    ] + [post(100 + i, BILLING[i % 2].format(n=99800 + i)) for i in range(6)]
    triaged = triager.triage(posts, START)
    store.write_batch(triaged)
    return sorted({t.topic.label for t in triaged})


def test_store_outbound_round_trip(store: Store) -> None:
    for hours in (1, 3, 5):
        store.record_outbound(
            OutboundReply(
                id=f"o{hours}", item_id="test:1", source="test", text="hi", by="ann",
                automated=hours > 1, at=START + timedelta(hours=hours),
            )
        )
    since = store.outbound_since(START + timedelta(hours=2))
    assert [o.id for o in since] == ["o3", "o5"] and since[0].at == START + timedelta(hours=3)


def test_store_resolved_since_audit_and_open_items_of_author(
    store: Store, triager: Triager
) -> None:
    store.write_batch(
        triager.triage([post(1, DELIVERY[0].format(n=4839201, d=4), "same"),
                        post(2, BILLING[0].format(n=99812), "same"),
                        post(3, BILLING[1].format(n=99813), "other")], START)
    )
    clock = Clock()
    queue = AgentQueue(store, clock=clock)
    assert sorted(store.open_items_of_author("test:same")) == ["test:1", "test:2"]
    first = queue.claim_next("ann")
    assert first is not None
    queue.resolve(first.id, "ann", "sorted")
    clock.now += timedelta(hours=1)
    second = queue.claim_next("ann")
    assert second is not None
    queue.resolve(second.id, "ann", "sorted too")
    assert [i.id for i in store.resolved_since(None)] == [first.id, second.id]
    assert [i.id for i in store.resolved_since(START + timedelta(minutes=30))] == [second.id]
    trail = store.audit_of_items([first.id])
    assert [e.action for e in trail] == ["claim", "resolve"]
    assert {e.item_id for e in store.audit_of_items([first.id, second.id])} == {
        first.id, second.id
    }
    remaining = set(store.open_items_of_author("test:same")) | set(
        store.open_items_of_author("test:other")
    )
    assert remaining == {"test:1", "test:2", "test:3"} - {first.id, second.id}


def test_similar_cases_follow_the_resolved_history(store: Store, triager: Triager) -> None:
    topics = history(store, triager)
    assert len(topics) >= 2
    clock = Clock()
    queue = AgentQueue(store, clock=clock)
    replies = {t: f"Reply for {t}: we are on it." for t in topics}
    resolve_all(store, queue, replies)
    cases = SimilarCases(store, SimilarIndex(min_labelled=5, lsa_components=8))
    assert cases.refresh() == 15 and cases.refresh() == 0
    store.write_batch(triager.triage([post(500, "Order #4839999 is 5 days late, no tracking")],
                                     START))
    new = store.get_item("test:500")
    assert new is not None
    found = cases.similar(new, k=3)
    assert len(found) == 3 and all(c.language == new.language for c in found)
    assert found[0].topic == new.topic and found[0].item_id in {f"test:{i}" for i in range(9)}
    assert found[0].reply == replies[found[0].topic]
    assert {c.outcome for c in found} == {"resolved_first_reply"}
    # a case reopened later shows as such; items resolved after the index was built join it
    automation = Automation(store, Assistant(store, cases), Repliers(store), clock)
    automation.reopen(found[0].item_id, "lee", "wrong")
    assert cases.similar(new, k=3)[0].outcome == "reopened"
    store.write_batch(triager.triage([post(501, DELIVERY[1].format(n=4839777, d=9))], START))
    clock.now += timedelta(hours=1)
    resolve_all(store, queue, replies)  # 500, 501 and the reopened case, again
    assert cases.refresh() == 2 and len(cases) == 17
    again = [c.item_id for c in cases.similar(new, k=20)]  # every row it may show
    assert "test:501" in again and "test:500" not in again  # never the item itself


def templates(assistant: Assistant, topic: str, language: str = "en") -> None:
    assistant.save_template(
        ReplyTemplate(id="late", topic=topic, language=language, title="Late order",
                      body="Sorry {handle}, order {order_number} is on its way: tracking updates"
                      " within a day."),
        by="olga",
    )
    assistant.save_template(
        ReplyTemplate(id="late-product", topic=topic, language=language, title="Late product",
                      body="Sorry, your {product} ships today."),
        by="olga",
    )


def test_suggested_replies_are_filled_and_ranked_by_use(store: Store, triager: Triager) -> None:
    store.write_batch(triager.triage([post(i, DELIVERY[i % 3].format(n=4839200 + i, d=4))
                                      for i in range(6)], START))
    queue = AgentQueue(store, clock=Clock())
    topic = store.get_item("test:0").topic  # type: ignore[union-attr]
    resolve_all(store, queue, {topic: "Sorry @user1, order 4839201 is on its way: tracking"
                                      " updates within a day."})
    assistant = Assistant(store, SimilarCases(store, SimilarIndex(min_labelled=5)))
    templates(assistant, topic)
    store.write_batch(triager.triage([post(7, "Order #4839555 is late, where is it??")], START))
    item = store.get_item("test:7")
    assert item is not None and item.topic == topic
    help_ = assistant.assist(item)
    assert [r.template_id for r in help_.replies] == ["late", "late-product"]
    first = help_.replies[0]
    assert first.text.startswith("Sorry @user7, order 4839555 is on its way")
    assert first.missing == [] and first.resolved_similar >= 3
    assert help_.replies[1].missing == ["product"] and "[product]" in help_.replies[1].text
    assert len(help_.similar) == 5


def test_tone_cue_reads_sentiment_and_emotion() -> None:
    angry = {"sentiment": {"label": "negative", "probabilities": {"negative": 0.9}},
             "urgency": {"label": "high"}}
    assert tone_cue(angry) is not None and "angry" in tone_cue(angry)  # type: ignore[operator]
    assert "unhappy" in (tone_cue({"sentiment": {"probabilities": {"negative": 0.55}}}) or "")
    assert "angry" in (tone_cue({"emotion": {"label": "anger"}}) or "")
    assert tone_cue({"sentiment": {"label": "neutral", "probabilities": {}}}) is None


def test_knowledge_articles_in_the_items_language_best_first(
    store: Store, triager: Triager
) -> None:
    assistant = Assistant(store)
    for article in (
        KnowledgeArticle(id="track", title="Tracking a late order", language="en",
                         body="Orders late by more than 5 days: open a carrier trace.",
                         topics=["delivery"]),
        KnowledgeArticle(id="refund", title="Refunding a double charge", language="en",
                         body="Card charged twice: refund the duplicate within 24h.",
                         topics=["billing"]),
        KnowledgeArticle(id="zh", title="物流查询", language="zh", body="订单晚了请查询物流",
                         topics=["delivery"]),
    ):
        assistant.save_article(article, by="olga")
    store.write_batch(triager.triage([post(1, "You charged my card twice for order 99812")],
                                     START))
    item = store.get_item("test:1")
    assert item is not None
    found = assistant.knowledge_for(item)
    ids = [a.id for a in found]
    assert ids[0] == "refund" and "zh" not in ids
    assert assistant.delete_article("refund", by="olga")
    assert [a.id for a in assistant.knowledge_for(item)] == ["track"]


class Outbox:
    """A network's reply endpoint, as the tests see it: what was sent, or a failure."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail

    def reply(self, item: QueueItem, text: str) -> str:
        if self.fail:
            raise ConnectionError("network down")
        self.sent.append((item.id.split(":", 1)[1], text))
        return f"r{len(self.sent)}"


@pytest.fixture
def automation_setup(store: Store, triager: Triager) -> tuple[Automation, Outbox, Clock, str]:
    clock = Clock()
    outbox = Outbox()
    assistant = Assistant(store)
    probe = triager.triage([post(0, DELIVERY[0].format(n=4839200, d=4))], START)[0]
    topic = probe.topic.label
    templates(assistant, topic)
    automation = Automation(store, assistant, Repliers(store, {"test": outbox}), clock)
    automation.save_settings(AutomationSettings(enabled=True, daily_cap=100), by="olga")
    automation.save_rule(
        AutomationRule(topic=topic, language="en", template_id="late", threshold=0.5,
                       max_negative=1.0),
        by="olga",
    )
    return automation, outbox, clock, topic


def test_automation_answers_resolves_audits_and_can_be_reversed(
    store: Store, triager: Triager, automation_setup: tuple[Automation, Outbox, Clock, str]
) -> None:
    automation, outbox, clock, topic = automation_setup
    triaged = triager.triage([post(1, DELIVERY[0].format(n=4839201, d=4))], START)
    assert triaged[0].topic.label == topic and triaged[0].urgency.label not in ("high", "critical")
    store.write_batch(triaged)
    decisions = automation.run()
    assert [d.automated for d in decisions] == [True], decisions
    assert outbox.sent == [("1", "Sorry @user1, order 4839201 is on its way: tracking updates"
                                  " within a day.")]
    item = store.get_item("test:1")
    assert item is not None and item.status == "resolved" and item.resolution is not None
    assert item.resolution.by == AGENT
    actions = [e.action for e in store.audit_of_items(["test:1"])]
    assert actions == ["claim", "resolve", "auto_reply"]
    [sent] = store.outbound_since(START)
    assert sent.automated and sent.template_id == "late" and sent.external_id == "r1"
    assert automation.reopened_report(START) == []
    clock.now += timedelta(hours=1)
    back = automation.reopen("test:1", "lee", "customer wrote again: parcel lost")
    assert back.status == "open" and back.resolution is None
    [report] = automation.reopened_report(START)
    assert report.item_id == "test:1" and report.reopened_by == "lee" and "lost" in report.reason
    with pytest.raises(QueueError, match="not resolved"):
        automation.reopen("test:1", "lee", "again")


def test_automation_never_fires_below_threshold_or_for_an_author_with_an_open_item(
    store: Store, triager: Triager, automation_setup: tuple[Automation, Outbox, Clock, str]
) -> None:
    automation, outbox, _, topic = automation_setup
    busy = [post(1, DELIVERY[0].format(n=4839201, d=4), "busy"),
            post(2, "How do I change the email on my account?", "busy")]
    store.write_batch(triager.triage(busy, START))
    confidence = float(store.get_post("test:1")["topic"]["confidence"])  # type: ignore[index]
    decisions = {d.item_id: d for d in automation.run()}
    assert not decisions["test:1"].automated
    assert "other open item" in decisions["test:1"].reason
    # the same kind of post from a quiet author, but the rule asks for more confidence
    store.write_batch(triager.triage([post(3, DELIVERY[0].format(n=4839203, d=4))], START))
    automation.save_rule(
        AutomationRule(topic=topic, language="en", template_id="late",
                       threshold=min(1.0, confidence + 0.01), max_negative=1.0),
        by="olga",
    )
    decision = {d.item_id: d for d in automation.run()}["test:3"]
    assert not decision.automated and "below" in decision.reason
    assert outbox.sent == [] and store.outbound_since(START) == []
    assert {i.status for i in map(store.get_item, ("test:1", "test:3")) if i} == {"open"}
    # a source with no way back to the customer (a replay) is never answered automatically
    store.write_batch(triager.triage(
        [post(4, DELIVERY[0].format(n=4839204, d=4), source="replay")], START))
    automation.save_rule(
        AutomationRule(topic=topic, language="en", template_id="late", threshold=0.5,
                       max_negative=1.0),
        by="olga",
    )
    decisions = {d.item_id: d for d in automation.run()}
    assert not decisions["replay:4"].automated and "no reply path" in decisions["replay:4"].reason
    assert decisions["test:3"].automated  # at the lower threshold, the quiet author's post goes
    assert [i for i, _ in outbox.sent] == ["3"]
    replay = store.get_item("replay:4")
    assert replay is not None and replay.status == "open"


def test_automation_honours_the_off_switch_the_cap_and_a_failed_send(
    store: Store, triager: Triager, automation_setup: tuple[Automation, Outbox, Clock, str]
) -> None:
    automation, outbox, clock, _ = automation_setup
    store.write_batch(triager.triage(
        [post(i, DELIVERY[0].format(n=4839200 + i, d=4)) for i in range(1, 5)], START))
    automation.save_settings(AutomationSettings(enabled=False, daily_cap=100), by="olga")
    assert automation.run() == [] and outbox.sent == []
    automation.save_settings(AutomationSettings(enabled=True, daily_cap=2), by="olga")
    decisions = automation.run()
    assert [d.automated for d in decisions] == [True, True, False, False]
    assert "daily cap of 2" in decisions[-1].reason and len(outbox.sent) == 2
    clock.now += timedelta(days=1)  # a new day: the cap counts again, but the network fails
    automation.repliers.by_source["test"] = Outbox(fail=True)
    failed = automation.run()
    assert [d.automated for d in failed] == [False, False]
    assert all("reply failed" in d.reason for d in failed)
    for item_id in (d.item_id for d in failed):
        item = store.get_item(item_id)
        assert item is not None and item.status == "open" and item.agent is None


def test_automation_replies_through_the_x_connector(
    store: Store, triager: Triager, automation_setup: tuple[Automation, Outbox, Clock, str]
) -> None:
    automation, _, _, _ = automation_setup
    x = XConnector(InProcessBus().producer(), client(), "@acme", store)
    automation.repliers.by_source["x"] = ConnectorReplier(x.reply)
    store.write_batch(triager.triage(
        [post(1456012973835788200, DELIVERY[0].format(n=4839201, d=4), source="x")], START))
    with cassettes.player.use_cassette(
        str(cassettes.X_CASSETTES / "test_client_create_and_delete_tweet.yaml")
    ):
        [decision] = automation.run()
    assert decision.automated
    [sent] = store.outbound_since(START)
    assert sent.source == "x" and sent.external_id == "1456012973835788293"


def test_the_worker_answers_simple_repeats_in_their_batch_and_only_once(
    store: Store,
    triager: Triager,
    automation_setup: tuple[Automation, Outbox, Clock, str],
    tmp_path: Path,
) -> None:
    automation, outbox, clock, _ = automation_setup
    settings = embedded_settings(data_dir=tmp_path, batch_size=64, trends_enabled=False)
    bus = InProcessBus(partitions=1)
    bus.ensure_topics([settings.topic_raw])
    posts = [
        post(1, DELIVERY[0].format(n=4839201, d=4)),
        post(2, DELIVERY[1].format(n=4839202, d=5), "busy"),  # its author has another item
        post(3, "How do I change the email on my account?", "busy"),
    ]
    producer = bus.producer()
    for p in posts:
        producer.send(settings.topic_raw, p.model_dump_json().encode())
    def run() -> int:
        worker = Worker(bus, store, triager, settings, clock=clock, automation=automation)
        try:
            return worker.run(threading.Event(), idle_exit_s=0.3).automated
        finally:
            worker.close()

    assert run() == 1
    assert [i for i, _ in outbox.sent] == ["1"]
    statuses = {i: store.get_item(i) for i in ("test:1", "test:2", "test:3")}
    assert {i: it.status for i, it in statuses.items() if it} == {
        "test:1": "resolved", "test:2": "open", "test:3": "open"}
    actions = [e.action for e in store.audit_of_items(["test:1"])]
    assert actions == ["claim", "resolve", "auto_reply"]
    # the same posts again (a batch replayed after a crash): nothing is sent twice
    for p in posts:
        producer.send(settings.topic_raw, p.model_dump_json().encode())
    assert run() == 0
    assert len(outbox.sent) == 1 and len(store.outbound_since(START)) == 1
    # switched off, the worker leaves a new simple repeat to the agents
    automation.save_settings(AutomationSettings(enabled=False, daily_cap=100), by="olga")
    producer.send(settings.topic_raw, post(4, DELIVERY[0].format(n=4839204, d=4))
                  .model_dump_json().encode())
    assert run() == 0
    item = store.get_item("test:4")
    assert item is not None and item.status == "open" and len(outbox.sent) == 1
