"""The seed corpus the shipped models learn from, written by this project.

Each scenario is a short post a customer might write, in English and Chinese, labelled with its
topic, urgency and sentiment, and each post with its emotion; spam is written the same way. ``write_corpus`` fills the slots
(order numbers, products, amounts) and adds the openings and endings people put around posts
(@mentions, hashtags, emoji), with a seeded generator so that the corpus is reproducible. The
public datasets in ``../shared/data`` are never used for training the shipped models; they only
measure the training machinery.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

TOPICS = ("delivery", "billing", "account", "product_defect", "praise", "general")

PRODUCTS_EN = (
    "AcmePhone X",
    "Acme Buds",
    "SmartKettle 2",
    "Acme Router",
    "AcmeWatch",
    "the blender",
    "the vacuum",
    "Acme Tab 11",
)
PRODUCTS_ZH = (
    "Acme手机X",
    "Acme耳机",
    "智能水壶2代",
    "Acme路由器",
    "Acme手表",
    "破壁机",
    "扫地机器人",
    "Acme平板",
)


EMOTIONS = ("anger", "fear", "sadness", "joy", "neutral")


@dataclass(frozen=True)
class Scenario:
    """One situation in both languages. ``emotions`` holds the feeling of each post, the English
    and Chinese post at the same place alike: within one scenario a late parcel can anger one
    customer and worry another, so emotion is labelled post by post, not by topic or sentiment."""

    topic: str
    urgency: str
    sentiment: str
    en: tuple[str, ...]
    zh: tuple[str, ...]
    emotions: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.en) == len(self.zh) == len(self.emotions):
            raise ValueError(f"{self.en[0]!r}: one emotion per post in each language")
        if unknown := set(self.emotions) - set(EMOTIONS):
            raise ValueError(f"unknown emotions {sorted(unknown)}")


S = Scenario
SCENARIOS: tuple[Scenario, ...] = (
    # ---- delivery
    S(
        "delivery",
        "low",
        "neutral",
        (
            "Can I change the delivery address for order {order}?",
            "What delivery options do you have for {product}?",
            "Do you ship to Canada? Thinking about ordering {product}",
            "How long does standard shipping usually take?",
        ),
        (
            "订单{order}可以改收货地址吗？",
            "{product}有哪些配送方式？",
            "请问你们发货到香港吗？",
            "普通快递一般几天能到？",
        ),
        ("neutral", "neutral", "neutral", "neutral"),
    ),
    S(
        "delivery",
        "medium",
        "negative",
        (
            "My order {order} is {days} days late and tracking hasn't moved",
            "Still waiting for my {product}, it was supposed to arrive on Monday",
            "Tracking for {order} says 'in transit' for a week now. Any update?",
            "Delivery was rescheduled again for {order}. Getting annoying",
        ),
        (
            "订单{order}已经晚了{days}天，物流一直没更新",
            "{product}说好周一到，现在还没收到",
            "物流显示运输中一个星期了，订单{order}到底怎么回事",
            "订单{order}又改了配送时间，有点烦",
        ),
        ("anger", "sadness", "fear", "anger"),
    ),
    S(
        "delivery",
        "high",
        "negative",
        (
            "Tracking says delivered but there is NO package. Order {order}, {amount} dollars gone",
            "Courier left my {product} in the rain, box soaked and it won't turn on",
            "Order {order} lost in transit and nobody answers the phone. I need it for a trip tomorrow",
            "Third missed delivery for {order}, I took a day off work for this",
        ),
        (
            "物流显示已签收但我根本没收到！订单{order}，{amount}块钱没了",
            "快递把{product}放在雨里，箱子湿透开不了机",
            "订单{order}丢件了电话也没人接，明天出差要用",
            "订单{order}第三次没送到，我专门请了假在家等",
        ),
        ("anger", "anger", "fear", "anger"),
    ),
    S(
        "delivery",
        "critical",
        "negative",
        (
            "My insulin cooler from order {order} never arrived and I need it TODAY. Please help now",
            "The delivery driver crashed into my car in the driveway and drove off. Order {order}",
            "Your courier threatened me at my door when delivering {order}. I'm calling the police",
            "Package {order} arrived leaking some chemical and my kid touched it. Urgent",
        ),
        (
            "订单{order}里是我的胰岛素冷藏盒，今天必须拿到，救命",
            "你们的送货司机撞了我的车直接开走了，订单{order}",
            "送订单{order}的快递员在门口威胁我，我要报警了",
            "包裹{order}到的时候在漏化学品，孩子碰到了，非常紧急",
        ),
        ("fear", "anger", "fear", "fear"),
    ),
    # ---- billing
    S(
        "billing",
        "low",
        "neutral",
        (
            "Where can I download the invoice for order {order}?",
            "Do you accept PayPal for {product}?",
            "Can I pay for {product} in instalments?",
            "Is VAT included in the price shown at checkout?",
        ),
        (
            "订单{order}的发票在哪里下载？",
            "买{product}可以用支付宝吗？",
            "{product}支持分期付款吗？",
            "结算页面显示的价格含税吗？",
        ),
        ("neutral", "neutral", "neutral", "neutral"),
    ),
    S(
        "billing",
        "medium",
        "negative",
        (
            "Refund for {order} still not on my card after {days} days",
            "Promo code didn't apply to my {product} order, can you fix the price?",
            "I was charged {amount} shipping, thought it was free over 50",
            "Price dropped {amount} a day after I bought {product}. Price match?",
        ),
        (
            "订单{order}的退款{days}天了还没到账",
            "优惠码没用上，{product}的价格能帮我改一下吗？",
            "运费收了我{amount}块，不是满50包邮吗",
            "我刚买{product}第二天就降价{amount}元，能补差价吗",
        ),
        ("anger", "anger", "sadness", "sadness"),
    ),
    S(
        "billing",
        "high",
        "negative",
        (
            "You charged my card TWICE for order {order}, {amount} dollars each. Fix this",
            "Cancelled my subscription last month and you still billed me {amount}",
            "I was charged {amount} for an order I never placed",
            "Refund was approved weeks ago for {order} and the money vanished. Rent is due",
        ),
        (
            "订单{order}重复扣款两次，每次{amount}元，赶紧处理",
            "上个月就取消订阅了，还扣了我{amount}元",
            "我根本没下单却被扣了{amount}元",
            "订单{order}的退款几周前就批了，钱还是没到，房租要交了",
        ),
        ("anger", "anger", "fear", "fear"),
    ),
    S(
        "billing",
        "critical",
        "negative",
        (
            "Someone used my saved card on your site and spent {amount}. This is fraud, lock it NOW",
            "Hundreds of customers charged {amount} multiple times today, check the news. Fix it",
            "My bank says your payments page leaked my card number. Lawyer is already involved",
            "Unauthorised charges of {amount} keep coming every hour from your store, stop it",
        ),
        (
            "有人用我在你们网站绑定的卡刷了{amount}元，这是盗刷，马上冻结",
            "今天几百个用户都被重复扣了{amount}元，赶紧修复",
            "银行说你们的支付页面泄露了我的卡号，我已经找律师了",
            "你们店每小时都在扣我{amount}元，快停下来",
        ),
        ("fear", "anger", "anger", "fear"),
    ),
    # ---- account
    S(
        "account",
        "low",
        "neutral",
        (
            "How do I change the email on my account?",
            "Can I merge two accounts into one?",
            "Where do I turn off marketing emails?",
            "How do I update my shipping address in my profile?",
        ),
        (
            "账户绑定的邮箱怎么修改？",
            "两个账号可以合并吗？",
            "营销邮件在哪里关闭？",
            "个人资料里的收货地址怎么改？",
        ),
        ("neutral", "neutral", "neutral", "neutral"),
    ),
    S(
        "account",
        "medium",
        "negative",
        (
            "Password reset email never arrives, tried {days} times",
            "App keeps logging me out every few minutes",
            "Can't update my phone number, the form gives an error",
            "Two-factor code comes really late, login times out",
        ),
        (
            "重置密码的邮件一直收不到，试了{days}次了",
            "APP每隔几分钟就把我踢下线",
            "手机号改不了，表单一直报错",
            "验证码来得特别慢，登录都超时了",
        ),
        ("anger", "anger", "anger", "sadness"),
    ),
    S(
        "account",
        "high",
        "negative",
        (
            "Locked out of my account for {days} days and support keeps closing my ticket",
            "My account was suspended for no reason and my orders are stuck",
            "I can't log in and there's {amount} store credit in there",
            "Account shows someone else's orders and address. Privacy problem",
        ),
        (
            "账号被锁{days}天了，客服一直关我的工单",
            "账号莫名其妙被封，订单全卡住了",
            "登录不了，里面还有{amount}元余额",
            "我的账户里显示别人的订单和地址，隐私出问题了",
        ),
        ("anger", "anger", "fear", "fear"),
    ),
    S(
        "account",
        "critical",
        "negative",
        (
            "My account was HACKED, someone changed the email and is placing orders right now",
            "Got a login alert from another country and now my password doesn't work. Stop them!",
            "Your data breach exposed my address and someone showed up at my house",
            "Hacker took over my account and is messaging my contacts asking for money",
        ),
        (
            "我的账号被盗了，有人改了邮箱正在下单",
            "收到国外的登录提醒，现在密码也不对了，快阻止他们",
            "你们数据泄露把我的住址暴露了，有陌生人找上门了",
            "黑客盗了我的账号在给我的联系人发消息借钱",
        ),
        ("fear", "fear", "fear", "fear"),
    ),
    # ---- product defect
    S(
        "product_defect",
        "low",
        "neutral",
        (
            "Is there a firmware update for {product}?",
            "How do I reset {product} to factory settings?",
            "Does {product} work with Android?",
            "Which charger is recommended for {product}?",
        ),
        (
            "{product}有固件更新吗？",
            "{product}怎么恢复出厂设置？",
            "{product}支持安卓吗？",
            "{product}推荐用什么充电器？",
        ),
        ("neutral", "neutral", "neutral", "neutral"),
    ),
    S(
        "product_defect",
        "medium",
        "negative",
        (
            "Battery on my {product} drains in a few hours since the update",
            "{product} makes a weird buzzing noise. Normal?",
            "Bluetooth on {product} keeps disconnecting",
            "Screen on {product} has a dead pixel after {days} days",
        ),
        (
            "{product}更新后电池几个小时就没电了",
            "{product}有奇怪的嗡嗡声，正常吗？",
            "{product}蓝牙老是断开",
            "{product}用了{days}天屏幕出现坏点",
        ),
        ("sadness", "fear", "anger", "sadness"),
    ),
    S(
        "product_defect",
        "high",
        "negative",
        (
            "{product} died completely after {days} days, won't turn on at all",
            "Brand new {product} arrived with a cracked screen",
            "{product} stopped working the week before my exam. I need a replacement fast",
            "Second {product} in a row that's broken out of the box. Unacceptable",
        ),
        (
            "{product}才用了{days}天就彻底坏了，开不了机",
            "全新的{product}收到时屏幕就是裂的",
            "{product}考试前一周坏了，急需换新",
            "连续两台{product}开箱就是坏的，太离谱了",
        ),
        ("sadness", "sadness", "fear", "anger"),
    ),
    S(
        "product_defect",
        "critical",
        "negative",
        (
            "My {product} caught FIRE while charging. Smoke everywhere. This is dangerous",
            "{product} battery is swelling and hot to touch, what do I do? kids are home",
            "Got an electric shock from {product}, my hand is burned",
            "{product} exploded on the kitchen counter. Someone could have been hurt",
        ),
        (
            "{product}充电时着火了！满屋子烟，太危险了",
            "{product}电池鼓包还发烫，家里有小孩，怎么办",
            "{product}漏电把我电到了，手都烫伤了",
            "{product}在厨房台面上爆炸了，差点伤到人",
        ),
        ("fear", "fear", "fear", "anger"),
    ),
    # ---- praise
    S(
        "praise",
        "low",
        "positive",
        (
            "Love my new {product}! Best purchase this year",
            "Shout out to the support team, fixed my issue in minutes. Thank you!",
            "Delivery was super fast, {product} arrived a day early",
            "Great quality, {product} exceeded my expectations",
            "Thanks @AcmeCare for the quick refund, really appreciate it",
        ),
        (
            "新买的{product}太好用了，今年最满意的一次购物",
            "给客服团队点赞，几分钟就解决了我的问题，谢谢！",
            "发货超快，{product}提前一天就到了",
            "质量很好，{product}超出预期",
            "感谢客服快速退款，非常满意",
        ),
        ("joy", "joy", "joy", "joy", "joy"),
    ),
    # ---- general
    S(
        "general",
        "low",
        "neutral",
        (
            "Are your stores open on public holidays?",
            "Do you have any job openings in customer support?",
            "When is the next sale?",
            "Is {product} available in blue?",
        ),
        (
            "你们门店节假日营业吗？",
            "客服岗位还在招人吗？",
            "下次促销是什么时候？",
            "{product}有蓝色的吗？",
        ),
        ("neutral", "neutral", "neutral", "neutral"),
    ),
    S(
        "general",
        "medium",
        "negative",
        (
            "Waited {days} days for a reply to my email, nothing",
            "Your chat bot is useless, I need a human",
            "Store staff were rude when I asked about returns",
            "Website is super slow today, can't finish anything",
        ),
        (
            "发邮件{days}天了都没人回复",
            "你们的机器人客服没用，我要人工",
            "问退货的时候门店店员态度很差",
            "今天网站特别卡，什么都办不了",
        ),
        ("anger", "anger", "anger", "sadness"),
    ),
)

SPAM_EN = (
    "Earn $500 a day from home!!! DM me now {link}",
    "FREE iPhone giveaway, just click {link} and enter your card",
    "Follow for follow? I follow back 100% #f4f #followback",
    "Crypto signals that made me 10x this week. Join {link}",
    "Hot singles in your area {link}",
    "Cheap followers and likes, 10k for $5 {link}",
    "Congratulations! You won a $1000 gift card. Claim at {link}",
    "Buy cheap watches replica best price {link} {link}",
)
SPAM_ZH = (
    "日赚500元，在家轻松兼职，加微信{link}",
    "免费领取iPhone，点击{link}填写银行卡即可",
    "互粉互赞，回关100% #互粉",
    "币圈大神带你一周翻十倍，进群{link}",
    "低价刷粉刷赞，一万粉只要5元{link}",
    "恭喜您获得1000元购物卡，点击{link}领取",
    "高仿名表特价出售{link}",
)

OPENINGS_EN = ("", "", "@AcmeCare ", "@Acme ", "Hi @AcmeCare, ", "Hey ", "Ugh. ", "Hello, ")
ENDINGS_EN = ("", "", "", " #fail", " 😡", " 🙏", " please help", "!!", " #AcmeCare", " smh", " :(")
OPENINGS_ZH = ("", "", "@Acme客服 ", "@Acme官方 ", "你好，", "客服在吗？", "气死了，")
ENDINGS_ZH = ("", "", "", "！！", "😡", "🙏", "，请尽快处理", "#Acme#", "，无语")


def _fill(text: str, rng: random.Random, zh: bool) -> str:
    return text.format(
        order=rng.choice(("#", "", "A", "ORD-")) + str(rng.randint(100000, 99999999)),
        product=rng.choice(PRODUCTS_ZH if zh else PRODUCTS_EN),
        days=rng.randint(2, 21),
        amount=rng.choice((19, 49, 89, 120, 249, 399, 1299)),
        link=rng.choice(("bit.ly/", "tinyurl.com/", "http://win-", "t.cn/"))
        + "".join(rng.choices("abcdefghijkmnpqrstuvwxyz23456789", k=6)),
    )


def _decorate(text: str, rng: random.Random, zh: bool) -> str:
    openings, endings = (OPENINGS_ZH, ENDINGS_ZH) if zh else (OPENINGS_EN, ENDINGS_EN)
    text = rng.choice(openings) + text + rng.choice(endings)
    if not zh and rng.random() < 0.15:
        text = text.lower()
    return text


def examples(rng: random.Random, per_template: int) -> Iterator[dict[str, str]]:
    """Labelled posts: every template, in both languages, filled ``per_template`` times."""
    for s, sc in enumerate(SCENARIOS):
        for lang, texts in (("en", sc.en), ("zh", sc.zh)):
            for t, template in enumerate(texts):
                for _ in range(per_template):
                    text = _decorate(_fill(template, rng, lang == "zh"), rng, lang == "zh")
                    yield {
                        "template": f"{s}.{lang}.{t}",
                        "text": text,
                        "language": lang,
                        "topic": sc.topic,
                        "urgency": sc.urgency,
                        "sentiment": sc.sentiment,
                        "emotion": sc.emotions[t],
                        "spam": "ham",
                    }
    for lang, texts in (("en", SPAM_EN), ("zh", SPAM_ZH)):
        for t, template in enumerate(texts):
            for _ in range(per_template + 1):
                text = _fill(template, rng, lang == "zh")
                yield {
                    "template": f"spam.{lang}.{t}",
                    "text": text,
                    "language": lang,
                    "topic": "general",
                    "urgency": "low",
                    "sentiment": "neutral" if rng.random() < 0.5 else "positive",
                    "emotion": "neutral",
                    "spam": "spam",
                }


def write_corpus(path: Path, seed: int = 7, per_template: int = 3) -> int:
    rng = random.Random(seed)
    rows = list(examples(rng, per_template))
    rng.shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return len(rows)


def write_sample_stream(path: Path, n: int, seed: int = 11, malformed: int = 5) -> int:
    """A replayable stream of posts in the connector's JSONL layout, for the demo and benchmarks.

    A few deliberately malformed lines are mixed in, so that the demo shows the dead-letter path.
    """
    rng = random.Random(seed)
    pool = list(examples(rng, per_template=2))
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    lines: list[bytes] = []
    at = start
    for i in range(n):
        at += timedelta(seconds=rng.uniform(0.5, 3.0))
        row = rng.choice(pool)
        author = rng.randint(1, max(n // 4, 1))
        followers = int(rng.paretovariate(1.2) * 40)
        lines.append(
            orjson.dumps(
                {
                    "source": "sample",
                    "native_id": str(100000 + i),
                    "author": {
                        "id": str(author),
                        "handle": f"user{author}",
                        "followers": followers,
                        "verified": followers > 50_000,
                    },
                    "text": row["text"],
                    "created_at": at.isoformat(),
                }
            )
        )
    for k in range(malformed):
        position = rng.randrange(len(lines))
        bad = (
            b'{"source": "sample", "native_id": "broken-' + str(k).encode() + b'"}',
            b"this is not json at all",
            b'{"source": "sample", "text": 42}',
        )[k % 3]
        lines.insert(position, bad)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(lines)
