"""The real labelled sets each head of the shipped bundle learns from, mapped onto our labels.

``make models`` (``scripts/build_models.py``) trains the shipped heads on these rows, and the
retrain flow (``flows/retrain.py``) retrains a head on the same rows plus agents' corrections,
split the same way: the rows ``make models`` held out from a head are the rows the retrain flow
holds out, so the active head and its challenger are compared on data neither learned from.
Everything is read in place from the shared data folder (``../shared/data``); nothing is copied.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklearn.model_selection import GroupShuffleSplit, train_test_split

from classifiers.datasets import Labelled
from classifiers.training import SEED_CORPUS, read_seed
from pipeline.errors import ConfigError

PERMISSIVE = {
    "seed corpus": "the project's own",
    "Banking77": "CC BY 4.0",
    "Bitext customer service": "CDLA-Sharing 1.0",
}
RESTRICTED = {
    "SMS Spam Collection": "free for research (Almeida et al. 2011)",
    "TweetEval": "research use, per its README (stated per source set)",
    "SophonPlus Chinese reviews": "none stated",
}
# How every shipped head is trained (``classifiers.tasks.train_task``): no word vectors, whose
# 20 MB table would be pickled into every head, and n-grams seen at least twice.
HEAD_PARAMS: dict[str, Any] = {"min_df": 2, "word_vectors": None}
# The held-out share of a head's rows, and the seed of its stratified split.
TEST_SIZE = 0.2
SPLIT_SEED = 0

# Bitext customer-service intents onto our topics; intents left out fit none of them.
BITEXT = {
    "create_account": "account",
    "delete_account": "account",
    "edit_account": "account",
    "recover_password": "account",
    "registration_problems": "account",
    "switch_account": "account",
    "newsletter_subscription": "account",
    "check_invoice": "billing",
    "check_invoices": "billing",
    "get_invoice": "billing",
    "payment_issue": "billing",
    "check_payment_methods": "billing",
    "get_refund": "billing",
    "track_refund": "billing",
    "check_refund_policy": "billing",
    "check_cancellation_fee": "billing",
    "delivery_options": "delivery",
    "delivery_period": "delivery",
    "track_order": "delivery",
    "change_shipping_address": "delivery",
    "set_up_shipping_address": "delivery",
    "contact_customer_service": "general",
    "contact_human_agent": "general",
    "place_order": "general",
    "change_order": "general",
    "cancel_order": "general",
}
# Banking77 intents that are one of our topics in a bank's words.
BANKING77 = {
    "card_arrival": "delivery",
    "card_delivery_estimate": "delivery",
    "card_payment_fee_charged": "billing",
    "extra_charge_on_statement": "billing",
    "transaction_charged_twice": "billing",
    "refund_not_showing_up": "billing",
    "request_refund": "billing",
    "direct_debit_payment_not_recognised": "billing",
    "card_payment_wrong_exchange_rate": "billing",
    "cash_withdrawal_charge": "billing",
    "passcode_forgotten": "account",
    "change_pin": "account",
    "pin_blocked": "account",
    "edit_personal_details": "account",
    "terminate_account": "account",
    "compromised_card": "account",
    "verify_my_identity": "account",
    "unable_to_verify_identity": "account",
    "card_not_working": "product_defect",
    "contactless_not_working": "product_defect",
    "virtual_card_not_working": "product_defect",
    "card_swallowed": "product_defect",
}
# online_shopping_10_cats: a negative review of a device is a product defect, a positive
# review of anything is praise; the other negative reviews (books, fruit, hotels) fit no topic.
DEVICES = {"手机", "平板", "计算机", "热水器"}
# Customer-service messages as the spam head's ham, so that it holds what customers write to a
# brand: the SMS Spam Collection's ham is chat between friends.
CUSTOMER_HAM = {"Bitext customer service": 1500, "Banking77": 1000}


@dataclass
class Head:
    """One head's labelled rows and where they came from. ``groups`` (one per row, or empty)
    keeps rows of one group on one side of the held-out split: the seed corpus's templates."""

    task: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)  # each row's source

    def add(self, source: str, rows: list[tuple[str, str]]) -> None:
        self.rows += rows
        self.origins += [source] * len(rows)
        self.sources[source] = self.sources.get(source, 0) + len(rows)

    def split(
        self, test_size: float = TEST_SIZE, seed: int = SPLIT_SEED
    ) -> tuple[Labelled, Labelled]:
        """(training rows, held-out rows): stratified by label, or by group when the rows have
        groups. Blank texts are left out of both."""
        keep = [i for i, (text, _) in enumerate(self.rows) if text.strip()]
        texts = [self.rows[i][0] for i in keep]
        labels = [self.rows[i][1] for i in keep]
        ids = list(range(len(keep)))
        if self.groups:
            groups = [self.groups[i] for i in keep]
            splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
            train, test = (list(part) for part in next(splitter.split(ids, groups=groups)))
        else:
            train, test = train_test_split(
                ids, test_size=test_size, random_state=seed, stratify=labels
            )

        def part(chosen: list[int]) -> Labelled:
            chosen_labels = [labels[i] for i in chosen]
            return Labelled([texts[i] for i in chosen], chosen_labels, ["text", "label"])

        return part(train), part(test)


def sample(rows: list[Any], n: int, seed: int = 0) -> list[Any]:
    return rows if len(rows) <= n else random.Random(seed).sample(rows, n)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        return list(csv.DictReader(f))


def read_sms(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    return [(line.split("\t", 1)[1], line.split("\t", 1)[0]) for line in lines[1:] if "\t" in line]


def tweeteval(data: Path, name: str, part: str) -> list[tuple[str, str]]:
    d = data / "tweeteval" / "datasets" / name
    names = dict(line.split("\t") for line in (d / "mapping.txt").read_text().splitlines())
    texts = (d / f"{part}_text.txt").read_text().splitlines()
    labels = (d / f"{part}_labels.txt").read_text().splitlines()
    return [(t, names[y.strip()].strip()) for t, y in zip(texts, labels, strict=True)]


def heads(data: Path, permissive: bool) -> list[Head]:
    """The heads with real data, in training order; a head with none (urgency, or every head
    but topic and spam under ``permissive``) is left to the seed corpus."""
    if not data.is_dir():
        raise ConfigError(f"data folder {data} does not exist")
    seed = read_seed(SEED_CORPUS)
    ham = [r for r in seed if r["spam"] == "ham"]
    topic, spam, sentiment, emotion = (
        Head("topic"),
        Head("spam"),
        Head("sentiment"),
        Head("emotion"),
    )
    topic.add("seed corpus", [(r["text"], r["topic"]) for r in ham])
    spam.add("seed corpus", [(r["text"], r["spam"]) for r in seed])
    bitext = read_csv(
        data
        / "bitext_customer_service_sample"
        / "Bitext_Sample_Customer_Service_Training_Dataset.csv"
    )
    topic.add(
        "Bitext customer service",
        sample(
            [(r["utterance"], BITEXT[r["intent"]]) for r in bitext if r["intent"] in BITEXT], 3000
        ),
    )
    banking = read_csv(data / "banking77" / "banking_data" / "train.csv")
    topic.add(
        "Banking77",
        [(r["text"], BANKING77[r["category"]]) for r in banking if r["category"] in BANKING77],
    )
    customers = {"Bitext customer service": bitext, "Banking77": banking}
    for source, n in CUSTOMER_HAM.items():
        texts = [r.get("utterance") or r.get("text") or "" for r in customers[source]]
        spam.add(source, sample([(t, "ham") for t in texts], n, 2))
    if not permissive:
        spam.add(
            "SMS Spam Collection",
            [
                (t, "spam" if y == "spam" else "ham")
                for t, y in read_sms(data / "sms_spam_collection" / "SMSSpamCollection")
            ],
        )
        shopping = read_csv(
            data
            / "chinese_sophonplus"
            / "datasets"
            / "online_shopping_10_cats"
            / "online_shopping_10_cats.csv"
        )
        topic.add(
            "SophonPlus Chinese reviews",
            sample([(r["review"], "praise") for r in shopping if r["label"] == "1"], 800)
            + sample(
                [
                    (r["review"], "product_defect")
                    for r in shopping
                    if r["label"] == "0" and r["cat"] in DEVICES
                ],
                800,
            ),
        )
        english = tweeteval(data, "sentiment", "val") + tweeteval(data, "sentiment", "test")
        sentiment.add("TweetEval", sample(english, 6000))
        waimai = read_csv(
            data / "chinese_sophonplus" / "datasets" / "waimai_10k" / "waimai_10k.csv"
        )
        chinese = [
            (r["review"], "positive" if r["label"] == "1" else "negative")
            for r in waimai + sample(shopping, 4000)
        ]
        sentiment.add("SophonPlus Chinese reviews", sample(chinese, 3000))
        # customer posts to a brand (the demo brand's), whose complaints in capitals and
        # exclamations TweetEval's tweets hardly have
        sentiment.add("seed corpus", [(r["text"], r["sentiment"]) for r in ham])
        feelings = tweeteval(data, "emotion", "train") + tweeteval(data, "emotion", "val")
        # optimism is joy in the console's words; neutral tweets (TweetEval sentiment) stand
        # for the calm majority of customer posts, which TweetEval emotion has no label for
        emotion.add(
            "TweetEval",
            [(t, "joy" if y == "optimism" else y) for t, y in feelings]
            + sample([(t, "neutral") for t, y in english if y == "neutral"], 1200, 1),
        )
        emotion.add("seed corpus", [(r["text"], r["emotion"]) for r in seed if r.get("emotion")])
    return [h for h in (spam, topic, sentiment, emotion) if set(h.sources) - {"seed corpus"}]


def seed_head(task: str, corpus: Path = SEED_CORPUS) -> Head:
    """A head's rows from the seed corpus alone, grouped by template (a held-out fill of a
    template the model learned would only measure its memory): what the retrain flow learns
    from where the real sets are not at hand, and what the urgency head always learns from."""
    if not corpus.is_file():
        raise ConfigError(f"corpus file {corpus} does not exist")
    rows = [r for r in read_seed(corpus) if r.get(task) is not None]
    if task != "spam":  # a spam post never reaches an agent, nor these heads' judgement
        rows = [r for r in rows if r.get("spam") != "spam"]
    head = Head(task, groups=[str(r.get("template") or i) for i, r in enumerate(rows)])
    head.add("seed corpus", [(r["text"], str(r[task])) for r in rows])
    return head
