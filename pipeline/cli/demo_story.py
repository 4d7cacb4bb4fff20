"""The demo's story: a day at Acme's care desk that a new user can believe.

Posts come from customers with one case each (one language, one product, one order number, the
same topic as it escalates), over five hours up to "now", so the streaming detector has the
baseline it needs (``DetectorConfig.warmup_hours``). Then the Acme app goes down: a burst of
posts about the outage that the detector turns into a spike and an incident while the demo runs.
The seed corpus's scenarios (``classifiers/seed.py``) give the texts, so the models know them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from classifiers.seed import (
    PRODUCTS_EN,
    PRODUCTS_ZH,
    SCENARIOS,
    SPAM_EN,
    SPAM_ZH,
    Scenario,
    _decorate,
)
from pipeline.assist_records import KnowledgeArticle, ReplyTemplate

SOURCE = "demo"
BASELINE_HOURS = 5
FIRST_NAMES = (
    "maria", "james", "li_wei", "sofia", "omar", "emma", "noah", "aisha", "lucas", "mia",
    "ethan", "zoe", "raj", "hana", "leo", "chloe", "ivan", "nora", "diego", "grace",
)
ZH_NAMES = ("小王", "李娜", "张伟", "陈静", "刘洋", "杨帆", "赵敏", "黄磊", "周婷", "吴昊")
OUTAGE_EN = (
    "Acme app down? Login fails with error 503",
    "Can't log in to the Acme app, error 503 every time",
    "Is the Acme app down for everyone? error 503 when I sign in",
    "Acme app outage? Login page just spins then error 503",
    "Acme app login broken, error 503, can't see my orders",
)
OUTAGE_ZH = (
    "Acme App 登录不了，一直提示 error 503",
    "Acme App 是不是崩了？登录报 error 503",
    "Acme App 打不开，登录显示 error 503",
)
# one thread of a case: its topic's scenarios in order of urgency, so a case only gets worse
THREADS: dict[str, list[Scenario]] = {}
for _scenario in SCENARIOS:
    THREADS.setdefault(_scenario.topic, []).append(_scenario)
TOPIC_WEIGHTS = {
    "delivery": 5, "billing": 3, "account": 3, "product_defect": 4, "praise": 2, "general": 2,
}


@dataclass
class Customer:
    """One author and their case: everything they write shares language, product and order."""

    id: str
    handle: str
    language: str
    followers: int
    topic: str
    product: str
    order: str
    days: int
    amount: int

    def author(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "handle": self.handle,
            "followers": self.followers,
            "verified": self.followers > 50_000,
        }

    def say(self, template: str, rng: random.Random) -> str:
        zh = self.language == "zh"
        text = template.format(
            order=self.order,
            product=self.product,
            days=self.days,
            amount=self.amount,
            link="",
        )
        return _decorate(text, rng, zh)


@dataclass
class Story:
    """What the demo feeds: the baseline (before "now"), the outage burst, and bad records."""

    baseline: list[dict[str, Any]] = field(default_factory=list)
    outage: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[bytes] = field(default_factory=list)

    def lines(self, posts: list[dict[str, Any]]) -> Iterator[bytes]:
        for post in posts:
            yield orjson.dumps(post)


def by_period(posts: list[dict[str, Any]], period: timedelta) -> Iterator[list[dict[str, Any]]]:
    """Time-ordered posts in runs of at most ``period`` each."""
    chunk: list[dict[str, Any]] = []
    start: datetime | None = None
    for post in posts:
        at = datetime.fromisoformat(post["created_at"])
        if start is not None and at - start >= period:
            yield chunk
            chunk, start = [], None
        start = start or at
        chunk.append(post)
    if chunk:
        yield chunk


def customer(rng: random.Random, n: int, topic: str) -> Customer:
    zh = rng.random() < 0.3
    name = rng.choice(ZH_NAMES) if zh else rng.choice(FIRST_NAMES)
    followers = int(rng.paretovariate(1.2) * 40)
    return Customer(
        id=f"c{n:04d}",
        handle=f"{name}{rng.randint(10, 99)}",
        language="zh" if zh else "en",
        followers=followers,
        topic=topic,
        product=rng.choice(PRODUCTS_ZH if zh else PRODUCTS_EN),
        order=f"A{rng.randint(1_000_000, 9_999_999)}",
        days=rng.randint(3, 12),
        amount=rng.choice((49, 89, 120, 249, 399)),
    )


def build(now: datetime, seed: int = 24) -> Story:
    """The story with its clock ending at ``now``: baseline posts up to a few minutes before,
    the outage in the minutes after them."""
    rng = random.Random(seed)
    story = Story()
    start = now - timedelta(hours=BASELINE_HOURS)
    quiet_until = now - timedelta(minutes=6)
    topics = list(TOPIC_WEIGHTS)
    weights = list(TOPIC_WEIGHTS.values())
    serial = 0

    def post(who: Customer, text: str, at: datetime) -> dict[str, Any]:
        nonlocal serial
        serial += 1
        return {
            "source": SOURCE,
            "native_id": f"{200000 + serial}",
            "author": who.author(),
            "text": text,
            "language": who.language,
            "created_at": at.isoformat(),
        }

    customers: list[Customer] = []
    for n in range(720):
        who = customer(rng, n, rng.choices(topics, weights)[0])
        customers.append(who)
        thread = THREADS[who.topic]
        # most cases are one post; some come back, one step more urgent each time
        steps = rng.choices((1, 2, 3), (0.6, 0.3, 0.1))[0]
        first = rng.randrange(0, len(thread))
        at = start + timedelta(seconds=rng.uniform(0, (quiet_until - start).total_seconds()))
        for step in range(steps):
            if at >= quiet_until:
                break
            scenario = thread[min(first + step, len(thread) - 1)]
            texts = scenario.zh if who.language == "zh" else scenario.en
            story.baseline.append(post(who, who.say(rng.choice(texts), rng), at))
            at += timedelta(minutes=rng.uniform(20, 80))
    for n in range(25):
        spammer = customer(rng, 1000 + n, "general")
        spam = SPAM_ZH if spammer.language == "zh" else SPAM_EN
        at = start + timedelta(seconds=rng.uniform(0, (quiet_until - start).total_seconds()))
        text = rng.choice(spam).format(link="bit.ly/" + "".join(rng.choices("abcdefgh", k=6)))
        story.baseline.append(post(spammer, text, at))
    story.baseline.sort(key=lambda p: p["created_at"])

    # the outage: new voices and a few existing customers, over four minutes, busier each minute
    outage_start = now - timedelta(minutes=5)
    for n in range(72):
        who = rng.choice(customers) if rng.random() < 0.2 else customer(rng, 2000 + n, "account")
        texts = OUTAGE_ZH if who.language == "zh" else OUTAGE_EN
        at = outage_start + timedelta(seconds=240 * (rng.random() ** 0.6))
        tag = " #AcmeDown" if rng.random() < 0.5 else ""
        story.outage.append(post(who, who.say(rng.choice(texts), rng) + tag, at))
    # ordinary traffic goes on, and its newest post closes the outage's last minute
    for k in range(6):
        who = rng.choice(customers)
        scenario = THREADS[who.topic][0]
        texts = scenario.zh if who.language == "zh" else scenario.en
        at = outage_start + timedelta(seconds=50 * k + 20)
        story.outage.append(post(who, who.say(rng.choice(texts), rng), at))
    story.outage.append(post(rng.choice(customers), "Any update on my question from earlier?", now))
    story.outage.sort(key=lambda p: p["created_at"])

    story.malformed = [
        b"this is not json at all",
        b'{"source": "demo", "native_id": "broken-1"}',
        b'{"source": "demo", "native_id": "broken-2", "text": 42}',
    ]
    return story


TEMPLATES = (
    ReplyTemplate(
        id="delivery-late-en", topic="delivery", language="en", title="Late parcel",
        body="Hi {handle}, sorry your order {order_number} is late. I have opened a trace with "
        "the courier and will update you within 24 hours.",
    ),
    ReplyTemplate(
        id="delivery-missing-en", topic="delivery", language="en", title="Marked delivered",
        body="Hi {handle}, sorry order {order_number} shows delivered but never arrived. I have "
        "started a claim; a replacement or refund follows within 2 working days.",
    ),
    ReplyTemplate(
        id="billing-charge-en", topic="billing", language="en", title="Double charge",
        body="Hi {handle}, I can see the duplicate charge on order {order_number}. The refund is "
        "on its way and shows on your statement in 3-5 working days.",
    ),
    ReplyTemplate(
        id="account-access-en", topic="account", language="en", title="Locked out",
        body="Hi {handle}, sorry you are locked out. Please use 'Forgot password' in the app; if "
        "the link does not arrive, reply here and we will verify you another way.",
    ),
    ReplyTemplate(
        id="defect-replace-en", topic="product_defect", language="en", title="Faulty product",
        body="Hi {handle}, sorry your {product} is faulty. It is under warranty: I have sent you "
        "a prepaid return label for order {order_number} and a replacement ships on receipt.",
    ),
    ReplyTemplate(
        id="praise-thanks-en", topic="praise", language="en", title="Thank you",
        body="Thank you {handle}! Glad you are enjoying your {product}.",
    ),
    ReplyTemplate(
        id="general-info-en", topic="general", language="en", title="General question",
        body="Hi {handle}, thanks for asking. You will find the details in our help centre; "
        "tell us if anything is unclear.",
    ),
    ReplyTemplate(
        id="delivery-late-zh", topic="delivery", language="zh", title="物流延误",
        body="{handle}您好，订单{order_number}延误了，非常抱歉。我们已联系快递核查，24小时内给您答复。",
    ),
    ReplyTemplate(
        id="billing-charge-zh", topic="billing", language="zh", title="重复扣款",
        body="{handle}您好，订单{order_number}的重复扣款已为您退回，3-5个工作日到账。",
    ),
    ReplyTemplate(
        id="account-access-zh", topic="account", language="zh", title="账号登录",
        body="{handle}您好，请在App里点击“忘记密码”重置；收不到验证码请回复我们，我们另行核实身份。",
    ),
    ReplyTemplate(
        id="defect-replace-zh", topic="product_defect", language="zh", title="产品故障",
        body="{handle}您好，{product}出现故障非常抱歉。仍在保修期内，我们已为订单{order_number}安排免费换新。",
    ),
    ReplyTemplate(
        id="praise-thanks-zh", topic="praise", language="zh", title="感谢",
        body="谢谢{handle}的支持！很高兴您喜欢{product}。",
    ),
)

ARTICLES = (
    KnowledgeArticle(
        id="kb-courier-trace", language="en", topics=["delivery"], title="Tracing a late parcel",
        body="Parcels without a tracking update for 3 days can be traced with the courier from "
        "the order page. Marked delivered but missing: wait 24 hours, then open a claim.",
    ),
    KnowledgeArticle(
        id="kb-refunds", language="en", topics=["billing"], title="Refund times",
        body="Refunds go back to the original payment method in 3-5 working days; duplicate "
        "charges are refunded at once, pending authorisations drop off within 7 days.",
    ),
    KnowledgeArticle(
        id="kb-login", language="en", topics=["account"], title="Account access",
        body="Password resets expire after 30 minutes. Suspended accounts are reviewed by the "
        "trust team within 24 hours; never ask for a password in a reply.",
    ),
    KnowledgeArticle(
        id="kb-warranty", language="en", topics=["product_defect"], title="Warranty",
        body="All Acme devices have a 2-year warranty. Dead on arrival: replace, no questions. "
        "Battery swelling or burning smell: tell the customer to stop using it, escalate.",
    ),
    KnowledgeArticle(
        id="kb-outage", language="en", topics=["account", "general"],
        title="App outage playbook",
        body="During an app outage (error 503 on login) do not reset accounts: link the status "
        "page, promise an update within the hour and resolve with the incident's bulk reply.",
    ),
    KnowledgeArticle(
        id="kb-refunds-zh", language="zh", topics=["billing"], title="退款时效",
        body="退款原路退回，3-5个工作日到账；重复扣款立即退回。",
    ),
    KnowledgeArticle(
        id="kb-warranty-zh", language="zh", topics=["product_defect", "delivery"],
        title="保修与换新", body="Acme设备保修两年；开箱故障直接换新。",
    ),
)
